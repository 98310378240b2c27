"""Coach dashboard: the overview (/coach/), where a coach lands after logging in: the next
sessions, this week's counts, what is owed to them, and for a new coach the steps that get
a practice started (each linking to the section that does it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import URLPattern, path
from django.utils import timezone
from django.views.decorators.http import require_safe

from coachgate.accounts import discord
from coachgate.accounts.models import User
from coachgate.billing import services as billing
from coachgate.catalog import services as catalog
from coachgate.catalog.models import CoachProfile
from coachgate.kit import clock
from coachgate.kit.money import format_amount
from coachgate.scheduling import services as scheduling

from .common import coach_required, tabs
from .sessions import session_rows

NEXT_SESSIONS = 5


@dataclass(frozen=True)
class Step:
    label: str
    done: bool
    href: str
    action: str  # the link's words while the step is not done
    post: bool = False  # the link is a form button (allauth's connect flow wants a POST)


def end_of_week(now: datetime) -> datetime:
    """The next Monday 00:00 in the viewer's zone: "this week" ends there."""
    tz = timezone.get_current_timezone()
    local = now.astimezone(tz)
    monday = local.date() + timedelta(days=7 - local.weekday())
    return datetime.combine(monday, time(0), tzinfo=tz)


def checklist(user: User, profile: CoachProfile) -> list[Step]:
    offers = catalog.coach_offer_counts(user)
    steps = [
        Step("Fill in your profile: a bio and your specialties",
             bool(profile.bio.strip() and profile.specialties), "/coach/profile/",
             "Edit your profile"),
        Step("Set your weekly availability",
             bool(scheduling.weekly_availability(profile)), "/coach/availability/",
             "Set availability"),
        Step("Publish an offer students can book", offers["published"] > 0, "/coach/offers/",
             "Create an offer" if not offers["draft"] else "Publish a draft"),
    ]
    if offers["discord"]:
        steps.append(Step("Connect Discord (your offers are held in Discord voice channels)",
                          discord.verification_state(user) != discord.NOT_CONNECTED,
                          discord.connect_url("/coach/"), "Connect Discord", post=True))
    return steps


@coach_required
@require_safe
def overview(request: HttpRequest) -> HttpResponse:
    user: User = request.coach  # type: ignore[attr-defined]  # set by @coach_required
    profile: CoachProfile = request.profile  # type: ignore[attr-defined]  # set by @coach_required
    now = clock.now()
    week_end = end_of_week(now)
    counts = scheduling.coach_counts(user, now=now, until=week_end)
    upcoming = list(scheduling.coach_upcoming(user)[:NEXT_SESSIONS])
    balances = billing.coach_balances(user, profile.pk)
    steps = checklist(user, profile)
    return render(request, "web/coach/home_overview.html", {
        "tabs": tabs(request), "now": now, "profile": profile,
        "counts": counts, "week_end": week_end - timedelta(seconds=1),
        "next_rows": session_rows(user, upcoming, now),
        "balances": [format_amount(v, cur) for cur, v in sorted(balances.items())],
        "steps": steps, "steps_left": sum(1 for s in steps if not s.done),
    })


urlpatterns: list[URLPattern] = [
    path("", overview, name="coach_home"),
]

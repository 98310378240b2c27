"""Server-rendered pages. They call services, never raw queries on other domains."""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST, require_safe

from coachgate.accounts.models import User
from coachgate.catalog import services as catalog
from coachgate.kit import clock
from coachgate.kit.config import conf
from coachgate.kit.errors import CoachgateError, NotFound
from coachgate.kit.money import format_amount
from coachgate.scheduling import services as scheduling

log = logging.getLogger(__name__)


def _viewer(request: HttpRequest) -> User | None:
    return request.user if request.user.is_authenticated else None


@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cur:
        cur.execute("SELECT 1")
    return JsonResponse({"status": "ok", "database": connection.vendor})


@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus metrics. Scraped from the machine itself, by an admin, or with
    `Authorization: Bearer <COACHGATE_METRICS_TOKEN>`."""
    import hmac
    import os

    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

    token = conf().METRICS_TOKEN
    sent = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    # Behind a reverse proxy on the same machine every request arrives from loopback: the
    # client address and "local" are decided in one place (kit.http, with the trusted proxy).
    from coachgate.kit.http import is_local

    allowed = (is_local(request)
               or (token and hmac.compare_digest(sent.encode(), token.encode()))
               or (request.user.is_authenticated and request.user.role == "admin"))
    if not allowed:
        return JsonResponse({"code": "forbidden", "message": "Metrics are for the operator."},
                            status=403)
    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # prometheus_client: no annotations
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


@require_safe
def home(request: HttpRequest) -> HttpResponse:
    try:
        coaches = catalog.browse_coaches(specialty=request.GET.get("specialty") or None,
                                         order=request.GET.get("order", "rating"))
    except CoachgateError as exc:
        messages.error(request, exc.message)
        coaches = catalog.browse_coaches()
    return render(request, "web/home.html", {"coaches": coaches})


@require_safe
def coach_page(request: HttpRequest, coach_id: int) -> HttpResponse:
    try:
        coach = catalog.get_coach(coach_id)
    except NotFound as exc:  # a page's "no such thing" is a 404 page, not a 500
        raise Http404(exc.message) from exc
    offers = catalog.visible_offers(_viewer(request)).filter(coach=coach, status="published")
    rows = [(o, format_amount(o.price_minor, o.currency)) for o in offers]
    from .coach.profile import rates_text

    return render(request, "web/coach.html", {"coach": coach, "offers": rows,
                                              "rates": rates_text(coach)})


OFFER_PAGE_DAYS = 7  # days with free slots on one page of the offer's slot wall
OFFER_PAGE_OPEN_DAYS = 2  # of which the first are open; the others open with a click


@require_safe
def offer_page(request: HttpRequest, offer_id: int) -> HttpResponse:
    viewer = _viewer(request)
    try:
        offer = catalog.get_offer(viewer, offer_id)  # another coach's draft: not found
    except NotFound as exc:
        raise Http404(exc.message) from exc
    tz = timezone.get_current_timezone()  # the viewer's, see web.middleware
    now = clock.now()
    # Two weeks from now (or from ?from=, the "later slots" link), one bounded page.
    start = now
    try:
        asked = datetime.fromisoformat(request.GET.get("from", ""))
        if asked.tzinfo is not None and now < asked < now + timedelta(days=730):
            start = asked
    except ValueError:
        pass
    page = scheduling.slot_page(viewer, offer, start=start, end=start + timedelta(days=14),
                                now=now, limit=scheduling.MAX_SLOT_LIMIT)
    days: dict[str, list[tuple[datetime, scheduling.SlotView]]] = defaultdict(list)
    later = page.next_start
    for s in page.slots:
        local = s.start.astimezone(tz)
        label = local.strftime("%A %d %B %Y")
        if label not in days and len(days) == OFFER_PAGE_DAYS:
            later = s.start  # the rest is one "later slots" click away, not one long wall
            break
        days[label].append((local, s))
    return render(request, "web/offer.html", {
        "offer": offer, "price": format_amount(offer.price_minor, offer.currency),
        "days": dict(days), "tz": str(tz), "owner_view": offer.status != "published"
        or offer.coach.status != "approved",
        "later": later.isoformat() if later else None,
        "from_later": start != now, "open_days": OFFER_PAGE_OPEN_DAYS,
    })


def _intake_answers(fields: list[dict[str, Any]], post: Any) -> dict[str, Any]:
    """The offer form's intake answers as the booking service takes them: a number field's
    text as a number, a checkbox as true/false, an empty optional field left out. Text that
    is not a number stays text, so the service says what is wrong with it."""
    answers: dict[str, Any] = {}
    for f in fields:
        raw = post.get(f"intake_{f['key']}")
        if f["type"] == "checkbox":
            answers[f["key"]] = raw is not None
        elif raw is None or not raw.strip():
            continue
        elif f["type"] == "number":
            try:
                answers[f["key"]] = int(raw)
            except ValueError:
                try:
                    answers[f["key"]] = float(raw)
                except ValueError:
                    answers[f["key"]] = raw
        else:
            answers[f["key"]] = raw
    return answers


@login_required
@require_POST
def book(request: HttpRequest, offer_id: int) -> HttpResponse:
    try:
        start = datetime.fromisoformat(request.POST.get("start", ""))
        offer = catalog.get_offer(request.user, offer_id)  # type: ignore[arg-type]  # @login_required: an authenticated User
        intake = _intake_answers(offer.intake_fields, request.POST)
        scheduling.book_session(request.user, offer_id, start, intake=intake)  # type: ignore[arg-type]  # @login_required: an authenticated User
    except ValueError:
        messages.error(request, "That start time is not valid.")
        return redirect("offer", offer_id=offer_id)
    except CoachgateError as exc:
        problems = (exc.details or {}).get("fields")
        if isinstance(problems, dict) and problems:  # the intake answers: say which, how
            messages.error(request, f"{exc.message} {' '.join(map(str, problems.values()))}")
        else:
            messages.error(request, exc.message)
        return redirect("offer", offer_id=offer_id)
    messages.success(request, "Booked. You will get access shortly before the session.")
    return redirect("sessions")


# A session's status in words, with the badge colour it shows in.
SESSION_STATUS = {
    "scheduled": ("Scheduled", "info"), "in_progress": ("In progress", "ok"),
    "completed": ("Completed", "ok"), "no_show_student": ("Student absent", "warn"),
    "no_show_coach": ("Coach absent", "err"), "early_end_short": ("Ended early", "warn"),
    "cancelled": ("Cancelled", ""),
}
SESSIONS_SHOWN = 100  # upcoming, and past, on one page each


@login_required
@require_safe
def my_sessions(request: HttpRequest) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]  # @login_required: an authenticated User
    from coachgate.access.services import join_info

    now = clock.now()
    mine = scheduling.visible_sessions(user).select_related("offer", "coach")
    upcoming = list(mine.filter(ends_at__gt=now).order_by("starts_at")[:SESSIONS_SHOWN])
    past = list(mine.filter(ends_at__lte=now).order_by("-starts_at")[:SESSIONS_SHOWN])
    rows = upcoming + past
    joins = join_info(rows, now)  # a session whose policy cannot be read: "unavailable"
    buttons = _outcome_buttons(user, rows, now)
    for s in rows:
        s.join = joins[s.pk]  # type: ignore[attr-defined]  # a page-only attribute for the template
        s.outcome = buttons.get(s.pk)  # type: ignore[attr-defined]  # a page-only attribute for the template
        s.status_words, s.status_badge = SESSION_STATUS.get(  # type: ignore[attr-defined]  # page-only attributes for the template
            s.status, (s.status.replace("_", " ").capitalize(), ""))
    return render(request, "web/sessions.html",
                  {"upcoming": upcoming, "past": past, "rows": rows,
                   "tz": str(timezone.get_current_timezone()), "now": now})


def _outcome_buttons(user: User, rows: list[Any], now: datetime) -> dict[int, Any]:
    """The outcome buttons of every session; when that fails (a session whose money policy
    cannot be read, stored before validation existed), session by session, and a session
    that still fails shows none: the page answers whatever one row holds."""
    from .outcomes import outcome_buttons

    try:
        return dict(outcome_buttons(user, rows, now))
    except Exception:
        log.warning("outcome buttons failed; session by session", exc_info=True)
    out: dict[int, Any] = {}
    for s in rows:
        try:
            out.update(outcome_buttons(user, [s], now))
        except Exception:
            log.exception("no outcome buttons for session %s", s.pk)
    return out


@login_required
@require_safe
def join_session(request: HttpRequest, session_id: int) -> HttpResponse:
    """coachgate's join link of a session (in e-mails, reminders and the sessions page): on
    to the provider inside the window, else a countdown, "over" or "cancelled" page."""
    from coachgate.meetings import services as meetings

    user: User = request.user  # type: ignore[assignment]  # @login_required: an authenticated User
    now = clock.now()
    try:
        join = meetings.join(user, session_id, now=now)
    except NotFound:
        raise Http404("No such session.") from None
    except CoachgateError as exc:  # access settings that cannot be read: say so
        messages.error(request, exc.message)
        return redirect("sessions")
    if join.url:
        return redirect(join.url)
    left = int(join.opens_in(now).total_seconds())
    opens_in = (f"{left // 3600} h {left % 3600 // 60} min" if left >= 3600
                else f"{left // 60}:{left % 60:02d}")
    return render(request, "web/join.html", {"join": join, "opens_in": opens_in})


_OUTCOME_ACTIONS = {"no-show": "Marked the student absent.",
                    "coach-no-show": "Reported the coach absent.",
                    "complete": "Session ended."}


@login_required
@require_POST
def outcome(request: HttpRequest, session_id: int, action: str) -> HttpResponse:
    """The sessions page's outcome buttons (the same service functions as the API)."""
    from coachgate.billing import services as billing

    user: User = request.user  # type: ignore[assignment]  # @login_required: an authenticated User
    calls = {"no-show": billing.mark_student_no_show, "coach-no-show": billing.report_coach_no_show,
             "complete": billing.complete}
    if action not in calls:
        messages.error(request, "Unknown action.")
        return redirect("sessions")
    try:
        student = request.POST.get("student_id", "")
        if action == "no-show" and student.isdigit() and len(student) < 19:
            # A group session: the coach names the absent student (the dashboard's buttons).
            billing.mark_student_no_show(user, session_id, student_id=int(student))
        else:
            calls[action](user, session_id)
        messages.success(request, _OUTCOME_ACTIONS[action])
    except CoachgateError as exc:
        messages.error(request, exc.message)
    return _back(request)


def _back(request: HttpRequest) -> HttpResponse:
    """Where the outcome buttons were pressed: the coach dashboard's session pages send
    ``next`` (only a path under /coach/sessions/ is followed), everyone else the sessions
    page."""
    from django.utils.http import url_has_allowed_host_and_scheme

    back = request.POST.get("next", "")
    if back.startswith("/coach/sessions/") and url_has_allowed_host_and_scheme(
            back, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return redirect(back)
    return redirect("sessions")


@login_required
@require_POST
def cancel(request: HttpRequest, session_id: int) -> HttpResponse:
    try:
        scheduling.cancel_booking(request.user, session_id)  # type: ignore[arg-type]  # @login_required: an authenticated User
        messages.success(request, "Cancelled.")
    except CoachgateError as exc:
        messages.error(request, exc.message)
    return redirect("sessions")


@login_required
@require_POST
def discord_join(request: HttpRequest) -> HttpResponse:
    """The verification card's "Join the server" button."""
    from coachgate.accounts import discord

    try:
        state = discord.join_guild(request.user, now=clock.now())  # type: ignore[arg-type]  # @login_required: an authenticated User
        if state == discord.VERIFIED:
            messages.success(request, "You are in the coaching server.")
        elif state == discord.NOT_CONNECTED:  # nothing to join with: say so, not silence
            messages.error(request, "Connect your Discord account first.")
    except CoachgateError as exc:
        messages.error(request, exc.message)
    return redirect("sessions")

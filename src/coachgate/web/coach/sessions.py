"""Coach dashboard: sessions (/coach/sessions/) and one session's page with its audit trail
and gate timeline (/coach/sessions/<id>/).

Every row a page shows is built by ``session_rows`` from a bounded page of sessions with a
fixed number of queries (sessions, their bookings, access rows, settlements), whatever the
number of rows: a coach with 500 sessions gets pages of PAGE_SIZE.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.paginator import Page, Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import URLPattern, path
from django.views.decorators.http import require_safe

from coachgate.access import services as access
from coachgate.accounts.models import User
from coachgate.billing import services as billing
from coachgate.kit import clock
from coachgate.kit.errors import NotFound
from coachgate.kit.money import format_amount
from coachgate.scheduling.models import Session

from ..outcomes import OutcomeButtons, outcome_buttons
from .common import coach_required, tabs

log = logging.getLogger(__name__)

PAGE_SIZE = 20

_STATUS_WORDS = {
    "completed": ("Completed", "ok"),
    "no_show_student": ("Student absent", "warn"),
    "no_show_coach": ("You were reported absent", "err"),
    "early_end_short": ("Ended early", "warn"),
    "cancelled": ("Cancelled", ""),
    "in_progress": ("In progress", "info"),
}

_EVENT_WORDS = {
    "booked": "Booked",
    "seat_taken": "Another student booked a seat",
    "seat_freed": "A student gave up their seat",
    "cancelled": "Cancelled",
    "rescheduled": "Moved to a new time",
    "started": "Started",
    "completed": "Completed",
    "no_show_student": "Student marked absent",
    "no_show_coach": "Coach reported absent",
    "early_end_short": "Ended early",
    "student_marked_absent": "A student marked absent",
}


@dataclass
class Answer:
    label: str
    value: str


@dataclass
class Seat:
    """One booking of the session, as the coach sees it."""
    student: str
    student_id: int
    active: bool
    answers: list[Answer]
    outcome: str = ""  # the settled outcome in words
    payout: str = ""  # the coach's share of it
    charged: str = ""


@dataclass
class SessionRow:
    session: Session
    status: str
    tone: str  # the badge's colour: ok | warn | err | info | ""
    seats: list[Seat]
    join: access.JoinInfo | None
    outcome: OutcomeButtons
    payout: str = ""  # the coach's total payout of the session, once settled
    payout_minor: int | None = None
    settled: bool = False

    @property
    def group(self) -> bool:
        """More than one student: each is marked absent on their own."""
        return sum(1 for s in self.seats if s.active) > 1

    @property
    def no_show_open(self) -> bool:
        return any(action == "no-show" for action, _ in self.outcome.buttons)

    @property
    def open(self) -> bool:
        """Not yet ended in an outcome: the join link is still worth showing."""
        return self.session.status in ("scheduled", "in_progress")

    @property
    def students(self) -> str:
        names = [s.student for s in self.seats if s.active] or [s.student for s in self.seats]
        return ", ".join(names) or "—"


def _name(user: User) -> str:
    return user.display_name or user.email


def _answer_text(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value)


def intake_answers(fields: list[dict[str, Any]], answers: dict[str, Any]) -> list[Answer]:
    """The answers under the labels of the offer's intake fields, in the fields' order; an
    answer to a field the offer no longer has keeps its key as the label."""
    out: list[Answer] = []
    seen: set[str] = set()
    for f in fields if isinstance(fields, list) else []:
        key = str(f.get("key", "")) if isinstance(f, dict) else ""
        if key and key in answers and _answer_text(answers[key]) != "":
            out.append(Answer(str(f.get("label") or key), _answer_text(answers[key])))
            seen.add(key)
    out += [Answer(str(k), _answer_text(v)) for k, v in answers.items()
            if k not in seen and _answer_text(v) != ""]
    return out


def _status(session: Session, now: datetime) -> tuple[str, str]:
    if session.status in _STATUS_WORDS:
        return _STATUS_WORDS[session.status]
    if now >= session.ends_at:
        return "Waiting for its outcome", "warn"
    if now >= session.starts_at:
        return "Happening now", "info"
    return "Scheduled", "info"


def _outcomes(user: User, sessions: list[Session], now: datetime) -> dict[int, OutcomeButtons]:
    """The outcome buttons; a session whose money policy cannot be read shows none (the
    other rows are unaffected), as on the student's sessions page."""
    try:
        return outcome_buttons(user, sessions, now)
    except Exception:
        log.warning("outcome buttons failed; session by session", exc_info=True)
    out: dict[int, OutcomeButtons] = {}
    for s in sessions:
        try:
            out.update(outcome_buttons(user, [s], now))
        except Exception:
            log.exception("no outcome buttons for session %s", s.pk)
    return out


def session_rows(user: User, sessions: list[Session], now: datetime) -> list[SessionRow]:
    """What the pages show of each session, in three queries for all of them (access rows,
    settlements; the bookings come prefetched with the sessions)."""
    joins = access.join_info(sessions, now) if sessions else {}
    settled = billing.coach_settlements(user, sessions) if sessions else {}
    buttons = _outcomes(user, sessions, now)
    rows: list[SessionRow] = []
    for s in sessions:
        by_booking = {x.booking_id: x for x in settled.get(s.pk, [])}
        seats: list[Seat] = []
        for b in s.bookings.all():
            seat = Seat(_name(b.student), b.student_id, b.status == "active",
                        intake_answers(s.offer.intake_fields, b.intake_answers or {}))
            got = by_booking.get(b.pk)
            if got is not None:
                seat.outcome = billing.describe_outcome(got.outcome)
                seat.payout = format_amount(got.payout_minor, got.currency)
                seat.charged = format_amount(got.charge_minor, got.currency)
            seats.append(seat)
        status, tone = _status(s, now)
        row = SessionRow(s, status, tone, seats, joins.get(s.pk),
                         buttons.get(s.pk) or OutcomeButtons())
        mine = settled.get(s.pk, [])
        if mine:
            row.settled = True
            row.payout_minor = sum(x.payout_minor for x in mine)
            row.payout = format_amount(row.payout_minor, mine[0].currency)
        rows.append(row)
    return rows


def _page(qs: Any, number: str | None) -> Page[Session]:
    return Paginator(qs, PAGE_SIZE).get_page(number)


@coach_required
@require_safe
def session_list(request: HttpRequest) -> HttpResponse:
    from coachgate.scheduling import services as scheduling

    user: User = request.coach  # type: ignore[attr-defined]  # set by @coach_required
    now = clock.now()
    upcoming = _page(scheduling.coach_upcoming(user), request.GET.get("up"))
    past = _page(scheduling.coach_past(user), request.GET.get("page"))
    up_list, past_list = list(upcoming), list(past)
    rows = session_rows(user, up_list + past_list, now)
    return render(request, "web/coach/sessions_list.html", {
        "tabs": tabs(request), "now": now,
        "upcoming": upcoming, "past": past,
        "upcoming_rows": rows[:len(up_list)], "past_rows": rows[len(up_list):],
    })


@dataclass
class AuditLine:
    at: datetime
    what: str
    who: str
    change: str


def _who(event_actor_id: int | None, session: Session, user: User) -> str:
    if event_actor_id is None:
        return "the system"
    if event_actor_id == user.pk:
        return "you"
    for b in session.bookings.all():
        if b.student_id == event_actor_id:
            return _name(b.student)
    return "an admin"


def _status_word(status: Any) -> str:
    words = {"scheduled": "scheduled", **{k: v.lower() for k, (v, _) in _STATUS_WORDS.items()}}
    return words.get(str(status), str(status).replace("_", " "))


def _change(before: dict[str, Any], after: dict[str, Any]) -> str:
    """What an event changed, in words: the status, the time, the seats."""
    from django.utils import timezone
    from django.utils.dateformat import format as date_format

    parts: list[str] = []
    if before.get("status") and before.get("status") != after.get("status"):
        parts.append(f"{_status_word(before['status'])} → "
                     f"{_status_word(after.get('status', ''))}")
    if before.get("starts_at") and before.get("starts_at") != after.get("starts_at"):
        try:
            tz = timezone.get_current_timezone()
            old = datetime.fromisoformat(before["starts_at"]).astimezone(tz)
            new = datetime.fromisoformat(after["starts_at"]).astimezone(tz)
            parts.append(f"from {date_format(old, 'D j M H:i')} to {date_format(new, 'D j M H:i')}")
        except (TypeError, ValueError):
            parts.append("new time")
    if "seats_taken" in before and before.get("seats_taken") != after.get("seats_taken"):
        parts.append(f"seats {before.get('seats_taken')} → {after.get('seats_taken')}")
    return "; ".join(parts)


@coach_required
@require_safe
def session_detail(request: HttpRequest, session_id: int) -> HttpResponse:
    from coachgate.scheduling import services as scheduling

    user: User = request.coach  # type: ignore[attr-defined]  # set by @coach_required
    now = clock.now()
    try:
        session = scheduling.get_coached_session(user, session_id)  # another coach's: 404
    except NotFound as exc:
        raise Http404(exc.message) from exc
    [row] = session_rows(user, [session], now)
    events = scheduling.session_events(user, session.pk)[-200:]  # bounded: the latest 200
    audit = [AuditLine(e.at, _EVENT_WORDS.get(e.kind, e.kind.replace("_", " ")),
                       _who(e.actor_id, session, user), _change(e.before, e.after))
             for e in events]
    timeline: access.GateTimeline | None = None
    timeline_problem = ""
    try:
        timeline = access.gate_timeline(session, now=now)
    except access.AccessUnavailable as exc:
        timeline_problem = exc.message
    return render(request, "web/coach/sessions_detail.html", {
        "tabs": tabs(request), "now": now, "row": row, "s": session, "audit": audit,
        "timeline": timeline, "timeline_problem": timeline_problem,
        "back": request.path,
    })


urlpatterns: list[URLPattern] = [
    path("sessions/", session_list, name="coach_sessions"),
    path("sessions/<int:session_id>/", session_detail, name="coach_session"),
]

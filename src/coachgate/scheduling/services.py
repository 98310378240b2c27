"""Scheduling use cases: availability, slots, booking, cancellation, rescheduling and the
session state machine. The only code that changes these rows.

Each state change has one owner function here, which writes its audit event in the same
transaction and emits a session event once that transaction commits.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypeVar, cast
from zoneinfo import ZoneInfo

from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import Count, F, Prefetch, Q, QuerySet

from coachgate.accounts.models import Role, User
from coachgate.catalog.models import CoachProfile, Offer
from coachgate.catalog.rules import (
    MIN_SLOT_STEP_MINUTES,
    OFFER_INT_BOUNDS,
    parse_access_policy,
    validate_intake_answers,
)
from coachgate.catalog.services import coach_profile_of
from coachgate.kit import clock, enqueue, idempotency
from coachgate.kit.errors import (
    AlreadyBooked,
    BookingNotCompleted,
    CancellationNotAllowed,
    CoachgateError,
    Forbidden,
    InvalidInput,
    InvalidTransition,
    NotFound,
    OfferNotBookable,
    PastSlot,
    SessionFull,
    SessionStarted,
    SlotNotOffered,
    SlotTaken,
)
from coachgate.kit.rows import get_by_pk
from coachgate.kit.rows import insert as insert_rows

from . import rules
from .events import SessionEventKind, booking_made, booking_requested, emit_on_commit
from .lifecycle import (
    CancellationOutcome,
    SessionStatus,
    can_transition,
    decide_cancellation,
    student_may_reschedule,
)
from .models import (
    AvailabilityOverride,
    Booking,
    BookingStatus,
    Session,
    SessionEvent,
    WeeklyAvailability,
)
from .signals import bump_availability_version

log = logging.getLogger(__name__)

T = TypeVar("T")
OVERLAP_CONSTRAINT = "scheduling_session_no_overlap"
MAX_SLOT_WINDOW = timedelta(days=92)  # the widest range one slot request may ask for
# How many slots one answer holds (the API's `limit`): a page, with the next page's start.
DEFAULT_SLOT_LIMIT = 200
MAX_SLOT_LIMIT = 500
# Offers step at least this often even when stored otherwise (catalog.rules refuses less).
MIN_SLOT_STEP = timedelta(minutes=MIN_SLOT_STEP_MINUTES)

# --- availability ---------------------------------------------------------------------


@dataclass(frozen=True)
class RuleInput:
    weekday: int
    start: time
    end: time


def _as_input(build: Callable[..., T], field: str, *args: Any) -> T:
    """Build a pure rule object; whatever it refuses is the caller's invalid input (422)."""
    try:
        return build(*args)
    except ValueError as exc:
        message = str(exc)
        raise InvalidInput(message[:1].upper() + message[1:] + ".",
                           details={"field": field}) from None


def set_weekly_availability(actor: User, items: Iterable[RuleInput]) -> list[WeeklyAvailability]:
    """Replace the coach's weekly rules with ``items`` (local times in the coach's zone)."""
    coach = coach_profile_of(actor)
    items = list(items)
    for i, item in enumerate(items):
        _as_input(rules.WeeklyRule, f"rules[{i}]", item.weekday, item.start, item.end)
    with transaction.atomic():
        WeeklyAvailability.objects.filter(coach=coach).delete()
        created = WeeklyAvailability.objects.bulk_create(
            WeeklyAvailability(coach=coach, weekday=i.weekday, start_time=i.start, end_time=i.end)
            for i in items
        )
        bump_availability_version(coach.pk)  # bulk_create sends no signals
        return created


def apply_preset(actor: User, weekdays: Iterable[int], preset: str) -> list[WeeklyAvailability]:
    """Add a preset (morning 09–12, afternoon 13–17, evening 18–21) on the given weekdays."""
    if preset not in rules.PRESETS:
        raise InvalidInput(f"Unknown preset '{preset}'; use {', '.join(rules.PRESETS)}.",
                           details={"field": "preset"})
    start, end = rules.PRESETS[preset]
    coach = coach_profile_of(actor)
    current = [RuleInput(r.weekday, r.start_time, r.end_time) for r in coach.weekly_rules.all()]
    wanted = [RuleInput(d, start, end) for d in sorted(set(weekdays))]
    return set_weekly_availability(actor, current + [w for w in wanted if w not in current])


def weekly_availability(coach: CoachProfile) -> list[WeeklyAvailability]:
    return list(WeeklyAvailability.objects.filter(coach=coach))


def add_override(
    actor: User, *, day: date, kind: str, start: time | None = None, end: time | None = None
) -> AvailabilityOverride:
    coach = coach_profile_of(actor)
    _as_input(rules.DateOverride, "override", day, kind, start, end)
    # The instants of every date the slot engine touches stay inside kit.clock's range, as
    # bookings do (9999-12-31 would overflow the first step past it).
    if not clock.EARLIEST.date() <= day < clock.LATEST.date():
        raise InvalidInput("'day' must be between the years 1900 and 9000.",
                           details={"field": "day"})
    return AvailabilityOverride.objects.create(
        coach=coach, day=day, kind=kind, start_time=start, end_time=end
    )


def delete_override(actor: User, override_id: int) -> None:
    coach = coach_profile_of(actor)
    deleted, _ = AvailabilityOverride.objects.filter(pk=override_id, coach=coach).delete()
    if not deleted:
        raise NotFound("No such override.")


def list_overrides(coach: CoachProfile) -> list[AvailabilityOverride]:
    return list(AvailabilityOverride.objects.filter(coach=coach))


# --- slots ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SlotView:
    start: datetime
    end: datetime
    seats_left: int


def booking_rules(offer: Offer) -> rules.BookingRules:
    duration = timedelta(minutes=offer.duration_minutes)
    # No step given: the duration, but never under MIN_SLOT_STEP (a one-minute offer would
    # otherwise list a slot every minute).
    step = timedelta(minutes=offer.slot_step_minutes) if offer.slot_step_minutes else duration
    return rules.BookingRules(
        duration=duration,
        step=max(step, MIN_SLOT_STEP),
        buffer_before=timedelta(minutes=offer.buffer_before_minutes),
        buffer_after=timedelta(minutes=offer.buffer_after_minutes),
        min_notice=timedelta(minutes=offer.min_notice_minutes),
        horizon=timedelta(days=offer.horizon_days),
        max_per_day=offer.max_sessions_per_day,
    )


# Availability per coach, cached per process and keyed by the coach's availability_version,
# which arrives with the offer row: a cached copy is never older than that read. Weekly
# rules and overrides are small; the cache holds at most _CACHE_SIZE coaches.
_CACHE_SIZE = 1024
_availability_cache: dict[int, tuple[int, list[rules.WeeklyRule], list[rules.DateOverride]]] = {}


def _availability(coach: CoachProfile) -> tuple[list[rules.WeeklyRule], list[rules.DateOverride]]:
    hit = _availability_cache.get(coach.pk)
    if hit is not None and hit[0] == coach.availability_version:
        return hit[1], hit[2]
    weekly = [rules.WeeklyRule(*row) for row in WeeklyAvailability.objects.filter(
        coach_id=coach.pk).values_list("weekday", "start_time", "end_time")]
    overrides = [
        rules.DateOverride(*row)  # type: ignore[arg-type]  # kind is a checked choice
        for row in AvailabilityOverride.objects.filter(coach_id=coach.pk).values_list(
            "day", "kind", "start_time", "end_time")
    ]
    if len(_availability_cache) >= _CACHE_SIZE:
        _availability_cache.clear()  # simple and rare: coaches beyond the cache size
    _availability_cache[coach.pk] = (coach.availability_version, weekly, overrides)
    return weekly, overrides


# Sessions a little beyond a window matter: buffers and the per-day cap of local days.
_MARGIN = timedelta(days=2)
# id, offer_id, starts_at, ends_at, status, capacity, seats_taken, and the session's own
# buffers (minutes, from its offer)
SessionRow = tuple[int, int, datetime, datetime, str, int, int, int, int]


# The hottest read (every booking attempt, every slot listing), so plain SQL: through the
# ORM it cost 0.34 ms of CPU per call against 0.05 ms for a raw statement (measured on the
# development machine; see docs/benchmarks.md). "status <> 'cancelled'" means live, the
# same predicate as the no-overlap constraint's.
_SESSION_ROWS_SQL = (
    "SELECT s.id, s.offer_id, s.starts_at, s.ends_at, s.status, s.capacity, s.seats_taken,"
    " o.buffer_before_minutes, o.buffer_after_minutes"
    " FROM scheduling_session s JOIN catalog_offer o ON o.id = s.offer_id"
)
_COACH_SESSIONS_SQL = (
    _SESSION_ROWS_SQL +
    " WHERE s.coach_id = %s AND s.starts_at < %s AND s.ends_at > %s"
    " AND s.status <> 'cancelled'"
)


def _coach_sessions(coach_id: int, start: datetime, end: datetime,
                    exclude_session_id: int | None = None) -> list[SessionRow]:
    """The coach's live sessions touching [start - margin, end + margin), as plain rows."""
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cur:
        cur.execute(_COACH_SESSIONS_SQL, [coach_id, adapt(end + _MARGIN),
                                          adapt(start - _MARGIN)])
        rows = cur.fetchall()
    return _session_rows(rows, exclude_session_id)


def _session_rows(rows: Iterable[tuple[Any, ...]],
                  exclude_session_id: int | None = None) -> list[SessionRow]:
    aware = connection.vendor == "sqlite"  # SQLite hands back naive UTC datetimes
    return [
        (pk, offer_id, s.replace(tzinfo=UTC) if aware else s,
         e.replace(tzinfo=UTC) if aware else e, status, capacity, taken, before, after)
        for pk, offer_id, s, e, status, capacity, taken, before, after in rows
        if pk != exclude_session_id
    ]


# A booking is decided by fewer sessions than a slot page: those whose time, widened by
# their buffers and the new session's, meets [start, end), and for a daily cap those that
# start on its local day. Reading exactly those (not two days around) is most of what a
# booking attempt's read costs: every row's timestamps are parsed (bench_booking_race).
_MAX_BUFFER = timedelta(minutes=max(OFFER_INT_BOUNDS["buffer_before_minutes"][1],
                                    OFFER_INT_BOUNDS["buffer_after_minutes"][1]))
_BOOKING_SESSIONS_SQL = (
    _SESSION_ROWS_SQL +
    " WHERE s.coach_id = %s AND s.status <> 'cancelled' AND ("
    " (s.starts_at < %s AND s.ends_at > %s)"
    " OR ((o.buffer_before_minutes > 0 OR o.buffer_after_minutes > 0)"
    " AND s.starts_at < %s AND s.ends_at > %s){day})"
)
_BOOKING_DAY_SQL = " OR (s.starts_at >= %s AND s.starts_at < %s)"


def _booking_sessions(offer: Offer, start: datetime, end: datetime) -> list[SessionRow]:
    """The coach's live sessions that can decide a booking of ``offer`` at [start, end):

    * a session without buffers conflicts only if it overlaps [start - the offer's buffer
      before, end + its buffer after);
    * one with buffers only if that range, widened by the largest buffer an offer may
      have (catalog.rules), meets it (the exact test is the slot engine's);
    * with a daily cap, every session starting on the slot's local day in the coach's zone.
    """
    near_from = start - timedelta(minutes=offer.buffer_before_minutes)
    near_until = end + timedelta(minutes=offer.buffer_after_minutes)
    adapt = connection.ops.adapt_datetimefield_value
    params: list[Any] = [offer.coach_id, adapt(near_until), adapt(near_from),
                         adapt(near_until + _MAX_BUFFER), adapt(near_from - _MAX_BUFFER)]
    day = ""
    if offer.max_sessions_per_day:
        tz = ZoneInfo(offer.coach.timezone)
        local_day = start.astimezone(tz).date()
        day_start = datetime.combine(local_day, time(0), tz).astimezone(UTC)
        day_end = datetime.combine(local_day + timedelta(days=1), time(0), tz).astimezone(UTC)
        params += [adapt(day_start), adapt(day_end)]
        day = _BOOKING_DAY_SQL
    with connection.cursor() as cur:
        cur.execute(_BOOKING_SESSIONS_SQL.format(day=day), params)
        return _session_rows(cur.fetchall())


def _compute(
    offer: Offer, *, start: datetime, end: datetime, now: datetime,
    exclude_session_id: int | None = None, sessions: list[SessionRow] | None = None,
    limit: int | None = None,
) -> list[SlotView]:
    coach = offer.coach
    if sessions is None:
        sessions = _coach_sessions(coach.pk, start, end, exclude_session_id)
    weekly, all_overrides = _availability(coach)
    first, last = (start - _MARGIN).date(), (end + _MARGIN).date()
    overrides = [o for o in all_overrides if first <= o.day <= last]
    busy: list[rules.Interval] = []
    joinable: dict[datetime, int] = {}
    for _pk, offer_id, s_start, s_end, status, capacity, taken, before, after in sessions:
        if (offer.capacity > 1 and offer_id == offer.pk and status == SessionStatus.SCHEDULED
                and taken < capacity):
            joinable[s_start] = capacity - taken
        else:
            busy.append(rules.Interval(s_start, s_end, timedelta(minutes=before),
                                       timedelta(minutes=after)))
    slots = rules.compute_slots(
        tz=ZoneInfo(coach.timezone), weekly=weekly, overrides=overrides,
        rules=booking_rules(offer), busy=busy, now=now, window_start=start, window_end=end,
        limit=limit,
    )
    return [SlotView(s.start, s.end, joinable.get(s.start, offer.capacity)) for s in slots]


@dataclass(frozen=True)
class SlotPage:
    slots: list[SlotView]
    # The start of the first slot after this page, to pass as the next request's start;
    # None when the page holds every slot up to the range's end.
    next_start: datetime | None


def slot_page(
    actor: User | None, offer: Offer, *, start: datetime | None = None,
    end: datetime | None = None, now: datetime | None = None, limit: int = DEFAULT_SLOT_LIMIT,
) -> SlotPage:
    """The first ``limit`` bookable slots of an offer between start and end (UTC instants).

    At most MAX_SLOT_WINDOW of range and MAX_SLOT_LIMIT slots per call; the slot engine
    stops once it has one slot more than the page (which says where the next page starts).
    Availability is read as of ``offer.coach`` (its availability_version): pass an offer
    loaded for this request, as the routes do.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_SLOT_LIMIT:
        raise InvalidInput(f"'limit' must be between 1 and {MAX_SLOT_LIMIT}.",
                           details={"field": "limit"})
    now = now or clock.now()
    start = clock.require_aware(start, "from") if start else now
    default_end = start + min(timedelta(days=offer.horizon_days), MAX_SLOT_WINDOW)
    end = clock.require_aware(end, "to") if end else default_end
    if end <= start:
        raise InvalidInput("'to' must be after 'from'.", details={"field": "to"})
    if end - start > MAX_SLOT_WINDOW:
        raise InvalidInput("Ask for at most 92 days of slots at a time.", details={"field": "to"})
    if not offer.is_bookable:
        return SlotPage([], None)
    found = _compute(offer, start=start, end=end, now=now, limit=limit + 1)
    if len(found) > limit:
        return SlotPage(found[:limit], found[limit].start)
    return SlotPage(found, None)


def list_slots(
    actor: User | None, offer: Offer, *, start: datetime | None = None,
    end: datetime | None = None, now: datetime | None = None, limit: int = MAX_SLOT_LIMIT,
) -> list[SlotView]:
    """The first ``limit`` slots (at most MAX_SLOT_LIMIT) of slot_page; a caller that needs
    more follows slot_page's next_start."""
    return slot_page(actor, offer, start=start, end=end, now=now, limit=limit).slots


def preview_slots(
    actor: User, offer: Offer, *, start: datetime, end: datetime, now: datetime,
    limit: int = MAX_SLOT_LIMIT,
) -> SlotPage:
    """The slots ``offer`` offers between start and end, for its coach (or an admin), as
    slot_page computes them, whatever the offer's status: a draft's preview is what
    students will see once it is published (slot_page answers nothing for a draft)."""
    if offer.coach.user_id != actor.pk and not actor.is_admin:
        raise Forbidden("Only the offer's coach can preview its slots.")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_SLOT_LIMIT:
        raise InvalidInput(f"'limit' must be between 1 and {MAX_SLOT_LIMIT}.",
                           details={"field": "limit"})
    if not timedelta(0) < end - start <= MAX_SLOT_WINDOW:
        raise InvalidInput("Ask for at most 92 days of slots at a time.", details={"field": "to"})
    found = _compute(offer, start=clock.require_aware(start, "from"),
                     end=clock.require_aware(end, "to"), now=now, limit=limit + 1)
    if len(found) > limit:
        return SlotPage(found[:limit], found[limit].start)
    return SlotPage(found, None)


def _slot_offered(offer: Offer, start: datetime, now: datetime,
                  exclude_session_id: int | None = None,
                  sessions: list[SessionRow] | None = None) -> SlotView | None:
    found = _compute(offer, start=start, end=start + timedelta(seconds=1), now=now,
                     exclude_session_id=exclude_session_id, sessions=sessions, limit=1)
    return found[0] if found and found[0].start == start else None


# --- audit ----------------------------------------------------------------------------


def _snapshot(session: Session) -> dict[str, Any]:
    return {
        "status": session.status,
        "starts_at": session.starts_at.isoformat(),
        "ends_at": session.ends_at.isoformat(),
        "seats_taken": session.seats_taken,
    }


def _audit(session: Session, kind: SessionEventKind, actor: User | None, now: datetime,
           before: dict[str, Any], booking: Booking | None = None) -> None:
    insert_rows(SessionEvent(session=session, booking=booking, kind=kind, actor=actor, at=now,
                             before=before, after=_snapshot(session)))
    emit_on_commit(kind, session.pk, booking.pk if booking else None)


def record_event(session: Session, kind: SessionEventKind, actor: User | None, now: datetime, *,
                 booking: Booking | None = None,
                 details: dict[str, Any] | None = None) -> SessionEvent:
    """A fact another domain adds to the session's audit trail when the session itself does
    not change (a student of a group session marked absent). Emits no session event."""
    snapshot = _snapshot(session)
    return SessionEvent.objects.create(session=session, booking=booking, kind=kind,
                                       actor=actor, at=now, before=snapshot,
                                       after={**snapshot, **(details or {})})


def _is_overlap(exc: IntegrityError) -> bool:
    return OVERLAP_CONSTRAINT in str(exc)


_ATTEMPTS = 3
# PostgreSQL: deadlock_detected, serialization_failure. Both mean "lost a race, try again".
_TRANSIENT_SQLSTATES = frozenset({"40P01", "40001"})


def _is_transient(exc: OperationalError) -> bool:
    return getattr(exc.__cause__, "sqlstate", None) in _TRANSIENT_SQLSTATES


# --- booking --------------------------------------------------------------------------


# What booking reads of the offer and its coach (the full row's four JSON columns were a
# fifth of a booking's CPU; bench/bench_booking_race.py). Other fields load on first access.
_BOOKING_OFFER_FIELDS = (
    "id", "coach", "title", "status", "capacity", "delivery", "access_policy",
    "money_policy", "free_cancellation_hours", "price_minor", "currency", "pack_size",
    "duration_minutes", "intake_fields", "buffer_before_minutes", "buffer_after_minutes",
    "min_notice_minutes", "horizon_days", "max_sessions_per_day", "slot_step_minutes",
)
_BOOKING_COACH_FIELDS = ("id", "user", "timezone", "status", "availability_version",
                         "display_name")


def _offer_to_book(offer_id: int) -> Offer | None:
    """The offer with its coach, in one read compiled once (kit.rows.get_by_pk)."""
    found = get_by_pk(offer_id, (Offer, _BOOKING_OFFER_FIELDS),
                      (CoachProfile, _BOOKING_COACH_FIELDS), join_on=("coach",))
    if found is None:
        return None
    offer = cast(Offer, found[0])
    offer.coach = cast(CoachProfile, found[1])
    return offer


@dataclass(frozen=True)
class Idempotency:
    """A request's Idempotency-Key and the digest of what it asked."""

    key: str
    digest: str


def booking_idempotency(key: str | None, *, offer_id: int, start: datetime,
                        intake: dict[str, Any] | None, via: str = "") -> Idempotency | None:
    if key is None:
        return None
    return Idempotency(key, idempotency.digest({
        "via": via, "offer_id": offer_id, "start": start.astimezone(UTC).isoformat(),
        "intake": intake or {}}))


def _replayed(student: User, idem: Idempotency | None) -> Booking | None:
    """The booking an earlier request with this key made, if any (same request only)."""
    if idem is None:
        return None
    booking = (Booking.objects.select_related("session__offer", "session__coach")
               .filter(student=student, idempotency_key=idem.key).first())
    if booking is not None:
        idempotency.check_same_request(booking.request_digest, idem.digest)
    return booking


def book_session(
    student: User, offer_id: int, start: datetime, *, intake: dict[str, Any] | None = None,
    now: datetime | None = None, idempotency_key: str | None = None,
    on_booked: Callable[[Booking], None] | None = None, via: str = "",
) -> Booking:
    """Book the slot starting at ``start``. Raises SlotTaken (409) if someone won the race.

    With an ``idempotency_key``, a retry of the same request returns the booking the first
    one made (whatever happened since), never a second one. ``on_booked`` runs inside the
    booking's transaction once the booking exists (packs record the pack use there); what
    it raises undoes the booking.
    """
    now = now or clock.now()
    start = clock.require_aware(start, "start")
    if student.role != Role.STUDENT:
        raise Forbidden("Only student accounts book sessions.")
    idem = booking_idempotency(idempotency_key, offer_id=offer_id, start=start, intake=intake,
                               via=via)
    first = _replayed(student, idem)
    if first is not None:
        return first
    try:
        return _book(student, offer_id, start, intake=intake, now=now, idem=idem,
                     on_booked=on_booked)
    except (SlotTaken, AlreadyBooked, SessionFull):
        # Two retries of one request raced: the one that committed is the answer.
        first = _replayed(student, idem)
        if first is not None:
            return first
        raise


def _book(student: User, offer_id: int, start: datetime, *, intake: dict[str, Any] | None,
          now: datetime, idem: Idempotency | None,
          on_booked: Callable[[Booking], None] | None) -> Booking:
    offer = _offer_to_book(offer_id)
    if offer is None or not offer.is_bookable:
        raise OfferNotBookable(details={"offer_id": offer_id})
    answers = validate_intake_answers(offer.intake_fields, intake or {})
    if start <= now:
        raise PastSlot(details={"start": start.isoformat()})
    # Domains above scheduling may refuse a booking with a clear 4xx (access: Discord link
    # missing, guild full) before anything is written.
    booking_requested.send(sender=None, student=student, offer=offer, start=start,
                           end=start + timedelta(minutes=offer.duration_minutes), now=now)
    # A group session can be created by two students at once; the loser of that race joins
    # the winner's session on the next attempt. On PostgreSQL, two concurrent inserts that
    # conflict on the exclusion constraint may each wait for the other; the server then
    # aborts one with "deadlock detected". That is a lost race too: retry, and the retry
    # sees the winner (or waits for it and gets the exclusion violation).
    for attempt in range(_ATTEMPTS):
        last = attempt == _ATTEMPTS - 1
        try:
            early = _read_before_the_transaction(offer, start) if attempt == 0 else None
            return _book_once(student, offer, start, answers, now, idem, on_booked, early)
        except IntegrityError as exc:
            if "one_active_booking" in str(exc):
                raise AlreadyBooked() from None
            if idem is not None and _is_idempotency_clash(exc):
                raise AlreadyBooked() from None  # the caller returns the first booking
            if not _is_overlap(exc):
                raise
            if offer.capacity == 1 or last:
                raise SlotTaken(details={"start": start.isoformat()}) from None
        except OperationalError as exc:
            if not _is_transient(exc):
                raise
            if last:
                raise SlotTaken(details={"start": start.isoformat()}) from None
    raise AssertionError("unreachable")


def _is_idempotency_clash(exc: IntegrityError) -> bool:
    # PostgreSQL names the constraint; SQLite names the columns of the unique index.
    text = str(exc)
    return "booking_idempotency_key_once" in text or "booking.idempotency_key" in text


_COACH_SCHEDULE_LOCK = 0x636F6163  # advisory lock namespace: "coac"


def _group_session(sessions: list[SessionRow], offer: Offer, start: datetime) -> int | None:
    """The scheduled session of this group offer starting at ``start``, if any."""
    if offer.capacity == 1:
        return None
    return next((pk for pk, offer_id, s_start, _, status, *_ in sessions
                 if offer_id == offer.pk and s_start == start
                 and status == SessionStatus.SCHEDULED), None)


def _needs_fresh_read(offer: Offer) -> bool:
    """Rules checked against other sessions that no database constraint enforces."""
    return bool(offer.buffer_before_minutes or offer.buffer_after_minutes
                or offer.max_sessions_per_day or offer.capacity > 1)


def _raise_if_taken(sessions: list[SessionRow], start: datetime, end: datetime) -> None:
    if any(s_start < end and s_end > start for _, _, s_start, s_end, *_ in sessions):
        raise SlotTaken(details={"start": start.isoformat()})


def _lock_coach_schedule(coach_id: int) -> bool:
    """Serialize writes to one coach's schedule until the transaction ends.

    SQLite already runs one write transaction at a time (IMMEDIATE). On PostgreSQL, students
    racing for the same time would otherwise all insert conflicting rows at once; the
    exclusion constraint then makes them wait for each other in cycles that the server
    breaks one per deadlock_timeout, and a group session's first seats could take seconds.
    With the lock, the sessions read below sees every committed competitor, so losers get
    their answer at once and buffers hold under races too. The constraint stays the
    guarantee. Returns whether a lock was taken (then reads made before it are stale).
    """
    if connection.vendor != "postgresql":
        return False  # SQLite: this transaction holds the database's write lock already
    with connection.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_COACH_SCHEDULE_LOCK, coach_id])
    return True


def _read_before_the_transaction(offer: Offer, start: datetime) -> list[SessionRow] | None:
    """PostgreSQL: the coach's sessions, read before the booking's transaction begins, and
    SlotTaken at once if a committed one holds the time (most attempts under contention:
    they then cost no transaction at all). Under READ COMMITTED this read sees what the
    transaction's first read would; what commits after it, the coach's lock and the
    exclusion constraint deal with as before. SQLite: None (its read belongs inside the
    transaction, which holds the database's write lock from its start)."""
    if connection.vendor != "postgresql":
        return None
    end = start + timedelta(minutes=offer.duration_minutes)
    sessions = _booking_sessions(offer, start, end)
    if _group_session(sessions, offer, start) is None:
        _raise_if_taken(sessions, start, end)
    return sessions


@transaction.atomic(durable=True)
def _book_once(student: User, offer: Offer, start: datetime, answers: dict[str, Any],
               now: datetime, idem: Idempotency | None,
               on_booked: Callable[[Booking], None] | None,
               sessions: list[SessionRow] | None = None) -> Booking:
    # Every task row the booking's reactions enqueue is written with it, in one INSERT.
    with enqueue.batch():
        booking, new_session = _write_booking(student, offer, start, answers, now, idem,
                                              on_booked, sessions)
        _send_booking_made(booking, new_session, now)
    return booking


def _send_booking_made(booking: Booking, new_session: bool, now: datetime) -> None:
    """booking_made to every receiver, in the booking's transaction; what one raises undoes
    the booking (a lost race on PostgreSQL is retried by _book like any other)."""
    try:
        booking_made.send(sender=None, booking=booking, new_session=new_session, now=now)
    except CoachgateError:
        raise
    except Exception as exc:
        if isinstance(exc, OperationalError) and _is_transient(exc):
            raise
        log.exception("booking %s undone: a reaction to it failed", booking.pk)
        raise BookingNotCompleted() from exc


def _write_booking(student: User, offer: Offer, start: datetime, answers: dict[str, Any],
                   now: datetime, idem: Idempotency | None,
                   on_booked: Callable[[Booking], None] | None,
                   sessions: list[SessionRow] | None) -> tuple[Booking, bool]:
    end = start + timedelta(minutes=offer.duration_minutes)
    # One read of the coach's sessions answers most questions: the group session to join,
    # or the committed session that holds the time (most losers of a race stop here,
    # without queueing for the coach's lock). ``sessions``: read already, just before.
    if sessions is None:
        sessions = _booking_sessions(offer, start, end)
    group_pk = _group_session(sessions, offer, start)
    if group_pk is None:
        _raise_if_taken(sessions, start, end)
        # PostgreSQL: reads made before the lock may miss a competitor that committed while
        # we waited. The exclusion constraint still refuses an overlap (at once: writers
        # are serialized now), so re-read only for what the database does not enforce.
        if _lock_coach_schedule(offer.coach_id) and _needs_fresh_read(offer):
            sessions = _booking_sessions(offer, start, end)
            group_pk = _group_session(sessions, offer, start)
            if group_pk is None:
                _raise_if_taken(sessions, start, end)
    if group_pk is not None:
        session, before = _take_seat(student, offer, group_pk, start, now, sessions)
        kind = SessionEventKind.SEAT_TAKEN
    else:
        if _slot_offered(offer, start, now, sessions=sessions) is None:
            raise SlotNotOffered(details={"start": start.isoformat()})
        session = Session(coach=offer.coach, offer=offer, starts_at=start, ends_at=end,
                          capacity=offer.capacity, seats_taken=1,
                          access_policy=offer.access_policy, money_policy=offer.money_policy)
        before = {}
        insert_rows(session)
        kind = SessionEventKind.BOOKED
    booking = Booking(
        session=session, student=student, intake_answers=answers, booked_at=now,
        free_cancellation_hours=offer.free_cancellation_hours,
        idempotency_key=idem.key if idem else "", request_digest=idem.digest if idem else "")
    insert_rows(booking)
    if on_booked is not None:
        on_booked(booking)
    _audit(session, kind, student, now, before, booking)
    return booking, kind == SessionEventKind.BOOKED


def _take_seat(student: User, offer: Offer, session_pk: int, start: datetime, now: datetime,
               sessions: list[SessionRow]) -> tuple[Session, dict[str, Any]]:
    """Join a group session; part of the caller's transaction. ``sessions`` are the coach's
    sessions the caller read."""
    session = Session.objects.get(pk=session_pk)
    if Booking.objects.filter(session=session, student=student,
                              status=BookingStatus.ACTIVE).exists():
        raise AlreadyBooked()
    if session.seats_taken >= session.capacity:
        raise SessionFull()
    # The session being joined is not in the way of itself: leave it out of the check
    # (others may fill it meanwhile; the conditional UPDATE below decides that race).
    others = [row for row in sessions if row[0] != session.pk]
    if _slot_offered(offer, start, now, sessions=others) is None:
        raise SlotNotOffered(details={"start": start.isoformat()})
    before = _snapshot(session)
    # Atomic row update: the filter and the check constraint both keep
    # seats_taken <= capacity when the last seat is raced for.
    took = Session.objects.filter(pk=session.pk, seats_taken__lt=F("capacity")).update(
        seats_taken=F("seats_taken") + 1, updated_at=now)
    if not took:
        raise SessionFull()
    session.refresh_from_db()
    session.offer, session.coach = offer, offer.coach  # what the reactions read
    return session, before


# --- reading --------------------------------------------------------------------------


def visible_sessions(
    actor: User, *, status: str | None = None, ending_after: datetime | None = None
) -> QuerySet[Session]:
    """Students see sessions they booked, coaches their own sessions, admins all."""
    qs = Session.objects.select_related("offer", "coach")
    if status is not None:
        qs = qs.filter(status=status)
    if ending_after is not None:
        qs = qs.filter(ends_at__gt=ending_after)
    if actor.is_admin:
        return qs
    if actor.is_coach:
        return qs.filter(Q(coach__user=actor) | Q(bookings__student=actor)).distinct()
    return qs.filter(bookings__student=actor).distinct()


def get_session(actor: User, session_id: int) -> Session:
    session = visible_sessions(actor).filter(pk=session_id).first()
    if session is None:
        raise NotFound("No such session.")
    return session


def session_events(actor: User, session_id: int) -> list[SessionEvent]:
    """The audit trail. A student sees the whole trail of their session, but never who the
    other students of a group session are: another student's user id (as the actor, or
    named in the details) is left out."""
    session = get_session(actor, session_id)
    events = list(session.events.all())
    if actor.is_admin or _is_coach_of(actor, session):
        return events
    visible = {actor.pk, session.coach.user_id}
    for event in events:
        if event.actor_id is not None and event.actor_id not in visible:
            event.actor_id = None
        for part in (event.before, event.after):
            if part.get("student_id") not in (None, actor.pk):
                part.pop("student_id")
    return events


# --- the coach dashboard's reads ------------------------------------------------------

OPEN_STATUSES = [SessionStatus.SCHEDULED.value, SessionStatus.IN_PROGRESS.value]


def coached_sessions(actor: User) -> QuerySet[Session]:
    """The sessions the actor coaches (none for anyone else), with their offer, coach and
    bookings (each with its student) loaded in one more query per page, never per row."""
    return (Session.objects.filter(coach__user=actor).select_related("offer", "coach")
            .prefetch_related(Prefetch("bookings", queryset=Booking.objects
                                       .select_related("student").order_by("booked_at", "pk"))))


def coach_upcoming(actor: User) -> QuerySet[Session]:
    """Not yet ended in an outcome (scheduled, running, or waiting to be settled), soonest
    first."""
    return coached_sessions(actor).filter(status__in=OPEN_STATUSES).order_by("starts_at", "pk")


def coach_past(actor: User) -> QuerySet[Session]:
    """Ended in an outcome or cancelled, the latest first."""
    return coached_sessions(actor).exclude(status__in=OPEN_STATUSES).order_by("-starts_at",
                                                                               "-pk")


def get_coached_session(actor: User, session_id: int) -> Session:
    """One session the actor coaches; another coach's (or none) is not found."""
    session = coached_sessions(actor).filter(pk=session_id).first() \
        if 0 < session_id < 2**63 else None
    if session is None:
        raise NotFound("No such session.")
    return session


@dataclass(frozen=True)
class CoachCounts:
    upcoming_until: int  # open sessions starting from now until ``until``
    awaiting_outcome: int  # open sessions whose start has passed
    total: int  # every session the coach ever had (cancelled ones too)


def coach_counts(actor: User, *, now: datetime, until: datetime) -> CoachCounts:
    """The dashboard's counts in one aggregate query."""
    open_ = Q(status__in=OPEN_STATUSES)
    got = Session.objects.filter(coach__user=actor).aggregate(
        upcoming=Count("pk", filter=open_ & Q(starts_at__gte=now, starts_at__lt=until)),
        awaiting=Count("pk", filter=open_ & Q(starts_at__lte=now)),
        total=Count("pk"))
    return CoachCounts(got["upcoming"] or 0, got["awaiting"] or 0, got["total"] or 0)


@dataclass(frozen=True)
class OfferBookings:
    total: int  # active bookings, past and to come (cancelled ones are left out)
    upcoming: int  # of those, in sessions still scheduled to start after ``now``


MAX_COUNTED_OFFERS = 200


def offer_booking_counts(actor: User, offer_ids: Iterable[int], *, now: datetime
                         ) -> dict[int, OfferBookings]:
    """Bookings per offer for a coach's offers list: one grouped query over at most
    MAX_COUNTED_OFFERS offers; only the actor's own offers count (all for an admin), and an
    offer without bookings is absent."""
    ids = list(offer_ids)[:MAX_COUNTED_OFFERS]
    qs = Booking.objects.filter(session__offer_id__in=ids, status=BookingStatus.ACTIVE)
    if not actor.is_admin:
        qs = qs.filter(session__coach__user=actor)
    rows = (qs.values("session__offer_id")
            .annotate(total=Count("id"),
                      upcoming=Count("id", filter=Q(session__starts_at__gt=now,
                                                    session__status=SessionStatus.SCHEDULED)))
            .values_list("session__offer_id", "total", "upcoming"))
    return {offer_id: OfferBookings(total, upcoming) for offer_id, total, upcoming in rows}


def _is_coach_of(actor: User, session: Session) -> bool:
    return session.coach.user_id == actor.pk


def lock_session(session_id: int) -> Session:
    """The session row, locked until the caller's transaction ends (404 if none)."""
    session = (Session.objects.select_for_update().select_related("offer", "coach")
               .filter(pk=session_id).first())
    if session is None:
        raise NotFound("No such session.")
    return session


# --- cancellation and rescheduling ----------------------------------------------------


def cancel_booking(actor: User, session_id: int, *, now: datetime | None = None) -> Session:
    """Cancel. A student gives up their seat; the coach or an admin cancels the session.

    The booking's cancellation policy (fixed when it was booked) decides the outcome (free,
    late = settled as a student no-show, by coach = never charged); it is recorded on each
    cancelled booking for billing. Once the start has passed, neither the student nor the
    coach can cancel (the session's outcome settles it: completed, no-show, coach absent,
    early end); an admin still can, as a remedy, and that is never charged.
    """
    now = now or clock.now()
    get_session(actor, session_id)  # visibility first: 404 for strangers
    with transaction.atomic(durable=True):
        session = lock_session(session_id)
        if session.status != SessionStatus.SCHEDULED:
            raise CancellationNotAllowed(
                f"A session that is {session.status.replace('_', ' ')} cannot be cancelled.")
        coach = _is_coach_of(actor, session)
        started = now >= session.starts_at
        if started and not actor.is_admin:
            raise SessionStarted(
                "This session has started, so it can no longer be cancelled: end it or mark "
                "who did not come." if coach else None,
                details={"starts_at": session.starts_at.isoformat()})
        before = _snapshot(session)
        if actor.is_admin or coach:
            by = "admin" if actor.is_admin and not coach else "coach"
            outcome = decide_cancellation(by=by, starts_at=session.starts_at, now=now,
                                          free_cancellation_hours=0)
            bookings = list(session.bookings.filter(status=BookingStatus.ACTIVE))
            _cancel_bookings(bookings, actor, now, outcome)
            session.seats_taken = 0
            session.status = SessionStatus.CANCELLED
            session.save(update_fields=["status", "seats_taken", "updated_at"])
            _audit(session, SessionEventKind.CANCELLED, actor, now, before)
            return session
        booking = session.bookings.filter(student=actor, status=BookingStatus.ACTIVE).first()
        if booking is None:
            raise CancellationNotAllowed("You have no active booking in this session.")
        outcome = decide_cancellation(
            by="student", starts_at=session.starts_at, now=now,
            free_cancellation_hours=booking.free_cancellation_hours)
        _cancel_bookings([booking], actor, now, outcome)
        session.seats_taken = F("seats_taken") - 1
        session.save(update_fields=["seats_taken", "updated_at"])
        session.refresh_from_db()
        if session.seats_taken == 0:
            session.status = SessionStatus.CANCELLED
            session.save(update_fields=["status", "updated_at"])
        _audit(session, SessionEventKind.CANCELLED if session.status == SessionStatus.CANCELLED
               else SessionEventKind.SEAT_FREED, actor, now, before, booking)
        return session


def _cancel_bookings(bookings: list[Booking], actor: User, now: datetime,
                     outcome: CancellationOutcome) -> None:
    for b in bookings:
        b.status = BookingStatus.CANCELLED
        b.cancelled_at = now
        b.cancelled_by = actor
        b.cancellation_outcome = outcome
        b.save(update_fields=["status", "cancelled_at", "cancelled_by", "cancellation_outcome"])


def reschedule_session(actor: User, session_id: int, new_start: datetime, *,
                       now: datetime | None = None) -> Session:
    """Move a scheduled session to another offered slot of the same offer."""
    now = now or clock.now()
    new_start = clock.require_aware(new_start, "start")
    coach_id = get_session(actor, session_id).coach_id  # a session's coach never changes
    try:
        with transaction.atomic(durable=True):
            _lock_coach_schedule(coach_id)  # before the row lock: the order bookings use
            session = lock_session(session_id)
            if session.status != SessionStatus.SCHEDULED:
                raise InvalidTransition("Only a scheduled session can be moved.")
            if now >= session.starts_at:
                raise InvalidTransition("A session that has started cannot be moved.",
                                        details={"starts_at": session.starts_at.isoformat()})
            if not (actor.is_admin or _is_coach_of(actor, session)):
                active = list(session.bookings.filter(status=BookingStatus.ACTIVE))
                if [b.student_id for b in active] != [actor.pk]:
                    raise Forbidden("Only the coach can move a group session.")
                if not student_may_reschedule(
                        starts_at=session.starts_at, now=now,
                        free_cancellation_hours=active[0].free_cancellation_hours):
                    raise CancellationNotAllowed(
                        "It is too late to move this session; ask your coach.")
            if new_start <= now:
                raise PastSlot(details={"start": new_start.isoformat()})
            if _slot_offered(session.offer, new_start, now, exclude_session_id=session.pk) is None:
                raise SlotNotOffered(details={"start": new_start.isoformat()})
            before = _snapshot(session)
            length = session.ends_at - session.starts_at
            session.starts_at = new_start
            session.ends_at = new_start + length
            session.reschedule_count += 1
            session.save(update_fields=["starts_at", "ends_at", "reschedule_count", "updated_at"])
            _audit(session, SessionEventKind.RESCHEDULED, actor, now, before)
            return session
    except IntegrityError as exc:
        if _is_overlap(exc):
            raise SlotTaken(details={"start": new_start.isoformat()}) from None
        raise
    except OperationalError as exc:
        # A concurrent booking of the same time: the database aborted one of the two.
        if _is_transient(exc):
            raise SlotTaken(details={"start": new_start.isoformat()}) from None
        raise


# --- state machine: one owner function per transition ---------------------------------


def _transition(session_id: int, target: SessionStatus, actor: User | None, now: datetime,
                kind: SessionEventKind) -> Session:
    with transaction.atomic():
        session = lock_session(session_id)
        if not can_transition(session.status, target):
            raise InvalidTransition(
                f"A {session.status.replace('_', ' ')} session cannot become "
                f"{target.value.replace('_', ' ')}.",
                details={"from": session.status, "to": target.value})
        before = _snapshot(session)
        session.status = target
        session.save(update_fields=["status", "updated_at"])
        _audit(session, kind, actor, now, before)
        return session


_END_KINDS = {SessionStatus.COMPLETED: SessionEventKind.COMPLETED,
              SessionStatus.EARLY_END_SHORT: SessionEventKind.EARLY_END_SHORT}


def end_sessions(sessions: list[Session], outcomes: dict[int, SessionStatus], *,
                 now: datetime) -> None:
    """The system ends sessions that reached their scheduled end, many at once: the bulk
    form of complete_session / end_session_short (actor None) for the settlement gate. The
    caller holds the sessions' row locks. Each session gets its audit event and its
    session event on commit, as one by one."""
    events: list[SessionEvent] = []
    for status, kind in _END_KINDS.items():
        group = [s for s in sessions if outcomes.get(s.pk) == status]
        if not group:
            continue
        for session in group:
            if not can_transition(session.status, status):
                raise InvalidTransition(
                    f"A {session.status.replace('_', ' ')} session cannot become "
                    f"{status.value.replace('_', ' ')}.",
                    details={"from": session.status, "to": status.value})
        Session.objects.filter(pk__in=[s.pk for s in group]).update(status=status,
                                                                    updated_at=clock.now())
        for session in group:
            before = _snapshot(session)
            session.status = status
            events.append(SessionEvent(session=session, kind=kind, actor=None, at=now,
                                       before=before, after=_snapshot(session)))
            emit_on_commit(kind, session.pk)
    SessionEvent.objects.bulk_create(events)


def _require_coach_or_admin(actor: User, session_id: int) -> Session:
    session = get_session(actor, session_id)
    if not (actor.is_admin or _is_coach_of(actor, session)):
        raise Forbidden("Only the session's coach can do this.")
    return session


def start_session(actor: User, session_id: int, *, now: datetime | None = None) -> Session:
    """SCHEDULED -> IN_PROGRESS, from the moment the join window opens."""
    now = now or clock.now()
    session = _require_coach_or_admin(actor, session_id)
    policy = parse_access_policy(session.access_policy)
    join_open = session.starts_at - timedelta(seconds=policy.join_window_before_s)
    if now < join_open:
        raise InvalidTransition("The session cannot start before its join window opens.",
                                details={"join_window_opens_at": join_open.isoformat()})
    return _transition(session_id, SessionStatus.IN_PROGRESS, actor, now,
                       SessionEventKind.STARTED)


def complete_session(actor: User | None, session_id: int, *,
                     now: datetime | None = None) -> Session:
    """-> COMPLETED. The coach may complete once the session started; the system (actor
    None) completes at the scheduled end."""
    now = now or clock.now()
    if actor is not None:
        session = _require_coach_or_admin(actor, session_id)
        if now < session.starts_at:
            raise InvalidTransition("A session cannot be completed before it starts.")
    return _transition(session_id, SessionStatus.COMPLETED, actor, now,
                       SessionEventKind.COMPLETED)


def end_as_student_no_show(actor: User | None, session_id: int, *,
                           now: datetime | None = None) -> Session:
    """The lifecycle transition only (no money): billing.mark_student_no_show is the
    outcome action that checks who may claim it, then calls this and settles."""
    now = now or clock.now()
    if actor is not None:
        _require_coach_or_admin(actor, session_id)
    return _transition(session_id, SessionStatus.NO_SHOW_STUDENT, actor, now,
                       SessionEventKind.NO_SHOW_STUDENT)


def end_as_coach_no_show(actor: User | None, session_id: int, *,
                         now: datetime | None = None) -> Session:
    now = now or clock.now()
    return _transition(session_id, SessionStatus.NO_SHOW_COACH, actor, now,
                       SessionEventKind.NO_SHOW_COACH)


def end_session_short(actor: User | None, session_id: int, *,
                      now: datetime | None = None) -> Session:
    now = now or clock.now()
    return _transition(session_id, SessionStatus.EARLY_END_SHORT, actor, now,
                       SessionEventKind.EARLY_END_SHORT)


def count_overlapping_sessions() -> int:
    """Pairs of live sessions of one coach that overlap. Always 0; used by checks and benches."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(
            "SELECT COUNT(*) FROM scheduling_session a JOIN scheduling_session b"
            " ON a.coach_id = b.coach_id AND a.id < b.id"
            " WHERE a.status <> 'cancelled' AND b.status <> 'cancelled'"
            " AND a.starts_at < b.ends_at AND b.starts_at < a.ends_at"
        )
        row = cur.fetchone()
    return int(row[0]) if row else 0

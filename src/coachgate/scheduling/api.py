"""Routes for availability, slots, bookings and sessions. Thin: services decide."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any, Literal
from zoneinfo import ZoneInfo

from django.db.models import prefetch_related_objects
from django.http import HttpRequest
from ninja import Field, Query, Router, Schema, Status
from pydantic import AwareDatetime

from coachgate.accounts.auth import API_AUTH, current_user, optional_user
from coachgate.accounts.models import User
from coachgate.accounts.services import validate_timezone
from coachgate.catalog.services import coach_profile_of, get_offer
from coachgate.kit import clock, idempotency
from coachgate.kit.schema import JsonInt

from . import services
from .lifecycle import SessionStatus
from .models import AvailabilityOverride, Booking, Session, SessionEvent, WeeklyAvailability

router = Router(tags=["scheduling"], auth=API_AUTH)


# --- availability ---------------------------------------------------------------------

class RuleIO(Schema):
    weekday: JsonInt = Field(ge=0, le=6, description="0 = Monday … 6 = Sunday")
    start: time
    end: time


class WeeklyIn(Schema):
    rules: list[RuleIO] = Field(max_length=100)


class WeeklyOut(Schema):
    timezone: str
    rules: list[RuleIO]


class PresetIn(Schema):
    weekdays: list[JsonInt] = Field(min_length=1, max_length=7)
    preset: Literal["morning", "afternoon", "evening"]


class OverrideIn(Schema):
    day: date
    kind: Literal["blocked", "extra"]
    start: time | None = None
    end: time | None = None


class OverrideOut(Schema):
    id: int
    day: date
    kind: str
    start: time | None
    end: time | None


def _weekly_out(timezone: str, rules: list[WeeklyAvailability]) -> WeeklyOut:
    return WeeklyOut(timezone=timezone, rules=[
        RuleIO(weekday=r.weekday, start=r.start_time, end=r.end_time) for r in rules])


def _override_out(o: AvailabilityOverride) -> OverrideOut:
    return OverrideOut(id=o.pk, day=o.day, kind=o.kind, start=o.start_time, end=o.end_time)


@router.get("/coach/availability", response=WeeklyOut, summary="My weekly availability")
def get_availability(request: HttpRequest) -> WeeklyOut:
    coach = coach_profile_of(current_user(request))
    return _weekly_out(coach.timezone, services.weekly_availability(coach))


@router.put("/coach/availability", response=WeeklyOut,
            summary="Replace my weekly availability (local times in my time zone)")
def put_availability(request: HttpRequest, payload: WeeklyIn) -> WeeklyOut:
    user = current_user(request)
    rules = services.set_weekly_availability(
        user, [services.RuleInput(r.weekday, r.start, r.end) for r in payload.rules])
    return _weekly_out(coach_profile_of(user).timezone, rules)


@router.post("/coach/availability/presets", response=WeeklyOut,
             summary="Add a preset: morning 09–12, afternoon 13–17, evening 18–21")
def add_preset(request: HttpRequest, payload: PresetIn) -> WeeklyOut:
    user = current_user(request)
    rules = services.apply_preset(user, payload.weekdays, payload.preset)
    return _weekly_out(coach_profile_of(user).timezone, rules)


@router.get("/coach/overrides", response=list[OverrideOut])
def list_overrides(request: HttpRequest) -> list[OverrideOut]:
    coach = coach_profile_of(current_user(request))
    return [_override_out(o) for o in services.list_overrides(coach)]


@router.post("/coach/overrides", response={201: OverrideOut},
             summary="Block a day (or hours) or add extra hours on a date")
def add_override(request: HttpRequest, payload: OverrideIn) -> Status[Any]:
    o = services.add_override(current_user(request), day=payload.day, kind=payload.kind,
                              start=payload.start, end=payload.end)
    return Status(201, _override_out(o))


@router.delete("/coach/overrides/{override_id}", response={204: None})
def delete_override(request: HttpRequest, override_id: int) -> Status[Any]:
    services.delete_override(current_user(request), override_id)
    return Status(204, None)


# --- slots ----------------------------------------------------------------------------

class SlotQuery(Schema):
    from_: AwareDatetime | None = Field(None, alias="from")
    to: AwareDatetime | None = None
    tz: str | None = Field(None, max_length=64,
                           description="Time zone to show local times in (default: yours)")
    limit: int = Field(services.DEFAULT_SLOT_LIMIT, ge=1, le=services.MAX_SLOT_LIMIT,
                       description="How many slots at most in this answer")


class SlotOut(Schema):
    start: datetime
    end: datetime
    local_start: str
    local_end: str
    seats_left: int


class SlotsOut(Schema):
    offer_id: int
    timezone: str
    slots: list[SlotOut]
    next: datetime | None = Field(
        description="More slots follow: ask again with this as `from` (same `to`, `tz`, "
                    "`limit`). null: these are all the slots up to `to`.")


@router.get("/offers/{offer_id}/slots", response=SlotsOut, auth=None,
            summary="Bookable slots, in UTC and in the viewer's time zone, a page at a time",
            description=f"At most {services.MAX_SLOT_WINDOW.days} days from `from` to `to` "
                        f"and `limit` slots (default {services.DEFAULT_SLOT_LIMIT}, at most "
                        f"{services.MAX_SLOT_LIMIT}) per answer; `next` is the `from` of the "
                        "next page.")
def slots(request: HttpRequest, offer_id: int, q: Query[SlotQuery]) -> SlotsOut:
    viewer = optional_user(request)
    tzname = validate_timezone(q.tz, "tz") if q.tz else (viewer.timezone if viewer else "UTC")
    tz = ZoneInfo(tzname)
    offer = get_offer(viewer, offer_id)
    page = services.slot_page(viewer, offer, start=q.from_, end=q.to, limit=q.limit)
    return SlotsOut(offer_id=offer.pk, timezone=tzname, next=page.next_start, slots=[
        SlotOut(start=s.start, end=s.end, local_start=s.start.astimezone(tz).isoformat(),
                local_end=s.end.astimezone(tz).isoformat(), seats_left=s.seats_left)
        for s in page.slots])


# --- sessions -------------------------------------------------------------------------

class BookIn(Schema):
    offer_id: JsonInt
    start: AwareDatetime = Field(description="The slot's start, with a UTC offset.")
    intake: dict[str, Any] = Field(default_factory=dict)


class RescheduleIn(Schema):
    start: AwareDatetime


class BookingOut(Schema):
    id: int
    student_id: int
    student_name: str
    status: str
    intake_answers: dict[str, Any]
    booked_at: datetime
    cancelled_at: datetime | None
    cancellation_outcome: str


class SessionOut(Schema):
    id: int
    offer_id: int
    offer_title: str
    coach_id: int
    coach_name: str
    starts_at: datetime
    ends_at: datetime
    status: str
    capacity: int
    seats_taken: int
    reschedule_count: int
    bookings: list[BookingOut]


class EventOut(Schema):
    id: int
    kind: str
    actor_id: int | None
    at: datetime
    before: dict[str, Any]
    after: dict[str, Any]


def _session_out(actor: User, session: Session,
                 bookings: list[Booking] | None = None) -> SessionOut:
    """``bookings``: the session's bookings the caller has at hand (else they are read)."""
    if bookings is None:
        prefetch_related_objects([session], "bookings__student")  # no-op when loaded
        bookings = sorted(session.bookings.all(), key=lambda b: b.pk)
    if not (actor.is_admin or session.coach.user_id == actor.pk):
        bookings = [b for b in bookings if b.student_id == actor.pk]  # only their own seat
    return SessionOut(
        id=session.pk, offer_id=session.offer_id, offer_title=session.offer.title,
        coach_id=session.coach_id, coach_name=session.coach.display_name,
        starts_at=session.starts_at, ends_at=session.ends_at, status=session.status,
        capacity=session.capacity, seats_taken=session.seats_taken,
        reschedule_count=session.reschedule_count,
        bookings=[BookingOut(
            id=b.pk, student_id=b.student_id, student_name=str(b.student), status=b.status,
            intake_answers=b.intake_answers, booked_at=b.booked_at, cancelled_at=b.cancelled_at,
            cancellation_outcome=b.cancellation_outcome) for b in bookings],
    )


IDEMPOTENCY_NOTE = (
    "Send an `Idempotency-Key` header (1–255 printable ASCII characters, e.g. a UUID) to "
    "retry safely: a retry of the same request with the same key answers what the first "
    "one made, never a second one; the same key with a different request answers 422 "
    "`idempotency_key_reused`.")


@router.post("/bookings", response={201: SessionOut}, summary="Book a slot (students)",
             description=IDEMPOTENCY_NOTE)
def book(request: HttpRequest, payload: BookIn) -> Status[Any]:
    user = current_user(request)
    booking = services.book_session(user, payload.offer_id, payload.start, intake=payload.intake,
                                    idempotency_key=idempotency.key_from(request))
    # Only students book, and a student sees only their own seat: the booking at hand
    # is the whole answer (no reads after the booking).
    return Status(201, _session_out(user, booking.session, bookings=[booking]))


@router.get("/sessions", response=list[SessionOut],
            summary="Sessions you may see (students: yours; coaches: yours; admins: all)")
def list_sessions(request: HttpRequest, status: SessionStatus | None = None,
                  upcoming: bool = False) -> list[SessionOut]:
    user = current_user(request)
    qs = services.visible_sessions(user, status=status,
                                   ending_after=clock.now() if upcoming else None)
    sessions = list(qs.order_by("starts_at")[:500])
    prefetch_related_objects(sessions, "bookings__student")  # two queries for the whole list
    return [_session_out(user, s) for s in sessions]


@router.get("/sessions/{session_id}", response=SessionOut)
def get_session(request: HttpRequest, session_id: int) -> SessionOut:
    user = current_user(request)
    return _session_out(user, services.get_session(user, session_id))


@router.get("/sessions/{session_id}/events", response=list[EventOut],
            summary="The session's audit trail")
def events(request: HttpRequest, session_id: int) -> list[SessionEvent]:
    return services.session_events(current_user(request), session_id)


@router.post("/sessions/{session_id}/cancel", response=SessionOut,
             summary="Cancel (students: their seat; coach/admin: the session)")
def cancel(request: HttpRequest, session_id: int) -> SessionOut:
    user = current_user(request)
    return _session_out(user, services.cancel_booking(user, session_id))


@router.post("/sessions/{session_id}/reschedule", response=SessionOut)
def reschedule(request: HttpRequest, session_id: int, payload: RescheduleIn) -> SessionOut:
    user = current_user(request)
    return _session_out(user, services.reschedule_session(user, session_id, payload.start))


@router.post("/sessions/{session_id}/start", response=SessionOut, summary="Mark started (coach)")
def start(request: HttpRequest, session_id: int) -> SessionOut:
    user = current_user(request)
    return _session_out(user, services.start_session(user, session_id))

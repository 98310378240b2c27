"""Pack use cases: buying (and renewing), booking from a pack, using sessions, expiry, grace,
seat release and the waitlist. The only code that writes pack, seat and waitlist rows.

How a pack lives (rules.py has the pure timeline):

1. ``buy_pack``: a seat is taken (or the student's held seat is kept: a renewal), the pack
   is paid up front (billing.record_prepayment) and its expiry gate is set.
2. ``book_from_pack``: one transaction books the slot (scheduling), records the use (its
   number and value in the pack) and tells billing the booking is prepaid.
3. Billing settles each booking and sends ``booking_settled`` inside its transaction;
   ``record_settlement`` then uses the session (a conditional UPDATE: exactly once) or gives
   it back. Using session N-1 sends the renewal reminder; using session N depletes the pack
   and puts its seat into grace.
4. The gates (``run_due``; timer rows, kit.due): a pack expires at its time (the unused value
   is forfeited once nothing booked from it waits for an outcome); a seat in grace gets its
   final warning, then is released at the grace end, or right after the last session still
   booked from its packs ends. A released seat is offered to the oldest waiting student.

Services take ``now`` and never commit: the request or the task around them does.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from django.db import IntegrityError, transaction
from django.db.models import F, Model, QuerySet

from coachgate.accounts.models import Role, User
from coachgate.billing import services as billing
from coachgate.billing.models import Settlement
from coachgate.billing.rules import pack_session_values
from coachgate.catalog.models import CoachProfile, Offer
from coachgate.catalog.services import coach_profile_of
from coachgate.kit import clock, due, idempotency, metrics, money
from coachgate.kit.config import conf
from coachgate.kit.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NoSeat,
    NotAPack,
    NotFound,
    OfferNotBookable,
    PackExpired,
    PackRequired,
    PackUsedUp,
    PastSlot,
    SeatFree,
    SeatHeld,
    SlotNotOffered,
)
from coachgate.notify.services import notify
from coachgate.scheduling import services as scheduling
from coachgate.scheduling.lifecycle import SessionStatus
from coachgate.scheduling.models import Booking, BookingStatus, Session

from . import rules
from .models import HOLDING_VALUES, Pack, PackUse, Seat, WaitlistEntry
from .rules import PackStatus, SeatStatus

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=60)
BATCH = 100

# The offer a booking is being made for from a pack, while book_from_pack runs: the
# booking_requested receiver lets exactly that booking of a pack offer through.
_BOOKING_FROM_PACK: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "coachgate_booking_from_pack", default=None)


M = TypeVar("M", bound=Model)


def _lock(qs: QuerySet[M]) -> QuerySet[M]:
    """Lock the rows read (not the rows joined by select_related) until the transaction
    ends. FOR NO KEY UPDATE (PostgreSQL) orders changes of one pack, seat or coach without
    blocking inserts that merely reference the row (a session of the coach, a renewal of
    the pack: KEY SHARE locks); with FOR UPDATE a renewal and a booking from the renewed
    pack could deadlock. SQLite serializes writers and ignores both options."""
    return qs.select_for_update(no_key=True, of=("self",))


def pack_times() -> rules.PackTimes:
    c = conf()
    return rules.PackTimes(valid=timedelta(days=c.PACK_VALID_DAYS),
                           grace=timedelta(hours=c.PACK_GRACE_HOURS),
                           final_warning=timedelta(hours=c.PACK_FINAL_WARNING_HOURS))


def _wake_on_commit(at: datetime | None) -> None:
    from .tasks import run_due

    due.wake_on_commit(run_due, at)


def _count(kind: str) -> None:
    transaction.on_commit(lambda: metrics.PACK_TRANSITIONS.labels(kind=kind).inc())


def _public_url() -> str:
    return conf().PUBLIC_URL


def _pack_context(pack: Pack) -> dict[str, Any]:
    return {
        "pack_id": pack.pk, "offer_id": pack.offer_id, "offer_title": pack.offer.title,
        "coach_id": pack.coach_id, "coach_name": pack.coach.display_name, "size": pack.size,
        "remaining": pack.remaining, "price_minor": pack.price_minor,
        "currency": pack.currency, "expires_at": pack.expires_at.isoformat(),
        "renew_url": f"{_public_url()}/offers/{pack.offer_id}/",
    }


def _is_renewed(pack: Pack) -> bool:
    """A newer pack of the same seat exists: reminders to renew would be noise."""
    return Pack.objects.filter(renewal_of=pack).exists()


# --- buying ---------------------------------------------------------------------------


def buy_pack(student: User, offer_id: int, *, now: datetime | None = None,
             idempotency_key: str | None = None) -> Pack:
    """Buy a pack of the offer's sessions, paid up front.

    Takes one of the coach's free seats, or keeps the seat the student already holds with
    the coach (a renewal: any grace ends; the new pack links to the previous one). Raises
    NoSeat (409) when every seat is held by others. With an ``idempotency_key``, a retry of
    the same purchase returns the pack the first one bought, never a second pack.
    """
    now = now or clock.now()
    if student.role != Role.STUDENT:
        raise Forbidden("Only student accounts buy packs.")
    request = (idempotency.digest({"offer_id": offer_id})
               if idempotency_key is not None else "")
    first = _bought_before(student, idempotency_key, request)
    if first is not None:
        return first
    try:
        return _buy_pack(student, offer_id, now=now, idempotency_key=idempotency_key or "",
                         request_digest=request)
    except Conflict:
        first = _bought_before(student, idempotency_key, request)
        if first is not None:
            return first  # two retries of one purchase raced; the first is the answer
        raise


def _bought_before(student: User, key: str | None, request_digest: str) -> Pack | None:
    if key is None:
        return None
    pack = Pack.objects.filter(student=student, idempotency_key=key).first()
    if pack is not None:
        idempotency.check_same_request(pack.request_digest, request_digest)
    return pack


def _buy_pack(student: User, offer_id: int, *, now: datetime, idempotency_key: str,
              request_digest: str) -> Pack:
    offer = Offer.objects.select_related("coach").filter(pk=offer_id).first()
    if offer is None or not offer.is_bookable:
        raise OfferNotBookable(details={"offer_id": offer_id})
    if offer.pack_size < 2:
        raise NotAPack(details={"offer_id": offer_id})
    times = pack_times()
    try:
        with transaction.atomic(durable=True):
            # Seats are counted and taken under the coach's row lock: two students racing
            # for the last seat are served one after the other (SQLite serializes writers).
            coach = _lock(CoachProfile.objects.all()).get(pk=offer.coach_id)
            seat = (_lock(Seat.objects.all())
                    .filter(coach=coach, student=student, status__in=HOLDING_VALUES).first())
            previous: Pack | None = None
            if seat is None:
                held = Seat.objects.filter(coach=coach, status__in=HOLDING_VALUES).count()
                if held >= coach.seat_capacity:
                    raise NoSeat(
                        f"{coach.display_name} has no free seat right now: all "
                        f"{coach.seat_capacity} are held. Join the waitlist (POST "
                        f"/api/v1/coaches/{coach.pk}/waitlist) to be told when one frees.",
                        details={"coach_id": coach.pk, "seat_capacity": coach.seat_capacity,
                                 "held": held})
                seat = Seat.objects.create(coach=coach, student=student,
                                           status=SeatStatus.ACTIVE, taken_at=now)
                _count("seat_taken")
            else:
                previous = seat.pack
            expires = rules.expires_at(now, times)
            pack = Pack.objects.create(
                student=student, offer=offer, coach=coach, seat=seat, size=offer.pack_size,
                remaining=offer.pack_size, price_minor=offer.price_minor,
                currency=offer.currency, status=PackStatus.ACTIVE, purchased_at=now,
                expires_at=expires, renewal_of=previous, next_due_at=expires,
                idempotency_key=idempotency_key, request_digest=request_digest)
            _keep_seat(seat, pack, now)
            billing.record_prepayment(
                student, key=f"pack:{pack.pk}", amount_minor=pack.price_minor,
                currency=pack.currency, now=now,
                memo=f"pack {pack.pk}: {offer.title} ({pack.size} sessions)")
            WaitlistEntry.objects.filter(coach=coach, student=student,
                                         fulfilled_at__isnull=True).update(fulfilled_at=now)
            notify(student, "pack_purchased",
                   {**_pack_context(pack), "renewal": previous is not None},
                   key=f"pack:{pack.pk}:purchased", now=now)
            _count("renewed" if previous is not None else "purchased")
            _wake_on_commit(expires)
            return pack
    except IntegrityError as exc:
        # PostgreSQL names the constraint; SQLite names the columns of the unique index.
        if "packs_one_holding_seat" in str(exc) or "packs_seat.coach_id" in str(exc):
            # The same student bought twice at the same moment; the other purchase won.
            raise Conflict("Another purchase of yours is in progress; try again.") from None
        if "packs_purchase_idempotency_key_once" in str(exc) or (
                "packs_pack.idempotency_key" in str(exc)):
            raise Conflict("This purchase is already being made; try again.") from None
        raise


def _keep_seat(seat: Seat, pack: Pack, now: datetime) -> None:
    """The seat is held by ``pack`` from now on: active, any grace (and its warning) ends."""
    was = seat.status
    seat.pack = pack
    seat.status = SeatStatus.ACTIVE
    seat.grace_ends_at = None
    seat.final_warning_sent = False
    seat.next_due_at = None
    seat.save(update_fields=["pack", "status", "grace_ends_at", "final_warning_sent",
                             "next_due_at", "updated_at"])
    if was == SeatStatus.GRACE:
        _count("grace_cancelled")


# --- booking from a pack --------------------------------------------------------------


def _held_uses(pack: Pack) -> QuerySet[PackUse]:
    """Uses booked and waiting for their outcome (neither consumed nor given back)."""
    return PackUse.objects.filter(pack=pack, consumed_at__isnull=True, freed_at__isnull=True)


def book_from_pack(student: User, pack_id: int, start: datetime, *,
                   intake: dict[str, Any] | None = None, now: datetime | None = None,
                   idempotency_key: str | None = None) -> Booking:
    """Book a slot of the pack's offer, paid by the pack. In the booking's own transaction:
    the booking, the pack use (its number and value) and billing's funding record."""
    now = now or clock.now()
    if start.tzinfo is None or start.utcoffset() is None:
        raise InvalidInput("start must include a UTC offset.", details={"field": "start"})
    visible = get_pack(student, pack_id)  # 404 for anyone else's pack
    if student.role != Role.STUDENT:  # an admin may see a pack, never book from it
        raise Forbidden("Only the pack's student books from it.")
    _check_start_in_range(start, now, visible.offer.horizon_days)
    if idempotency_key is None:  # a retry gets its first answer even once the pack is used
        _refuse_if_unusable(visible, now)  # the friendly answer before any slot work

    def record_use(booking: Booking) -> None:
        # Under the pack's row lock, after the coach's schedule lock the booking took (the
        # order settlement uses too: session, then pack).
        pack = _lock(Pack.objects.select_related("offer")).get(pk=pack_id)
        if pack.student_id != student.pk:
            raise Forbidden("Only the pack's student books from it.")
        _refuse_if_unusable(pack, now)
        taken = PackUse.objects.filter(pack=pack, freed_at__isnull=True).values_list(
            "number", flat=True)
        number = rules.first_free_number(pack.size, taken)
        value = pack_session_values(pack.price_minor, pack.size,
                                    money.quantum(pack.currency))[number - 1]
        PackUse.objects.create(booking=booking, pack=pack, number=number, value_minor=value,
                               booked_at=now)
        billing.fund_booking(booking, source=f"pack:{pack.pk}", value_minor=value, now=now)

    with _booking_from(visible.offer_id):
        booking = scheduling.book_session(
            student, visible.offer_id, start, intake=intake, now=now,
            idempotency_key=idempotency_key, on_booked=record_use, via=f"pack:{pack_id}")
    _count("session_booked")
    return booking


def _refuse_if_unusable(pack: Pack, now: datetime) -> None:
    held = _held_uses(pack).count()
    refusal = rules.booking_refusal(status=PackStatus(pack.status), remaining=pack.remaining,
                                    held=held, expires_at=pack.expires_at, now=now)
    if refusal == rules.Refusal.EXPIRED:
        raise PackExpired(
            f"This pack expired on {pack.expires_at:%Y-%m-%d %H:%M} UTC: its sessions can "
            "no longer be booked. Buy a new pack to continue.",
            details={"pack_id": pack.pk, "expires_at": pack.expires_at.isoformat()})
    if refusal is not None:
        raise PackUsedUp(
            f"All {pack.size} sessions of this pack are used or booked "
            f"({pack.size - pack.remaining} used, {held} booked). Renew the pack to book "
            "more.", details={"pack_id": pack.pk, "remaining": pack.remaining,
                              "booked": held})


def _check_start_in_range(start: datetime, now: datetime, horizon_days: int) -> None:
    """Refuse starts outside the offer's horizon here, before any date arithmetic:
    scheduling.book_session overflows (a 500) on starts near year 1 or 9999."""
    try:
        start = start.astimezone(UTC)
    except OverflowError:
        raise SlotNotOffered(details={"start": "out of range"}) from None
    if start <= now:
        raise PastSlot(details={"start": start.isoformat()})
    if start - now > timedelta(days=horizon_days + 1):
        raise SlotNotOffered(f"That start is beyond the offer's booking horizon of "
                             f"{horizon_days} days.", details={"start": start.isoformat()})


@contextmanager
def _booking_from(offer_id: int) -> Iterator[None]:
    token = _BOOKING_FROM_PACK.set(offer_id)
    try:
        yield
    finally:
        _BOOKING_FROM_PACK.reset(token)


def refuse_direct_pack_booking(offer: Offer) -> None:
    """A pack offer's sessions are booked from a pack (book_from_pack), never directly."""
    if offer.pack_size > 1 and _BOOKING_FROM_PACK.get() != offer.pk:
        raise PackRequired(
            f"\"{offer.title}\" is sold as a pack of {offer.pack_size} sessions: buy the pack "
            "(POST /api/v1/packs), then book its sessions from it "
            "(POST /api/v1/packs/{pack_id}/bookings).",
            details={"offer_id": offer.pk, "pack_size": offer.pack_size})


# --- using sessions (billing's settlement) --------------------------------------------


def pack_id_of(funded_by: str) -> int | None:
    prefix, _, rest = funded_by.partition(":")
    if prefix != "pack" or not rest.isdigit():
        return None
    return int(rest)


def record_settlement(settlement: Settlement, *, consumes: bool, now: datetime) -> None:
    """Billing settled a booking (inside its transaction). A booking funded by a pack uses
    one of its sessions when the outcome consumes (completion, student no-show, late
    cancellation), exactly once; any other outcome gives the session back."""
    pack_id = pack_id_of(settlement.funded_by or "")
    if pack_id is None:
        return
    use = PackUse.objects.filter(booking_id=settlement.booking_id).first()
    if use is None:
        log.error("settlement %s is funded by pack %s but its booking %s has no pack use",
                  settlement.pk, pack_id, settlement.booking_id)
        return
    # The pack row lock orders every change of one pack (two settlements of its sessions,
    # a booking from it, its expiry gate).
    pack = _lock(Pack.objects.select_related("offer", "coach")).get(pk=use.pack_id)
    if consumes:
        use_session(pack, use, now=now)
    else:
        give_back_session(pack, use, now=now)


def use_session(pack: Pack, use: PackUse, *, now: datetime) -> bool:
    """One session of the pack is used: ``remaining`` drops by one, once per booking
    however often the outcome arrives. Returns whether this call used it."""
    took = PackUse.objects.filter(pk=use.pk, consumed_at__isnull=True,
                                  freed_at__isnull=True).update(consumed_at=now)
    if not took:
        return False  # used (or given back) before: never twice
    Pack.objects.filter(pk=pack.pk, remaining__gt=0).update(
        remaining=F("remaining") - 1, updated_at=now)
    pack.refresh_from_db()
    _count("session_used")
    step = rules.after_use(pack.remaining)
    if pack.status == PackStatus.ACTIVE and step == rules.AfterUse.ONE_LEFT:
        remind_one_left(pack, now=now)
    elif pack.status == PackStatus.ACTIVE and step == rules.AfterUse.DEPLETED:
        deplete_pack(pack, now=now)
    _after_use_changed(pack, now)
    return True


def give_back_session(pack: Pack, use: PackUse, *, now: datetime) -> bool:
    """The outcome did not use the session (coach cancellation or no-show, early end, free
    cancellation): the use is freed and the session can be booked again."""
    freed = PackUse.objects.filter(pk=use.pk, consumed_at__isnull=True,
                                   freed_at__isnull=True).update(freed_at=now)
    if not freed:
        return False
    _count("session_given_back")
    _after_use_changed(pack, now)
    return True


def _after_use_changed(pack: Pack, now: datetime) -> None:
    """A use settled: an expired pack may now be closed, and its seat's release may be
    earlier (the session no longer holds it)."""
    if pack.status == PackStatus.EXPIRED and pack.closed_at is None:
        close_pack(pack, now=now)
    if pack.seat_id is not None:
        sync_seat(pack.seat_id, now=now)


def remind_one_left(pack: Pack, *, now: datetime) -> None:
    """After session N-1: "You have 1 session remaining. Renew now to continue." (once;
    not when the student has renewed already)."""
    if not Pack.objects.filter(pk=pack.pk, one_left_reminded=False).update(
            one_left_reminded=True):
        return
    pack.one_left_reminded = True
    if not _is_renewed(pack):
        notify(pack.student, "pack_renewal_reminder", _pack_context(pack),
               key=f"pack:{pack.pk}:one_left", now=now)


def deplete_pack(pack: Pack, *, now: datetime) -> None:
    """After session N: the pack is complete. Its seat enters grace unless another pack of
    the student's holds it."""
    if not Pack.objects.filter(pk=pack.pk, status=PackStatus.ACTIVE, remaining=0).update(
            status=PackStatus.DEPLETED, depleted_at=now, next_due_at=None,
            complete_reminded=True, updated_at=now):
        return
    pack.refresh_from_db()
    _count("depleted")
    seat = sync_seat(pack.seat_id, now=now, lapsed_at=now) if pack.seat_id is not None else None
    if not _is_renewed(pack):
        notify(pack.student, "pack_complete",
               {**_pack_context(pack),
                "grace_hours": int(pack_times().grace.total_seconds() // 3600),
                "grace_ends_at": seat.grace_ends_at.isoformat()
                if seat is not None and seat.grace_ends_at else ""},
               key=f"pack:{pack.pk}:complete", now=now)


# --- expiry ---------------------------------------------------------------------------


def expire_pack(pack: Pack, *, now: datetime) -> None:
    """Valid days are over with sessions left: the pack expires (sessions already booked
    still take place), its seat enters grace from the expiry time unless another pack holds
    it, and once nothing booked waits for an outcome the unused value is forfeited."""
    if not Pack.objects.filter(pk=pack.pk, status=PackStatus.ACTIVE).update(
            status=PackStatus.EXPIRED, expired_at=now, updated_at=now):
        return
    pack.refresh_from_db()
    _count("expired")
    seat = sync_seat(pack.seat_id, now=now, lapsed_at=pack.expires_at) \
        if pack.seat_id is not None else None
    held = _held_uses(pack).count()
    notify(pack.student, "pack_expired",
           {**_pack_context(pack), "unused": max(0, pack.remaining - held), "booked": held,
            "seat_in_grace": seat is not None and seat.status == SeatStatus.GRACE,
            "grace_ends_at": seat.grace_ends_at.isoformat()
            if seat is not None and seat.grace_ends_at else ""},
           key=f"pack:{pack.pk}:expired", now=now)
    close_pack(pack, now=now)


def close_pack(pack: Pack, *, now: datetime) -> bool:
    """An expired pack with nothing booked waiting for an outcome: its unused value (the
    price less the sessions used) is forfeited to the coach and the platform, once."""
    if pack.status != PackStatus.EXPIRED or pack.closed_at is not None:
        return False
    if _held_uses(pack).exists():
        return False
    used = PackUse.objects.filter(pack=pack, consumed_at__isnull=False).values_list(
        "value_minor", flat=True)
    amount = rules.unused_value(pack.price_minor, used)
    if amount > 0:
        billing.forfeit_prepaid(key=f"pack:{pack.pk}:expired", coach_id=pack.coach_id,
                                amount_minor=amount, currency=pack.currency, now=now,
                                memo=f"pack {pack.pk} expired: {amount} unused")
    Pack.objects.filter(pk=pack.pk, closed_at__isnull=True).update(
        closed_at=now, next_due_at=None, updated_at=now)
    pack.closed_at, pack.next_due_at = now, None
    _count("closed")
    return True


# --- seats ----------------------------------------------------------------------------


def _blocking_ends(seat: Seat) -> list[datetime]:
    """Scheduled ends of the sessions still to come that were booked from the seat's
    packs and wait for their outcome: the seat is not released before they end."""
    return list(Session.objects.filter(
        bookings__pack_use__pack__seat=seat, bookings__pack_use__consumed_at__isnull=True,
        bookings__pack_use__freed_at__isnull=True, bookings__status=BookingStatus.ACTIVE,
        status__in=[SessionStatus.SCHEDULED, SessionStatus.IN_PROGRESS],
    ).values_list("ends_at", flat=True).distinct())


def _held_ends(pack: Pack) -> list[datetime]:
    return list(Session.objects.filter(
        bookings__pack_use__pack=pack, bookings__pack_use__consumed_at__isnull=True,
        bookings__pack_use__freed_at__isnull=True).values_list("ends_at", flat=True))


def _seat_next_due(seat: Seat, now: datetime) -> datetime | None:
    return rules.seat_next_due(status=SeatStatus(seat.status), grace_end=seat.grace_ends_at,
                               warned=seat.final_warning_sent,
                               blocking_ends=_blocking_ends(seat), now=now, times=pack_times())


def _pack_next_due(pack: Pack, now: datetime) -> datetime | None:
    return rules.pack_next_due(status=PackStatus(pack.status), expires_at=pack.expires_at,
                               closed=pack.closed_at is not None, held_ends=_held_ends(pack),
                               now=now)


def sync_seat(seat_id: int, *, now: datetime, lapsed_at: datetime | None = None) -> Seat:
    """Bring a held seat in line with its packs: active while one is active, else in grace
    (from ``lapsed_at``, the depletion or expiry that left it without an active pack);
    then set its gate."""
    seat = _lock(Seat.objects.all()).get(pk=seat_id)
    if seat.status == SeatStatus.RELEASED:
        return seat
    active = Pack.objects.filter(seat=seat, status=PackStatus.ACTIVE).count()
    target = rules.seat_status_for(current=SeatStatus(seat.status), active_packs=active)
    if target == SeatStatus.GRACE and seat.status == SeatStatus.ACTIVE:
        seat.status = SeatStatus.GRACE
        seat.grace_ends_at = rules.grace_ends_at(lapsed_at or now, pack_times())
        seat.final_warning_sent = False
        _count("seat_grace")
    elif target == SeatStatus.ACTIVE and seat.status == SeatStatus.GRACE:
        seat.status, seat.grace_ends_at, seat.final_warning_sent = SeatStatus.ACTIVE, None, False
        _count("grace_cancelled")
    seat.next_due_at = _seat_next_due(seat, now)
    seat.save(update_fields=["status", "grace_ends_at", "final_warning_sent", "next_due_at",
                             "updated_at"])
    _wake_on_commit(seat.next_due_at)
    return seat


def send_final_warning(seat: Seat, *, now: datetime) -> None:
    """12 h before the grace ends: "Your seat will be released in 12 hours. Renew now to
    keep your mentorship active." Once per grace (keyed by the pack that lapsed)."""
    seat.final_warning_sent = True
    seat.save(update_fields=["final_warning_sent", "updated_at"])
    blocking = _blocking_ends(seat)
    pack = Pack.objects.select_related("offer", "coach").get(pk=seat.pack_id) \
        if seat.pack_id else None
    context: dict[str, Any] = {**(_pack_context(pack) if pack else {}),
                               "coach_name": seat.coach.display_name,
                               "hours": int(pack_times().final_warning.total_seconds() // 3600),
                               "grace_ends_at": (seat.grace_ends_at or now).isoformat(),
                               "last_session_ends_at": max(blocking).isoformat()
                               if blocking else ""}
    notify(seat.student, "seat_final_warning", context,
           key=f"seat:{seat.pk}:pack:{seat.pack_id}:final_warning", now=now)
    _count("final_warning")


def release_seat(seat: Seat, *, now: datetime) -> None:
    """The grace is over and no session booked from the seat's packs is still to come:
    the seat is free for another student; the oldest waiting student is told."""
    seat.status = SeatStatus.RELEASED
    seat.released_at = now
    seat.next_due_at = None
    seat.save(update_fields=["status", "released_at", "next_due_at", "updated_at"])
    pack = Pack.objects.select_related("offer", "coach").get(pk=seat.pack_id) \
        if seat.pack_id else None
    notify(seat.student, "seat_released",
           {**(_pack_context(pack) if pack else {}), "coach_name": seat.coach.display_name},
           key=f"seat:{seat.pk}:released", now=now)
    _count("seat_released")
    _offer_to_waitlist(seat, now)


def _offer_to_waitlist(seat: Seat, now: datetime) -> None:
    coach = seat.coach
    held = Seat.objects.filter(coach=coach, status__in=HOLDING_VALUES).count()
    if held >= coach.seat_capacity:
        return  # the capacity was lowered meanwhile: no seat is actually free
    entry = (WaitlistEntry.objects.filter(coach=coach, fulfilled_at__isnull=True,
                                          notified_at__isnull=True)
             .exclude(student_id=seat.student_id).order_by("created_at", "pk").first())
    if entry is None or not WaitlistEntry.objects.filter(
            pk=entry.pk, notified_at__isnull=True).update(notified_at=now):
        return
    offers = list(Offer.objects.filter(coach=coach, status="published", pack_size__gt=1)
                  .order_by("pk").values("pk", "title")[:5])
    notify(entry.student, "seat_available",
           {"coach_id": coach.pk, "coach_name": coach.display_name,
            "coach_url": f"{_public_url()}/coaches/{coach.pk}/",
            "offers": [{"id": o["pk"], "title": o["title"],
                        "url": f"{_public_url()}/offers/{o['pk']}/"} for o in offers]},
           key=f"waitlist:{entry.pk}:seat:{seat.pk}", now=now)
    _count("waitlist_notified")


def on_session_moved(session_id: int, *, now: datetime) -> None:
    """A session booked from a pack moved (or ended): its seat's release time may move."""
    seat_ids = set(PackUse.objects.filter(booking__session_id=session_id, pack__seat__isnull=False,
                                          pack__seat__status=SeatStatus.GRACE)
                   .values_list("pack__seat_id", flat=True))
    for seat_id in seat_ids:
        with transaction.atomic():
            sync_seat(seat_id, now=now)


# --- the waitlist ---------------------------------------------------------------------


def join_waitlist(student: User, coach_id: int, *, now: datetime | None = None
                  ) -> WaitlistEntry:
    """Wait for a seat with a coach whose seats are all held. Joining again returns the
    same entry."""
    now = now or clock.now()
    if student.role != Role.STUDENT:
        raise Forbidden("Only student accounts join a waitlist.")
    coach = CoachProfile.objects.filter(pk=coach_id).first() if 0 < coach_id < 2**63 else None
    if coach is None or not coach.is_approved:
        raise NotFound("No such coach.")
    with transaction.atomic(durable=True):
        existing = WaitlistEntry.objects.filter(coach=coach, student=student,
                                                fulfilled_at__isnull=True).first()
        if existing is not None and existing.notified_at is None:
            return existing
        if Seat.objects.filter(coach=coach, student=student,
                               status__in=HOLDING_VALUES).exists():
            raise SeatHeld()
        held = Seat.objects.filter(coach=coach, status__in=HOLDING_VALUES).count()
        if held < coach.seat_capacity:
            raise SeatFree(details={"coach_id": coach.pk, "free": coach.seat_capacity - held})
        if existing is not None:
            # Told about a seat before and missed it: back in the queue, at its end.
            existing.created_at, existing.notified_at = now, None
            existing.save(update_fields=["created_at", "notified_at"])
            return existing
        try:
            with transaction.atomic():
                entry = WaitlistEntry.objects.create(coach=coach, student=student,
                                                     created_at=now)
        except IntegrityError:  # the same student joined at the same moment
            return WaitlistEntry.objects.get(coach=coach, student=student,
                                             fulfilled_at__isnull=True)
        _count("waitlist_joined")
        return entry


def waitlist_position(entry: WaitlistEntry) -> int:
    return WaitlistEntry.objects.filter(
        coach_id=entry.coach_id, fulfilled_at__isnull=True, notified_at__isnull=True,
        created_at__lt=entry.created_at).count() + 1


# --- reading --------------------------------------------------------------------------


def visible_packs(actor: User) -> QuerySet[Pack]:
    """Students see their packs, coaches the packs of their offers, admins all."""
    qs = Pack.objects.select_related("offer", "coach", "seat", "student")
    if actor.is_admin:
        return qs
    if actor.is_coach:
        return qs.filter(coach__user=actor)
    return qs.filter(student=actor)


def get_pack(actor: User, pack_id: int) -> Pack:
    pack = visible_packs(actor).filter(pk=pack_id).first() if 0 < pack_id < 2**63 else None
    if pack is None:
        raise NotFound("No such pack.")
    return pack


def held_count(pack: Pack) -> int:
    return _held_uses(pack).count()


@dataclass
class SeatsOverview:
    seat_capacity: int
    held: int
    free: int
    waiting: int
    seats: list[Seat] = field(default_factory=list)


def coach_seats(actor: User) -> SeatsOverview:
    """The coach's capacity and the seats held now (active and in grace)."""
    coach = coach_profile_of(actor)
    seats = list(Seat.objects.filter(coach=coach, status__in=HOLDING_VALUES)
                 .select_related("student", "pack").order_by("taken_at", "pk"))
    waiting = WaitlistEntry.objects.filter(coach=coach, fulfilled_at__isnull=True).count()
    return SeatsOverview(seat_capacity=coach.seat_capacity, held=len(seats),
                         free=max(0, coach.seat_capacity - len(seats)), waiting=waiting,
                         seats=seats)


# --- the gates ------------------------------------------------------------------------


@dataclass
class DueReport:
    packs: int = 0
    seats: int = 0
    errors: int = 0
    repaired: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"packs": self.packs, "seats": self.seats, "errors": self.errors,
                "repaired": self.repaired}


def run_pack_gate(pack_id: int, *, now: datetime, owner: str) -> bool:
    """A claimed pack's gate: expire it at its time; close it once settled."""
    try:
        with transaction.atomic():
            pack = _lock(Pack.objects.select_related("offer", "coach")).get(pk=pack_id)
            if pack.status == PackStatus.ACTIVE and now >= pack.expires_at:
                expire_pack(pack, now=now)
            if pack.status == PackStatus.EXPIRED and pack.closed_at is None:
                close_pack(pack, now=now)
            nxt = _pack_next_due(pack, now)
            due.release(Pack, pack_id, owner=owner, next_due_at=nxt, attempts=0,
                        last_error="")
            _wake_on_commit(nxt if nxt is not None and nxt > now else None)
        return True
    except Exception as exc:  # a bug or the database: retry with backoff, never lose the gate
        log.exception("pack gate %s failed", pack_id)
        _retry_later(Pack, pack_id, owner=owner, now=now, exc=exc)
        return False


def run_seat_gate(seat_id: int, *, now: datetime, owner: str) -> bool:
    """A claimed seat's gate: the final warning, then the release when it is allowed."""
    try:
        with transaction.atomic():
            seat = _lock(Seat.objects.select_related("coach")).get(pk=seat_id)
            status = SeatStatus(seat.status)
            times = pack_times()
            if rules.should_warn(status=status, grace_end=seat.grace_ends_at,
                                 warned=seat.final_warning_sent, now=now, times=times):
                send_final_warning(seat, now=now)
            if rules.may_release(status=status, grace_end=seat.grace_ends_at,
                                 blocking_ends=_blocking_ends(seat), now=now):
                release_seat(seat, now=now)
            nxt = _seat_next_due(seat, now)
            due.release(Seat, seat_id, owner=owner, next_due_at=nxt, attempts=0,
                        last_error="")
            _wake_on_commit(nxt if nxt is not None and nxt > now else None)
        return True
    except Exception as exc:
        log.exception("seat gate %s failed", seat_id)
        _retry_later(Seat, seat_id, owner=owner, now=now, exc=exc)
        return False


def _retry_later(model: type[Pack] | type[Seat], pk: int, *, owner: str, now: datetime,
                 exc: Exception) -> None:
    from .tasks import run_due as run_due_task

    due.record_failure(model, pk, owner=owner, now=now, exc=exc, wake_task=run_due_task)


def run_due(*, now: datetime | None = None, owner: str = "", max_batches: int = 1000
            ) -> DueReport:
    """Run every pack and seat gate that is due, in batches, until none is left. Packs
    first: an expiry puts a seat into grace, whose gate may then be due in the same run.
    Several workers share the work: each claims rows with a lease."""
    now = now or clock.now()
    owner = owner or due.worker_identity()
    report = DueReport()
    from .tasks import run_due as run_due_task

    report.packs, failed_packs = due.drain(
        Pack, lambda pk: run_pack_gate(pk, now=now, owner=owner), now=now, owner=owner,
        lease=LEASE, batch=BATCH, max_batches=max_batches, wake_task=run_due_task)
    report.seats, failed_seats = due.drain(
        Seat, lambda pk: run_seat_gate(pk, now=now, owner=owner), now=now, owner=owner,
        lease=LEASE, batch=BATCH, max_batches=max_batches, wake_task=run_due_task)
    report.errors = failed_packs + failed_seats
    return report


def repair(*, now: datetime, limit: int = 500) -> int:
    """Put back gates a lost write or a bug left unset, and seats whose state disagrees with
    their packs. Returns how many rows it touched."""
    touched = Pack.objects.filter(status=PackStatus.ACTIVE, next_due_at__isnull=True).update(
        next_due_at=F("expires_at"))
    touched += Pack.objects.filter(status=PackStatus.EXPIRED, closed_at__isnull=True,
                                   next_due_at__isnull=True).update(next_due_at=now)
    touched += Seat.objects.filter(status=SeatStatus.GRACE, next_due_at__isnull=True).update(
        next_due_at=now)
    stale = list(Seat.objects.filter(status=SeatStatus.ACTIVE)
                 .exclude(packs__status=PackStatus.ACTIVE).values_list("pk", flat=True)[:limit])
    stale += list(Seat.objects.filter(status=SeatStatus.GRACE, packs__status=PackStatus.ACTIVE)
                  .values_list("pk", flat=True).distinct()[:limit])
    for seat_id in stale:
        touched += due.isolated("seat_repair", f"repairing seat {seat_id}", _repair_seat,
                                seat_id, now, atomic=True)
    return touched


def _repair_seat(seat_id: int, now: datetime) -> None:
    lapsed = (Pack.objects.filter(seat_id=seat_id)
              .exclude(status=PackStatus.ACTIVE).order_by("-purchased_at").first())
    sync_seat(seat_id, now=now, lapsed_at=_lapsed_at(lapsed) if lapsed else now)


def _lapsed_at(pack: Pack) -> datetime:
    if pack.status == PackStatus.DEPLETED and pack.depleted_at is not None:
        return pack.depleted_at
    return pack.expires_at


def sweep(*, now: datetime | None = None, owner: str = "") -> DueReport:
    """Repair missed gates, then run every gate that is due. Safe at any time, from any
    number of workers (the worker calls it every sweep interval)."""
    now = now or clock.now()
    repaired = repair(now=now)
    report = run_due(now=now, owner=owner)
    report.repaired = repaired
    return report

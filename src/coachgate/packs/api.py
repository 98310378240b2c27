"""Routes for packs, booking from a pack, coach seats and the waitlist. Thin: services
decide. Every financial field is read-only: amounts come from the offer and the rules."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.http import HttpRequest
from ninja import Field, Router, Schema, Status
from pydantic import AwareDatetime

from coachgate.accounts.auth import API_AUTH, current_user
from coachgate.billing.rules import pack_session_values
from coachgate.kit import idempotency, money
from coachgate.kit.schema import JsonInt
from coachgate.scheduling.api import IDEMPOTENCY_NOTE, SessionOut, _session_out

from . import services
from .models import Pack, Seat, WaitlistEntry

router = Router(tags=["packs"], auth=API_AUTH)

MAX_ID = 2**63 - 1


class BuyIn(Schema):
    offer_id: JsonInt = Field(ge=1, le=MAX_ID)


class PackSeatOut(Schema):
    id: int
    status: str
    grace_ends_at: datetime | None
    released_at: datetime | None


class PackOut(Schema):
    id: int
    student_id: int
    offer_id: int
    offer_title: str
    coach_id: int
    coach_name: str
    status: str
    size: int
    remaining: int = Field(description="Sessions not used yet (booked ones included).")
    booked: int = Field(description="Sessions booked and waiting for their outcome.")
    available: int = Field(description="Sessions that can still be booked.")
    price_minor: int
    currency: str
    session_values_minor: list[int] = Field(
        description="What each session of the pack is worth, in booking order.")
    purchased_at: datetime
    expires_at: datetime
    depleted_at: datetime | None
    expired_at: datetime | None
    renewal_of_id: int | None
    seat: PackSeatOut | None


def _pack_out(pack: Pack) -> PackOut:
    booked = services.held_count(pack)
    seat = pack.seat
    return PackOut(
        id=pack.pk, student_id=pack.student_id, offer_id=pack.offer_id,
        offer_title=pack.offer.title, coach_id=pack.coach_id,
        coach_name=pack.coach.display_name, status=pack.status, size=pack.size,
        remaining=pack.remaining, booked=booked,
        available=(max(0, pack.remaining - booked) if pack.status == "active" else 0),
        price_minor=pack.price_minor, currency=pack.currency,
        session_values_minor=pack_session_values(pack.price_minor, pack.size,
                                                 money.quantum(pack.currency)),
        purchased_at=pack.purchased_at, expires_at=pack.expires_at,
        depleted_at=pack.depleted_at, expired_at=pack.expired_at,
        renewal_of_id=pack.renewal_of_id,
        seat=PackSeatOut(id=seat.pk, status=seat.status, grace_ends_at=seat.grace_ends_at,
                         released_at=seat.released_at) if seat is not None else None)


@router.post("/packs", response={201: PackOut},
             summary="Buy a pack (students): paid up front; takes or keeps a seat with the coach",
             description=IDEMPOTENCY_NOTE)
def buy(request: HttpRequest, payload: BuyIn) -> Status[Any]:
    pack = services.buy_pack(current_user(request), payload.offer_id,
                             idempotency_key=idempotency.key_from(request))
    return Status(201, _pack_out(services.get_pack(current_user(request), pack.pk)))


@router.get("/packs", response=list[PackOut],
            summary="Packs you may see (students: yours; coaches: of your offers; admins: all)")
def list_packs(request: HttpRequest) -> list[PackOut]:
    packs = services.visible_packs(current_user(request)).order_by("-purchased_at", "-pk")[:500]
    return [_pack_out(p) for p in packs]


@router.get("/packs/{pack_id}", response=PackOut)
def get_pack(request: HttpRequest, pack_id: int) -> PackOut:
    return _pack_out(services.get_pack(current_user(request), pack_id))


class PackBookIn(Schema):
    start: AwareDatetime = Field(description="The slot's start, with a UTC offset.")
    intake: dict[str, Any] = Field(default_factory=dict)


@router.post("/packs/{pack_id}/bookings", response={201: SessionOut},
             summary="Book a session from your pack (students)", description=IDEMPOTENCY_NOTE)
def book(request: HttpRequest, pack_id: int, payload: PackBookIn) -> Status[Any]:
    user = current_user(request)
    booking = services.book_from_pack(user, pack_id, payload.start, intake=payload.intake,
                                      idempotency_key=idempotency.key_from(request))
    return Status(201, _session_out(user, booking.session))


class SeatOut(Schema):
    id: int
    student_id: int
    student_name: str
    status: str
    pack_id: int | None
    remaining: int | None
    taken_at: datetime
    grace_ends_at: datetime | None


class SeatsOut(Schema):
    seat_capacity: int
    held: int
    free: int
    waiting: int
    seats: list[SeatOut]


def _seat_out(seat: Seat) -> SeatOut:
    return SeatOut(id=seat.pk, student_id=seat.student_id, student_name=str(seat.student),
                   status=seat.status, pack_id=seat.pack_id,
                   remaining=seat.pack.remaining if seat.pack is not None else None,
                   taken_at=seat.taken_at, grace_ends_at=seat.grace_ends_at)


@router.get("/coach/seats", response=SeatsOut,
            summary="My seats (coaches): capacity, held (active and in grace), free")
def seats(request: HttpRequest) -> SeatsOut:
    view = services.coach_seats(current_user(request))
    return SeatsOut(seat_capacity=view.seat_capacity, held=view.held, free=view.free,
                    waiting=view.waiting, seats=[_seat_out(s) for s in view.seats])


class WaitlistOut(Schema):
    id: int
    coach_id: int
    position: int
    created_at: datetime
    notified_at: datetime | None


def _entry_out(entry: WaitlistEntry) -> WaitlistOut:
    return WaitlistOut(id=entry.pk, coach_id=entry.coach_id,
                       position=services.waitlist_position(entry), created_at=entry.created_at,
                       notified_at=entry.notified_at)


@router.post("/coaches/{coach_id}/waitlist", response={201: WaitlistOut},
             summary="Wait for a seat with a coach whose seats are all held (students)")
def join_waitlist(request: HttpRequest, coach_id: int) -> Status[Any]:
    entry = services.join_waitlist(current_user(request), coach_id)
    return Status(201, _entry_out(entry))

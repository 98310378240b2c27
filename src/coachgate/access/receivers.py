"""How access reacts to scheduling: scheduling emits events and knows nothing of access."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.dispatch import receiver

from coachgate.accounts.models import User
from coachgate.catalog.models import Delivery, Offer
from coachgate.kit import clock
from coachgate.scheduling.events import booking_requested, session_changed
from coachgate.scheduling.models import Booking, Session


@receiver(booking_requested, dispatch_uid="access.check_booking")
def check_booking(sender: Any, *, student: User, offer: Offer, start: datetime, end: datetime,
                  now: datetime, **kwargs: Any) -> None:
    if offer.delivery != Delivery.DISCORD_VOICE:
        return
    from . import services

    services.check_student_link(student)
    services.check_booking_capacity(offer, start, end, now)


# A session that starts or gets its outcome keeps its times and stays live: its gates and
# access do not change (access closes at the revoke gate whatever the outcome).
_SAME_ACCESS = frozenset({"started", "completed", "no_show_student", "no_show_coach",
                          "early_end_short"})


@receiver(session_changed, dispatch_uid="access.session_changed")
def on_session_changed(sender: Any, *, kind: str, session_id: int, booking_id: int | None,
                       **kwargs: Any) -> None:
    if kind in _SAME_ACCESS:
        return
    from . import services

    now = clock.now()
    with transaction.atomic():
        session = Session.objects.select_related("offer", "coach").filter(pk=session_id).first()
        if session is None:
            return
        services.sync_access_row(session, now=now)
        if kind in ("booked", "seat_taken") and booking_id is not None:
            _confirm_booking(booking_id, now)


def _confirm_booking(booking_id: int, now: datetime) -> None:
    from coachgate.notify.services import notify

    booking = (Booking.objects.select_related("student", "session__offer", "session__coach")
               .filter(pk=booking_id).first())
    if booking is None:
        return
    s = booking.session
    notify(booking.student, "booking_confirmed",
           {"session_id": s.pk, "offer_title": s.offer.title, "coach_name": s.coach.display_name,
            "starts_at": s.starts_at.isoformat(), "ends_at": s.ends_at.isoformat()},
           key=f"booked:{booking_id}", now=now)

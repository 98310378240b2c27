"""What notify sends when scheduling says something happened (scheduling knows nothing of
notify). Each receiver runs on its own: access or billing failing does not stop these."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.dispatch import receiver

from coachgate.kit import clock
from coachgate.scheduling.events import BOOKING_MADE, SessionEventKind, session_changed
from coachgate.scheduling.models import Booking


@receiver(session_changed, dispatch_uid="notify.session_changed")
def on_session_changed(sender: Any, *, kind: SessionEventKind, session_id: int,
                       booking_id: int | None, **kwargs: Any) -> None:
    if kind in BOOKING_MADE and booking_id is not None:
        confirm_booking(booking_id)


def confirm_booking(booking_id: int) -> None:
    """'Booking confirmed' to the student, once per booking (the key makes a repeat a no-op)."""
    from .services import notify

    booking = (Booking.objects.select_related("student", "session__offer", "session__coach")
               .filter(pk=booking_id).first())
    if booking is None:
        return
    s = booking.session
    with transaction.atomic():
        notify(booking.student, "booking_confirmed",
               {"session_id": s.pk, "offer_title": s.offer.title,
                "coach_name": s.coach.display_name, "starts_at": s.starts_at.isoformat(),
                "ends_at": s.ends_at.isoformat()},
               key=f"booked:{booking_id}", now=clock.now())

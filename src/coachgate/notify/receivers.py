"""What notify sends when scheduling says something happened (scheduling knows nothing of
notify)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.dispatch import receiver

from coachgate.scheduling.events import booking_made
from coachgate.scheduling.models import Booking


@receiver(booking_made, dispatch_uid="notify.booking_made")
def on_booking_made(sender: Any, *, booking: Booking, now: datetime, **kwargs: Any) -> None:
    """'Booking confirmed' to the student, in the booking's transaction: the confirmation
    commits with the booking or not at all (once per booking: the key)."""
    from .services import notify_new

    s = booking.session
    notify_new(booking.student, "booking_confirmed",
               {"session_id": s.pk, "offer_title": s.offer.title,
                "coach_name": s.coach.display_name, "starts_at": s.starts_at.isoformat(),
                "ends_at": s.ends_at.isoformat()},
               key=f"booked:{booking.pk}", now=now)

"""How meetings react to scheduling: a video offer needs a working connection to be booked;
a booked video session gets its provider meeting; a moved or cancelled one makes it due."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.dispatch import receiver

from coachgate.accounts.models import User
from coachgate.catalog.models import Offer
from coachgate.kit import clock, due
from coachgate.kit.errors import VideoConnectionInvalid, VideoNotConnected
from coachgate.scheduling.events import (
    SessionEventKind,
    booking_made,
    booking_requested,
    session_changed,
)
from coachgate.scheduling.models import Booking

from .models import ConnectionState, VideoConnection

MOVES = frozenset({SessionEventKind.RESCHEDULED, SessionEventKind.CANCELLED,
                   SessionEventKind.SEAT_FREED})


@receiver(booking_requested, dispatch_uid="meetings.check_booking")
def check_booking(sender: Any, *, student: User, offer: Offer, start: datetime,
                  end: datetime, now: datetime, **kwargs: Any) -> None:
    """Zoom and Google Meet offers are booked only while the coach's connection works: a
    clear 409, never a session without its meeting or with another provider's link."""
    from .gate import API_PROVIDERS

    provider = offer.delivery
    if provider not in API_PROVIDERS:
        return
    state = (VideoConnection.objects.filter(coach_id=offer.coach_id, provider=provider)
             .values_list("state", flat=True).first())
    if state is None:
        raise VideoNotConnected(details={"provider": provider})
    if state != ConnectionState.ACTIVE:
        raise VideoConnectionInvalid(details={"provider": provider})


@receiver(booking_made, dispatch_uid="meetings.booking_made")
def on_booking_made(sender: Any, *, booking: Booking, new_session: bool, now: datetime,
                    **kwargs: Any) -> None:
    if not new_session:
        return
    from .gate import create_row
    from .tasks import run_due

    if create_row(booking.session, now=now) is not None:
        due.wake_on_commit(run_due, now)


@receiver(session_changed, dispatch_uid="meetings.session_changed")
def on_session_changed(sender: Any, *, kind: SessionEventKind, session_id: int,
                       booking_id: int | None, **kwargs: Any) -> None:
    if kind not in MOVES:
        return
    from .gate import mark_due
    from .tasks import run_due

    now = clock.now()
    if mark_due(session_id, now=now):
        due.wake(run_due, now)

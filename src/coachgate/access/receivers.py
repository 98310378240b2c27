"""How access reacts to scheduling: scheduling emits events and knows nothing of access."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.dispatch import receiver

from coachgate.accounts.models import User
from coachgate.catalog.models import Delivery, Offer
from coachgate.kit import clock
from coachgate.scheduling.events import (
    BOOKING_MADE,
    SessionEventKind,
    booking_made,
    booking_requested,
    session_changed,
)
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
_SAME_ACCESS = frozenset({SessionEventKind.STARTED, SessionEventKind.COMPLETED,
                          SessionEventKind.NO_SHOW_STUDENT, SessionEventKind.NO_SHOW_COACH,
                          SessionEventKind.EARLY_END_SHORT})


@receiver(booking_made, dispatch_uid="access.booking_made")
def on_booking_made(sender: Any, *, booking: Booking, new_session: bool, now: datetime,
                    **kwargs: Any) -> None:
    # In the booking's transaction: the session never commits without its access row.
    from . import services

    if new_session:
        services.create_access_row(booking.session, now=now)
    else:  # another seat of a group session: its row exists
        services.sync_access_row(booking.session, now=now)


@receiver(session_changed, dispatch_uid="access.session_changed")
def on_session_changed(sender: Any, *, kind: SessionEventKind, session_id: int,
                       booking_id: int | None, **kwargs: Any) -> None:
    if kind in _SAME_ACCESS or kind in BOOKING_MADE:
        return  # a new booking's row was written with it (booking_made)
    from . import services

    now = clock.now()
    with transaction.atomic():
        session = Session.objects.select_related("offer", "coach").filter(pk=session_id).first()
        if session is None:
            return
        services.sync_access_row(session, now=now)

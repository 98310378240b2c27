"""How billing reacts to scheduling: scheduling emits events and knows nothing of money."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.dispatch import receiver

from coachgate.accounts.models import User
from coachgate.catalog.models import Offer
from coachgate.kit import clock
from coachgate.scheduling.events import (
    BOOKING_MADE,
    SessionEventKind,
    booking_made,
    booking_requested,
    session_changed,
)
from coachgate.scheduling.models import Booking, Session

from .models import SessionBilling


@receiver(booking_requested, dispatch_uid="billing.check_booking")
def check_booking(sender: Any, *, student: User, offer: Offer, start: datetime, end: datetime,
                  now: datetime, **kwargs: Any) -> None:
    from . import services

    services.check_booking(student, offer)


@receiver(booking_made, dispatch_uid="billing.booking_made")
def on_booking_made(sender: Any, *, booking: Booking, new_session: bool, now: datetime,
                    **kwargs: Any) -> None:
    # In the booking's transaction: the booking never commits without its charge, payment
    # and settlement gate.
    from . import services

    services.record_new_booking(booking, new_session=new_session, now=now)


@receiver(session_changed, dispatch_uid="billing.session_changed")
def on_session_changed(sender: Any, *, kind: SessionEventKind, session_id: int,
                       booking_id: int | None, **kwargs: Any) -> None:
    if kind in BOOKING_MADE:
        return  # recorded with the booking (booking_made)
    from . import services

    now = clock.now()
    with transaction.atomic():
        if SessionBilling.objects.filter(pk=session_id, settled_at__isnull=False).exists():
            return  # settled (usually by the very change that sent this event)
        session = Session.objects.select_related("offer").filter(pk=session_id).first()
        if session is not None:
            services.sync_session_gate(session, now=now)

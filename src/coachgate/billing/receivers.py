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
    booking_requested,
    session_changed,
)
from coachgate.scheduling.models import Session

from .models import SessionBilling


@receiver(booking_requested, dispatch_uid="billing.check_booking")
def check_booking(sender: Any, *, student: User, offer: Offer, start: datetime, end: datetime,
                  now: datetime, **kwargs: Any) -> None:
    from . import services

    services.check_booking(student, offer)


@receiver(session_changed, dispatch_uid="billing.session_changed")
def on_session_changed(sender: Any, *, kind: SessionEventKind, session_id: int,
                       booking_id: int | None, **kwargs: Any) -> None:
    from . import services

    now = clock.now()
    with transaction.atomic():
        if kind in BOOKING_MADE and booking_id is not None:
            services.record_booking(booking_id, now=now)
            return
        if SessionBilling.objects.filter(pk=session_id, settled_at__isnull=False).exists():
            return  # settled (usually by the very change that sent this event)
        session = Session.objects.select_related("offer").filter(pk=session_id).first()
        if session is not None:
            services.sync_session_gate(session, now=now)

"""How access reacts to scheduling: scheduling emits events and knows nothing of access."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.dispatch import receiver

from coachgate.accounts.models import User
from coachgate.catalog.models import Delivery, Offer
from coachgate.kit import clock
from coachgate.scheduling.events import SessionEventKind, booking_requested, session_changed
from coachgate.scheduling.models import Session


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


@receiver(session_changed, dispatch_uid="access.session_changed")
def on_session_changed(sender: Any, *, kind: SessionEventKind, session_id: int,
                       booking_id: int | None, **kwargs: Any) -> None:
    if kind in _SAME_ACCESS:
        return
    from . import services

    now = clock.now()
    with transaction.atomic():
        session = Session.objects.select_related("offer", "coach").filter(pk=session_id).first()
        if session is None:
            return
        services.sync_access_row(session, now=now)

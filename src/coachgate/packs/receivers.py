"""How packs react to scheduling and billing; neither of them knows packs exist."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.dispatch import receiver

from coachgate.accounts.models import User
from coachgate.billing.events import booking_settled
from coachgate.billing.models import Settlement
from coachgate.catalog.models import Offer
from coachgate.kit import clock
from coachgate.scheduling.events import SessionEventKind, booking_requested, session_changed


@receiver(booking_requested, dispatch_uid="packs.refuse_direct_pack_booking")
def refuse_direct_pack_booking(sender: Any, *, student: User, offer: Offer, start: datetime,
                               end: datetime, now: datetime, **kwargs: Any) -> None:
    from . import services

    services.refuse_direct_pack_booking(offer)


@receiver(booking_settled, dispatch_uid="packs.record_settlement")
def record_settlement(sender: Any, *, settlement: Settlement, consumes: bool, now: datetime,
                      **kwargs: Any) -> None:
    # Inside billing's settlement transaction: the pack changes with the settlement or not
    # at all.
    from . import services

    services.record_settlement(settlement, consumes=consumes, now=now)


@receiver(session_changed, dispatch_uid="packs.session_changed")
def on_session_changed(sender: Any, *, kind: SessionEventKind, session_id: int,
                       booking_id: int | None, **kwargs: Any) -> None:
    if kind != SessionEventKind.RESCHEDULED:
        return  # outcomes and cancellations reach packs through their settlement
    from . import services

    services.on_session_moved(session_id, now=clock.now())

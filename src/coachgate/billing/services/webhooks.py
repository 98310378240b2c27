"""Gateway webhooks: verified, stored once, processed by a task."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

from coachgate.kit import clock
from coachgate.kit.errors import (
    GatewayNotConfigured,
    InvalidWebhookSignature,
)

from ..gateways import get_gateway
from ..gateways.base import (
    InvalidSignature,
)
from ..models import (
    BillingProfile,
    Payment,
    PaymentStatus,
    WebhookEvent,
    WebhookStatus,
)
from ._common import _wake_on_commit
from .cards import _card_saved
from .payments import _notify_payment_problem

log = logging.getLogger(__name__)


def receive_webhook(gateway: str, payload: bytes, headers: dict[str, str], *,
                    now: datetime | None = None) -> tuple[WebhookEvent, bool]:
    """Verify, then store once by the provider's event id; processing is a task."""
    now = now or clock.now()
    try:
        gw = get_gateway(gateway)
    except (ImproperlyConfigured, ValueError):
        raise GatewayNotConfigured() from None
    try:
        event = gw.parse_webhook(payload, headers)
    except InvalidSignature as exc:
        raise InvalidWebhookSignature(str(exc) or None) from None
    with transaction.atomic(durable=True):
        row, created = WebhookEvent.objects.get_or_create(
            gateway=gateway, event_id=event.id,
            defaults={"type": event.type, "payload": event.data, "received_at": now})
        if created:
            from ..tasks import process_webhook

            transaction.on_commit(lambda: process_webhook.enqueue(row.pk))
    return row, created


def process_webhook(event_pk: int, *, now: datetime | None = None) -> str:
    now = now or clock.now()
    with transaction.atomic(durable=True):
        row = WebhookEvent.objects.select_for_update().filter(pk=event_pk).first()
        if row is None or row.status != WebhookStatus.RECEIVED:
            return "done"
        obj = row.payload or {}
        status = WebhookStatus.IGNORED
        if row.type == "setup_intent.succeeded":
            profile = BillingProfile.objects.filter(setup_ref=obj.get("id", "")).first()
            pm = obj.get("payment_method") or ""
            if profile is not None and pm:
                _card_saved(profile, str(pm), now)
                status = WebhookStatus.PROCESSED
        elif row.type.startswith("payment_intent."):
            payment = Payment.objects.select_for_update().filter(
                ref=obj.get("id", "")).first() if obj.get("id") else None
            if payment is not None:
                _apply_payment_event(payment, row.type, obj, now)
                status = WebhookStatus.PROCESSED
        row.status, row.processed_at = status, now
        row.save(update_fields=["status", "processed_at"])
        return str(status)


def _apply_payment_event(p: Payment, kind: str, obj: dict[str, Any], now: datetime) -> None:
    """The gateway tells us what happened outside our own calls (an authorisation that
    expired, a payment that failed later): put the payment where its gate can act."""
    if kind == "payment_intent.canceled" and p.status == PaymentStatus.AUTHORIZED:
        # The hold expired or was released at the gateway: authorise again or charge.
        p.status, p.ref, p.next_due_at = PaymentStatus.PENDING, "", now
        p.save(update_fields=["status", "ref", "next_due_at", "updated_at"])
        _wake_on_commit(now)
    elif kind == "payment_intent.payment_failed" and p.status in (
            PaymentStatus.PENDING, PaymentStatus.AUTHORIZED):
        err = obj.get("last_payment_error") or {}
        p.status = PaymentStatus.ACTION_NEEDED
        # As the gateway reports it: "generic_decline" says less than the code.
        specific = err.get("decline_code")
        p.decline_code = str((specific if specific and specific != "generic_decline" else None)
                             or err.get("code") or "payment_failed")[:40]
        p.attempts += 1
        p.declines += 1
        p.save(update_fields=["status", "decline_code", "attempts", "declines", "updated_at"])
        _notify_payment_problem(p, now)

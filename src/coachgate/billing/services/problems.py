"""Money that someone must look at, for the admin console's failures inbox, and the
retries an admin may start from there.

* payments the student must act on (declined, authentication needed) or whose gate keeps
  failing (the gateway away, bad data);
* settlement gates that keep failing;
* gateway webhooks whose processing failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q

from coachgate.accounts.models import User
from coachgate.kit import clock, due
from coachgate.kit.errors import Forbidden, NotFound
from coachgate.kit.money import format_amount

from ..models import Payment, PaymentStatus, SessionBilling, WebhookEvent, WebhookStatus

# Decline codes a person understands (Stripe's names; the offline gateway uses the same).
_DECLINES = {
    "card_declined": "the card was declined",
    "insufficient_funds": "the card has insufficient funds",
    "expired_card": "the card has expired",
    "authentication_required": "the bank asks the student to authenticate the payment",
    "incorrect_cvc": "the card's security code was wrong",
}


@dataclass
class MoneyProblem:
    kind: str  # payment | settlement | webhook
    pk: int
    title: str
    cause: str
    at: datetime | None


def _payment_problem(p: Payment) -> MoneyProblem:
    amount = format_amount(p.amount_minor, p.currency)
    who = p.student.email if p.student_id else "?"
    if p.status == PaymentStatus.ACTION_NEEDED:
        reason = _DECLINES.get(p.decline_code, f"the gateway said {p.decline_code or 'no'}")
        cause = (f"The student must act: {reason}. They were asked to update their card; "
                 "retry once they have.")
    else:
        cause = f"The payment gate failed {p.attempts} time(s): {p.last_error}"
    return MoneyProblem("payment", p.pk, f"Payment {p.key} of {amount} by {who}", cause,
                        p.updated_at)


def problems(*, limit: int = 50) -> list[MoneyProblem]:
    """At most ``limit`` of each kind, newest first."""
    found = [_payment_problem(p) for p in Payment.objects.select_related("student").filter(
        Q(status=PaymentStatus.ACTION_NEEDED) | ~Q(last_error="")).order_by("-updated_at")[:limit]]
    found += [MoneyProblem("settlement", b.pk, f"Settlement of session {b.pk}",
                           f"Settling failed {b.attempts} time(s): {b.last_error}", b.updated_at)
              for b in SessionBilling.objects.exclude(last_error="")
              .filter(settled_at__isnull=True).order_by("-updated_at")[:limit]]
    found += [MoneyProblem("webhook", e.pk, f"{e.gateway} event {e.type} ({e.event_id})",
                           f"Processing it failed: {e.error}", e.received_at)
              for e in WebhookEvent.objects.filter(status=WebhookStatus.FAILED)
              .order_by("-received_at")[:limit]]
    return found


def _admin(actor: User) -> None:
    if not actor.is_admin:
        raise Forbidden("Only an admin can retry this.")


def retry_payment(actor: User, payment_id: int, *, now: datetime | None = None) -> bool:
    """Run a payment's gate now (after the student updated their card, or the gateway is
    back). True when the gateway accepted what the gate asked."""
    from .payments import run_payment

    _admin(actor)
    now = now or clock.now()
    if not Payment.objects.filter(pk=payment_id).update(next_due_at=now, attempts=0):
        raise NotFound("No such payment.")
    return run_payment(payment_id, now=now, owner=due.worker_identity())


def retry_settlement(actor: User, session_id: int, *, now: datetime | None = None) -> None:
    """Settle a session whose settlement gate failed, now (raises what it raises: the page
    shows it)."""
    from .settlement import settle_session

    _admin(actor)
    now = now or clock.now()
    if not SessionBilling.objects.filter(pk=session_id).exists():
        raise NotFound("No such settlement gate.")
    settle_session(session_id, now=now, actor=actor)


def retry_webhook(actor: User, event_id: int, *, now: datetime | None = None) -> str:
    """Process a failed webhook event again; returns its new status."""
    from .webhooks import process_webhook

    _admin(actor)
    if not WebhookEvent.objects.filter(pk=event_id, status=WebhookStatus.FAILED).update(
            status=WebhookStatus.RECEIVED, error=""):
        raise NotFound("No such failed event.")
    return process_webhook(event_id, now=now)

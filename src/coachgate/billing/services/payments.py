"""The payment gate: plan a step, call the gateway outside any transaction, record the answer."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction

from coachgate.kit import clock, due, metrics
from coachgate.kit.config import conf
from coachgate.kit.errors import (
    NotFound,
)

from .. import ledger
from ..gateways import get_gateway, offline
from ..gateways.base import (
    GatewayUnavailable,
    PaymentDeclined,
    PaymentGateway,
    PaymentRequest,
    PaymentResult,
)
from ..models import (
    BillingProfile,
    Payment,
    PaymentStatus,
)
from ._common import LEASE, PAYMENT_ACTION_RETRY, _wake_on_commit

log = logging.getLogger(__name__)

# --- the payment gate: plan, call, record -------------------------------------------------
#
# Like access.converge: the next gateway call is planned in a short transaction (under the
# payment's lease), the gateway is called with no transaction open, and its answer is
# recorded in another short transaction. A slow or hung gateway then holds only the
# payment's lease, never a database lock (on SQLite: the one write lock every booking
# needs). A crash between the call and the record is safe: the lease expires, the row
# still says what it said, so the same call is planned again with the same idempotency
# key and the gateway replays its first answer.
#
# The offline gateway moves nothing and answers every call at once, as a pure function of
# the call (``offline.answer``): its steps are applied in the caller's transaction without
# calling any gateway, so a settlement burst needs no second run per payment.


@dataclass(frozen=True)
class _Step:
    """The next gateway call of one payment, decided from its row."""

    kind: str  # authorize | charge | capture | cancel | refund | release (no call)
    amount: int  # ISO minor units of the payment's currency
    ref: str
    key: str  # the gateway's idempotency base for this call
    request: PaymentRequest | None = None
    # The row as planned: the answer is recorded only onto a row still in this state.
    state: tuple[str, str, int, int] = ("", "", 0, 0)


def _state(p: Payment) -> tuple[str, str, int, int]:
    return (str(p.status), p.ref, p.captured_minor, p.refunded_minor)


def _plan_step(p: Payment, now: datetime) -> _Step | None:
    """What to ask the gateway next (None: nothing to do now). Pure but for the saved card
    read by ``_request``."""
    state = _state(p)
    if p.capture_minor is not None and p.status in (
            PaymentStatus.PENDING, PaymentStatus.ACTION_NEEDED, PaymentStatus.AUTHORIZED):
        amount = p.capture_minor
        if p.status == PaymentStatus.AUTHORIZED:
            if amount > 0:
                return _Step("capture", amount, p.ref, p.key, state=state)
            return _Step("cancel", 0, p.ref, p.key, state=state)
        if amount > 0:  # never authorised (booked late, declined, hold lapsed): charge now
            request = _request(p, amount)
            return _Step("charge", amount, p.ref, request.key, request, state)
        # Nothing held, nothing to take.
        return _Step("release", 0, p.ref, p.key, state=state)
    if (p.capture_minor is None and now >= p.authorize_at
            and p.status in (PaymentStatus.PENDING, PaymentStatus.ACTION_NEEDED)):
        request = _request(p, p.amount_minor)
        return _Step("authorize", p.amount_minor, p.ref, request.key, request, state)
    wanted = min(p.refund_minor, p.captured_minor)
    if p.status == PaymentStatus.CAPTURED and wanted > p.refunded_minor:
        return _Step("refund", wanted - p.refunded_minor, p.ref,
                     f"{p.key}:refund:{p.refunded_minor}", state=state)
    return None


def _call(gw: PaymentGateway, step: _Step, currency: str) -> PaymentResult:
    """The one gateway call of a step. Never inside a transaction (tests assert it)."""
    if step.kind == "authorize" and step.request is not None:
        return gw.authorize(step.request)
    if step.kind == "charge" and step.request is not None:
        return gw.charge(step.request)
    if step.kind == "capture":
        return gw.capture(ref=step.ref, amount_minor=step.amount, currency=currency,
                          key=step.key)
    if step.kind == "cancel":
        return gw.cancel(ref=step.ref, key=step.key)
    if step.kind == "refund":
        return gw.refund(ref=step.ref, amount_minor=step.amount, currency=currency,
                         key=step.key)
    return PaymentResult(ref=step.ref, status="cancelled", amount_minor=0)  # release


def _record_step(p: Payment, step: _Step, res: PaymentResult, now: datetime, *,
                 collect: list[ledger.Entry] | None = None) -> None:
    """Apply a step's answer to the payment (the caller saves it) and the ledger."""
    if step.kind == "authorize":
        p.ref, p.status = res.ref, PaymentStatus.AUTHORIZED
    elif step.kind in ("capture", "charge"):
        p.ref, p.status, p.captured_minor = res.ref, PaymentStatus.CAPTURED, res.amount_minor
        entry = ledger.Entry(f"capture:{p.key}", "capture", p.currency, (
            (ledger.gateway_account(p.gateway), -p.captured_minor),
            (_payer_account(p), p.captured_minor)), f"{p.key} captured")
        if collect is not None:  # the caller records it (with others, under its lock)
            collect.append(entry)
        else:
            ledger.record(entry.key, entry.kind, entry.currency, entry.lines, at=now,
                          memo=entry.memo)
    elif step.kind in ("cancel", "release"):
        p.status = PaymentStatus.CANCELLED
    elif step.kind == "refund":
        ledger.record(f"refund:{p.key}:{p.refunded_minor}", "refund", p.currency, [
            (_payer_account(p), -step.amount), (ledger.gateway_account(p.gateway),
                                                step.amount)],
            at=now, memo=f"{p.key} refund")
        p.refunded_minor += step.amount
    p.decline_code, p.last_error, p.attempts = "", "", 0
    p.next_due_at = _payment_next_due(p, now)


_MAX_STEPS = 4  # authorise, capture (or charge after a lapsed hold), refund: then done


def _payment_step(p: Payment, now: datetime, *,
                  collect: list[ledger.Entry] | None = None) -> None:
    """Move an offline payment as far as it can go now, in the caller's transaction (under
    the payment's row lock). Mutates ``p``; the caller saves it. No gateway is called: the
    offline gateway's answers are ``offline.answer``."""
    if p.gateway != "offline":
        raise ValueError(f"{p.gateway} payments move through their gate (run_payment)")
    for _ in range(_MAX_STEPS):
        step = _plan_step(p, now)
        if step is None:
            break
        _record_step(p, step, offline.answer(step.kind, key=step.key, ref=step.ref,
                                             amount_minor=step.amount), now, collect=collect)
    p.decline_code, p.last_error, p.attempts = "", "", 0
    p.next_due_at = _payment_next_due(p, now)


def _payer_account(p: Payment) -> str:
    return ledger.student_account(p.student_id)


def _payment_next_due(p: Payment, now: datetime) -> datetime | None:
    """When the payment's gate must run next (None: nothing left to do)."""
    if p.capture_minor is None and p.status in (PaymentStatus.PENDING,
                                                PaymentStatus.ACTION_NEEDED):
        return max(p.authorize_at, now)
    if p.capture_minor is not None and p.status in (
            PaymentStatus.PENDING, PaymentStatus.ACTION_NEEDED, PaymentStatus.AUTHORIZED):
        return now
    if p.status == PaymentStatus.CAPTURED and min(p.refund_minor,
                                                   p.captured_minor) > p.refunded_minor:
        return now
    return None


def _payment_lease(gateway: str) -> timedelta:
    """How long a payment's claim lasts from the plan of a call: longer than the slowest
    call can take (the gateway's ``call_budget_s``: its timeout and retries), so no other
    worker takes the payment over mid-call."""
    budget = get_gateway(gateway).call_budget_s
    return max(LEASE, timedelta(seconds=budget + 30))


def run_payment(payment_id: int, *, now: datetime, owner: str, claimed: bool = False) -> bool:
    """One payment's gate: plan the next call in a short transaction, call the gateway with
    the lease held and no transaction open, record the answer in another short transaction;
    until nothing is left to do now. Returns False when the gateway refused or was away
    (the payment is due again later)."""
    if not claimed and not due.claim_one(Payment, payment_id, now=now, owner=owner,
                                         lease=LEASE):
        return True  # another run holds it
    started = clock.now()
    gw: PaymentGateway | None = None
    for _ in range(_MAX_STEPS + 1):
        planned = _plan_payment(payment_id, now=now, owner=owner, started=started)
        if planned is None:
            return True
        p, step = planned
        gw = gw or get_gateway(p.gateway)
        try:
            res = _call(gw, step, p.currency)
        except PaymentDeclined as exc:
            _record_decline(payment_id, step, exc, now=now, owner=owner)
            if exc.code == "authorization_expired":
                continue  # the hold is gone: the next step charges instead
            metrics.PAYMENT_CALLS.labels(gateway=p.gateway, result="declined").inc()
            return False
        except GatewayUnavailable as exc:
            _record_unavailable(payment_id, exc, now=now, owner=owner)
            metrics.PAYMENT_CALLS.labels(gateway=p.gateway, result="retry").inc()
            return False
        _record_answer(payment_id, step, res, now=now, owner=owner)
        metrics.PAYMENT_CALLS.labels(gateway=p.gateway, result="ok").inc()
    # More steps than a payment has: something keeps changing it. Look again shortly.
    with transaction.atomic(durable=True):
        due.release(Payment, payment_id, owner=owner, next_due_at=now + timedelta(seconds=1))
        _wake_on_commit(now + timedelta(seconds=1))
    return True


def _plan_payment(payment_id: int, *, now: datetime, owner: str, started: datetime
                  ) -> tuple[Payment, _Step] | None:
    """The plan transaction: the next step, with our lease renewed; or, with nothing left
    to do now (or the lease lost), None after ending the claim."""
    with transaction.atomic(durable=True):
        p = Payment.objects.select_for_update().filter(pk=payment_id).first()
        if p is None or p.lease_owner != owner:
            return None  # gone, or another run took it over (our lease had expired)
        step = _plan_step(p, now) if p.gateway != "offline" else None
        if step is None:
            if p.gateway == "offline":
                _payment_step(p, now)  # answered at once: no call, no second transaction
            else:
                p.decline_code, p.last_error, p.attempts = "", "", 0
                p.next_due_at = _payment_next_due(p, now)
            p.lease_until, p.lease_owner = None, ""
            p.save()
            _wake_on_commit(p.next_due_at if p.next_due_at and p.next_due_at > now else None)
            return None
        # The lease is renewed for each call. ``now`` is the run's instant (the one its claim
        # used), advanced by the time the run has taken so far.
        lease_until = now + (clock.now() - started) + _payment_lease(p.gateway)
        Payment.objects.filter(pk=p.pk).update(lease_until=lease_until)
        return p, step


def _locked_if_ours(payment_id: int, owner: str) -> Payment | None:
    p = Payment.objects.select_for_update().filter(pk=payment_id).first()
    if p is None or p.lease_owner != owner:
        log.warning("payment %s: the lease was lost during a gateway call; the next run "
                    "replays it with the same idempotency key", payment_id)
        return None
    return p


def _record_answer(payment_id: int, step: _Step, res: PaymentResult, *, now: datetime,
                   owner: str) -> None:
    with transaction.atomic(durable=True):
        p = _locked_if_ours(payment_id, owner)
        if p is None:
            return
        if _state(p) != step.state:
            # Changed while the gateway was called (a webhook): plan again from what the
            # row says now; a repeated call replays its first answer (same key).
            log.warning("payment %s changed during its %s call; planning again", p.key,
                        step.kind)
            Payment.objects.filter(pk=p.pk).update(next_due_at=now)
            return
        _record_step(p, step, res, now)
        p.save()  # keeps the lease: the run plans its next step (or ends the claim) next


def _record_decline(payment_id: int, step: _Step, exc: PaymentDeclined, *, now: datetime,
                    owner: str) -> None:
    with transaction.atomic(durable=True):
        p = _locked_if_ours(payment_id, owner)
        if p is None:
            return
        if exc.code == "authorization_expired" and step.kind == "capture":
            # The hold lapsed (card holds last 5-7 days) or was released at the gateway:
            # the amount is charged instead, at once (the run's next step).
            if p.status == PaymentStatus.AUTHORIZED and p.ref == step.ref:
                p.status, p.ref = PaymentStatus.PENDING, ""
            p.save(update_fields=["status", "ref", "updated_at"])
            return
        p.status = PaymentStatus.ACTION_NEEDED if p.status in (
            PaymentStatus.PENDING, PaymentStatus.ACTION_NEEDED) else p.status
        p.decline_code, p.last_error = exc.code[:40], exc.message[:2000]
        p.attempts += 1
        p.declines += 1
        p.next_due_at = now + PAYMENT_ACTION_RETRY
        p.lease_until, p.lease_owner = None, ""
        p.save()
        _notify_payment_problem(p, now)
        _wake_on_commit(p.next_due_at)


def _record_unavailable(payment_id: int, exc: GatewayUnavailable, *, now: datetime,
                        owner: str) -> None:
    with transaction.atomic(durable=True):
        p = _locked_if_ours(payment_id, owner)
        if p is None:
            return
        p.attempts += 1
        delay = timedelta(seconds=min(600, 2 ** min(p.attempts, 9)))
        if exc.retry_after:
            delay = max(delay, timedelta(seconds=exc.retry_after))
        p.last_error = str(exc)[:2000]
        p.next_due_at = now + delay
        p.lease_until, p.lease_owner = None, ""
        p.save()
        _wake_on_commit(p.next_due_at)


def _notify_payment_problem(p: Payment, now: datetime) -> None:
    from coachgate.notify.services import notify

    public = conf().PUBLIC_URL
    notify(p.student, "payment_problem",
           {"payment_key": p.key, "code": p.decline_code, "amount_minor": p.amount_minor,
            "currency": p.currency, "card_url": f"{public}/api/v1/billing/card",
            "authentication": p.decline_code == "authentication_required"},
           key=f"payment_problem:{p.key}:{p.attempts}", now=now)


def _request(payment: Payment, amount: int) -> PaymentRequest:
    profile = BillingProfile.objects.filter(user_id=payment.student_id).first()
    return PaymentRequest(
        key=f"{payment.key}:{payment.declines}" if payment.declines else payment.key,
        amount_minor=amount, currency=payment.currency,
        customer_ref=profile.customer_ref if profile else "",
        payment_method_ref=profile.payment_method_ref if profile else "",
        description=f"coachgate {payment.key}", metadata={"coachgate_key": payment.key})


_PAYMENT_STEP_FIELDS = ["capture_minor", "status", "captured_minor", "refunded_minor", "ref",
                        "decline_code", "last_error", "attempts", "next_due_at", "updated_at"]


def request_refund(payment_key: str, amount_minor: int, *, now: datetime) -> None:
    """Give ``amount_minor`` of a captured payment back (its gate calls the gateway)."""
    payment = Payment.objects.select_for_update().filter(key=payment_key).first()
    if payment is None:
        raise NotFound(f"No payment {payment_key}.")
    payment.refund_minor += amount_minor
    payment.next_due_at = now
    payment.save(update_fields=["refund_minor", "next_due_at", "updated_at"])
    _after_payment_change(payment, now)


def _after_payment_change(payment: Payment, now: datetime) -> None:
    """The offline gateway answers at once and moves nothing: apply its step right here, in
    the same transaction (a settlement burst then needs no second run per session). Real
    gateways are called by the payment gate, outside any transaction."""
    if payment.gateway == "offline":
        _payment_step(payment, now)
        payment.save()
    else:
        _wake_on_commit(payment.next_due_at)

"""The offline gateway (the default): amounts are recorded, money is collected outside.

Every call succeeds at once and moves nothing; the ledger still records who owes whom, so
an academy that invoices by hand reads its statements from coachgate. References are
derived from the idempotency key, so a repeated call returns the same answer.

Its answers are a pure function of the call (``answer``): billing applies offline steps in
its own transaction from ``answer`` without calling any gateway (every gateway call runs
outside transactions; the offline one has nothing to wait for).
"""

from __future__ import annotations

from .base import CardSetup, Customer, InvalidSignature, PaymentRequest, PaymentResult, WebhookEvent


def answer(kind: str, *, key: str, ref: str, amount_minor: int) -> PaymentResult:
    """What the offline gateway answers to ``kind`` (authorize, charge, capture, cancel,
    refund, release) for the call's idempotency key, payment ref and amount."""
    if kind in ("authorize", "charge"):
        return PaymentResult(ref=f"off_{key}",
                             status="authorized" if kind == "authorize" else "captured",
                             amount_minor=amount_minor)
    if kind == "capture":
        return PaymentResult(ref=ref, status="captured", amount_minor=amount_minor)
    if kind == "refund":
        return PaymentResult(ref=ref, status="refunded", amount_minor=amount_minor)
    if kind in ("cancel", "release"):
        return PaymentResult(ref=ref, status="cancelled", amount_minor=0)
    raise ValueError(f"unknown payment step {kind!r}")


class OfflineGateway:
    name = "offline"
    call_budget_s = 0.0  # answers at once

    def ensure_customer(self, *, user_id: int, email: str, existing_ref: str) -> Customer:
        return Customer(ref=existing_ref or f"off_cus_{user_id}")

    def start_card_setup(self, *, customer_ref: str, key: str) -> CardSetup:
        # Nothing to save: money is collected outside coachgate.
        return CardSetup(ref=f"off_seti_{key}", status="succeeded",
                         payment_method_ref="offline")

    def card_setup(self, ref: str) -> CardSetup:
        return CardSetup(ref=ref, status="succeeded", payment_method_ref="offline")

    def authorize(self, request: PaymentRequest) -> PaymentResult:
        return answer("authorize", key=request.key, ref="", amount_minor=request.amount_minor)

    def capture(self, *, ref: str, amount_minor: int, currency: str, key: str
                ) -> PaymentResult:
        return answer("capture", key=key, ref=ref, amount_minor=amount_minor)

    def cancel(self, *, ref: str, key: str) -> PaymentResult:
        return answer("cancel", key=key, ref=ref, amount_minor=0)

    def charge(self, request: PaymentRequest) -> PaymentResult:
        return answer("charge", key=request.key, ref="", amount_minor=request.amount_minor)

    def refund(self, *, ref: str, amount_minor: int, currency: str, key: str
               ) -> PaymentResult:
        return answer("refund", key=key, ref=ref, amount_minor=amount_minor)

    def parse_webhook(self, payload: bytes, headers: dict[str, str]) -> WebhookEvent:
        raise InvalidSignature("The offline gateway receives no webhooks.")

"""The one interface every payment gateway implements (pretix's payment-provider contract).

Billing's services decide *what* money moves and *when* (settlement rules, the ledger,
the authorisation and capture gates); a gateway only moves it. Every call carries an
idempotency key derived from the row it serves (``"<payment key>:authorize"``), so a call
repeated after a crash or a timeout never moves money twice.

Amounts cross this interface in ISO 4217 minor units (the ledger's unit) with their
currency; each gateway converts to and from its own unit, exactly, and refuses
(``AmountNotChargeable``) what it cannot move exactly rather than rounding it.

Errors are mapped like the Discord client's: ``GatewayUnavailable`` = retry later (network,
5xx, 429); ``PaymentDeclined`` = someone must act (a declined card, a card that needs the
student's authentication). Anything else is a bug.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


class GatewayError(Exception):
    """Base of the errors a gateway raises."""


class GatewayUnavailable(GatewayError):
    """The gateway did not answer or asked us to wait: try again later."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PaymentDeclined(GatewayError):
    """The gateway refused the payment; the student must act (new card, authenticate).

    ``code`` is the gateway's decline code, e.g. ``card_declined``, ``insufficient_funds``,
    ``authentication_required``, ``expired_card``, ``no_payment_method``.
    """

    def __init__(self, code: str, message: str, *, ref: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.ref = ref  # the gateway's payment id, when one was created


class InvalidSignature(GatewayError):
    """A webhook's signature did not verify (or its timestamp is too old)."""


class AmountNotChargeable(GatewayError):
    """The amount is not a multiple of what the gateway can move in its currency (Stripe:
    10 fils of KWD, one whole ariary of MGA), or the gateway cannot charge the currency.
    Raised before anything is sent: a bug in whoever computed the amount, since offers and
    settlement keep every amount on the gateway's quantum (kit.money.quantum)."""


@dataclass(frozen=True)
class Customer:
    ref: str  # gateway customer id ("" for the offline gateway)


@dataclass(frozen=True)
class CardSetup:
    """Saving a card for later off-session payments (Stripe: a SetupIntent)."""

    ref: str  # setup id (seti_...)
    status: str  # "requires_payment_method" | "requires_action" | "succeeded" | ...
    client_secret: str = ""  # handed to the browser to finish the setup
    payment_method_ref: str = ""  # set once the setup succeeded


@dataclass(frozen=True)
class PaymentRequest:
    key: str  # idempotency base: unique per payment row, e.g. "booking:12"
    amount_minor: int  # ISO 4217 minor units of currency; a gateway converts to its own
    currency: str  # ISO 4217, upper case
    customer_ref: str
    payment_method_ref: str
    description: str = ""
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PaymentResult:
    ref: str  # gateway payment id (pi_...; "off_<key>" offline)
    status: str  # "authorized" | "captured" | "cancelled" | "refunded"
    amount_minor: int  # authorised, captured, or refunded amount (ISO minor units)


@dataclass(frozen=True)
class WebhookEvent:
    id: str  # the provider's event id: stored once (unique) before processing
    type: str
    data: dict[str, Any]  # the object; its amounts in ISO minor units, as everywhere here


class PaymentGateway(Protocol):
    """Billing calls every method outside database transactions (tests assert it): a call
    may take up to ``call_budget_s`` seconds and must not hold a lock meanwhile."""

    name: str  # "offline" | "stripe"
    # The longest one call can take, every retry included (the payment's lease outlasts it).
    call_budget_s: float

    def ensure_customer(self, *, user_id: int, email: str, existing_ref: str) -> Customer:
        """The student's customer at the gateway (created once, reused after)."""
        ...

    def start_card_setup(self, *, customer_ref: str, key: str) -> CardSetup:
        """Begin saving a card for off-session use (at booking)."""
        ...

    def card_setup(self, ref: str) -> CardSetup:
        """The current state of a card setup (succeeded -> payment_method_ref is set)."""
        ...

    def authorize(self, request: PaymentRequest) -> PaymentResult:
        """Hold ``amount_minor`` on the saved card, off-session, with manual capture."""
        ...

    def capture(self, *, ref: str, amount_minor: int, currency: str, key: str
                ) -> PaymentResult:
        """Capture ``amount_minor`` (<= the authorised amount) of an authorisation."""
        ...

    def cancel(self, *, ref: str, key: str) -> PaymentResult:
        """Release an authorisation without taking anything."""
        ...

    def charge(self, request: PaymentRequest) -> PaymentResult:
        """Take ``amount_minor`` now, off-session (pack purchases, charges after the
        authorisation window)."""
        ...

    def refund(self, *, ref: str, amount_minor: int, currency: str, key: str
               ) -> PaymentResult:
        """Give back ``amount_minor`` of a captured payment."""
        ...

    def parse_webhook(self, payload: bytes, headers: dict[str, str]) -> WebhookEvent:
        """Verify the signature and parse; raises InvalidSignature."""
        ...

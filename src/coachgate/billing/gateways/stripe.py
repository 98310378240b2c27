"""Stripe behind the PaymentGateway interface, through the official SDK (``StripeClient``).

Cards are saved with a SetupIntent (``usage=off_session``; the browser finishes it with
Stripe.js and the client secret) and charged later, off-session, with PaymentIntents
created and confirmed in one call: ``authorize`` holds the amount (``capture_method=
manual`` -> status ``requires_capture``), ``capture`` takes all or part of the hold (the
rest is released), ``cancel`` releases it, ``charge`` takes money at once (automatic
capture), ``refund`` gives back part or all of a captured payment.

Idempotency: every mutating call carries ``Idempotency-Key: "<key>:<step>"`` (``<key>`` is
the caller's, unique per payment row; ``<step>`` is ``authorize``, ``charge``, ``capture``,
``cancel``, ``refund``, ``setup``). Stripe keeps keys 24 hours and replays the first
answer — including a card decline, and a 500 that happened once the request began
executing — so a call repeated after a crash or a timeout moves money once. The SDK
retries network errors, 409 and 5xx answers itself (not a saved 500: Stripe sends
``Stripe-Should-Retry: false``), and a 429 when Stripe sends ``Stripe-Should-Retry:
true`` (``max_network_retries``, default 2, with the same key). Creating an intent also
recovers from a saved 500 (a lookup of the customer's intents, then a new key only if
none was created) and from 409 ``idempotency_key_in_use`` (wait, same key): see
``_create_intent``. What still fails is mapped:

* ``stripe.CardError`` -> ``PaymentDeclined(code, message, ref=<payment intent id>)``,
  ``code`` being Stripe's ``decline_code`` when it says more than ``generic_decline``
  (``insufficient_funds``, ``authentication_required``, ``expired_card``, ...), else the
  error's ``code`` (``card_declined``, ``incorrect_cvc``, ...).
* An intent that ends ``requires_action`` (the card wants the student's 3DS) ->
  ``PaymentDeclined("authentication_required")``.
* A missing or unknown payment method -> ``PaymentDeclined("no_payment_method")``.
* Capturing an authorisation Stripe has already cancelled (holds lapse after 7 days) ->
  ``PaymentDeclined("authorization_expired", ref=...)``: charge instead.
* ``APIConnectionError``, ``RateLimitError``, 5xx and 409 ``APIError`` ->
  ``GatewayUnavailable`` (``retry_after`` from a ``Retry-After`` header when present).
* Anything else (``InvalidRequestError``, ``IdempotencyError``, ``AuthenticationError``)
  is a bug or a misconfiguration and propagates unchanged.

Amounts: coachgate counts ISO 4217 minor units; Stripe's ``amount`` is "the smallest
unit" as Stripe defines it per currency (https://docs.stripe.com/currencies), which is not
always ISO's. The gateway converts both ways, exactly, with ``kit.money.to_gateway`` /
``from_gateway`` (every amount it sends, and every amount it reads back from an intent, a
refund or a webhook's object):

* Most currencies: the same unit (USD cents, JPY yen).
* MGA: ISO counts 1/100 ariary, Stripe whole ariary (zero-decimal): 50000 -> 500.
* ISK and UGX: ISO counts whole units, Stripe keeps two decimals for backwards
  compatibility and requires multiples of 100: 1234 ISK -> 123400.
* BHD, JOD, KWD, OMR, TND: both count 1/1000, and Stripe wants the last digit 0.

An amount that does not convert exactly (12345 fils, 12345 MGA minor units) is refused
with ``AmountNotChargeable`` before anything is sent: rounding here would move money the
ledger did not decide. Offers and settlement keep amounts on the gateway's quantum
(``kit.money.quantum``; docs/billing.md), so this only catches a bug.

The secret key is never logged or shown (``repr`` hides it); log lines name the step, the
idempotency key and Stripe's ids only.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import stripe
from django.core.exceptions import ImproperlyConfigured

from coachgate.kit import money
from coachgate.kit.config import conf

from .base import (
    AmountNotChargeable,
    CardSetup,
    Customer,
    GatewayError,
    GatewayUnavailable,
    InvalidSignature,
    PaymentDeclined,
    PaymentRequest,
    PaymentResult,
    WebhookEvent,
)

if TYPE_CHECKING:
    from stripe.params import PaymentIntentCreateParams, SetupIntentCreateParams

log = logging.getLogger(__name__)

# Chosen, not the SDK's (80 s): a payment call runs outside transactions, holding only the
# payment's lease, but a worker thread waits for it. 10 s per attempt and 2 retries (the
# same idempotency key) bound one call to call_budget(10, 2) = 31.5 s; docs/stripe.md.
DEFAULT_TIMEOUT = 10.0  # seconds per HTTP attempt (COACHGATE_STRIPE_TIMEOUT)
DEFAULT_MAX_NETWORK_RETRIES = 2  # COACHGATE_STRIPE_MAX_NETWORK_RETRIES
# Creating a PaymentIntent that answered 5xx: at most this many idempotency keys
# (``<key>:<step>``, then ``:attempt-2``, ``:attempt-3``), each tried only once a lookup
# shows that no intent was created under the ones before.
MAX_CREATE_KEYS = 3
# 409 idempotency_key_in_use after the SDK's own retries: wait this long, then the same key
# once more.
IN_USE_WAIT_S = 2.0
# How far back the lookup lists a customer's intents: Stripe keeps a key 24 hours.
LOOKUP_WINDOW_S = 25 * 3600


def call_budget(timeout: float, max_network_retries: int) -> float:
    """The longest one call can take: every attempt times out, with the SDK's backoff
    between attempts (0.5 s doubling, at most 5 s; it ignores Retry-After)."""
    backoff = sum(min(0.5 * 2 ** (n - 1), 5.0) for n in range(1, max_network_retries + 1))
    return float(timeout * (max_network_retries + 1) + backoff)


class StripeGateway:
    name = "stripe"

    def __init__(self, *, secret_key: str, webhook_secret: str = "", api_base: str = "",
                 timeout: float = DEFAULT_TIMEOUT,
                 max_network_retries: int = DEFAULT_MAX_NETWORK_RETRIES) -> None:
        if not secret_key:
            raise ImproperlyConfigured("Stripe needs a secret key "
                                       "(COACHGATE_STRIPE_SECRET_KEY).")
        self._webhook_secret = webhook_secret
        self.api_base = api_base or stripe.DEFAULT_API_BASE
        self.livemode = secret_key.startswith(("sk_live_", "rk_live_"))
        # One gateway call, recovery included: per key a create, once more after a 409
        # wait, and a lookup when it answered 5xx (one page: 100 of a customer's intents
        # in 25 hours).
        self.call_budget_s = MAX_CREATE_KEYS * (
            3 * call_budget(timeout, max_network_retries) + IN_USE_WAIT_S)
        self._sleep = time.sleep
        # The SDK's own HTTP client (requests, a dependency of stripe); its httpx adapter
        # sends bodies in a way httpx deprecates. One client per gateway: it keeps a
        # connection pool per thread.
        self._client = stripe.StripeClient(
            secret_key,
            base_addresses={"api": self.api_base},
            max_network_retries=max_network_retries,
            http_client=stripe.RequestsClient(timeout=timeout),
        )

    @classmethod
    def from_settings(cls) -> StripeGateway:
        """The gateway configured in coachgate.kit.config (``STRIPE_SECRET_KEY``,
        ``STRIPE_WEBHOOK_SECRET``, ``STRIPE_API_BASE``; optional ``STRIPE_TIMEOUT`` and
        ``STRIPE_MAX_NETWORK_RETRIES``). Gateways are reused per configuration."""
        c = conf()
        return _cached_gateway(c.STRIPE_SECRET_KEY, c.STRIPE_WEBHOOK_SECRET, c.STRIPE_API_BASE,
                               c.STRIPE_TIMEOUT, c.STRIPE_MAX_NETWORK_RETRIES)

    def __repr__(self) -> str:
        mode = "live" if self.livemode else "test"
        return f"<StripeGateway {mode} {self.api_base}>"

    # --- Customers and cards --------------------------------------------------------------

    def ensure_customer(self, *, user_id: int, email: str, existing_ref: str) -> Customer:
        if existing_ref:
            with self._mapped("customer"):
                try:
                    found = self._client.v1.customers.retrieve(existing_ref)
                except stripe.InvalidRequestError as exc:
                    # Gone (e.g. test keys swapped for live ones): make a new one below.
                    if exc.code != "resource_missing":
                        raise
                else:
                    if not getattr(found, "deleted", False):
                        return Customer(ref=existing_ref)
            log.warning("stripe: customer %s of user %s is gone; creating another",
                        existing_ref, user_id)
        key = f"customer:{user_id}" + (f":replaces:{existing_ref}" if existing_ref else "")
        with self._mapped("customer"):
            customer = self._client.v1.customers.create(
                {"email": email, "metadata": {"coachgate_user_id": str(user_id)}},
                options={"idempotency_key": key})
        log.info("stripe: customer %s for user %s", customer.id, user_id)
        return Customer(ref=customer.id)

    def start_card_setup(self, *, customer_ref: str, key: str) -> CardSetup:
        params: SetupIntentCreateParams = {
            "usage": "off_session",
            "allowed_payment_method_types": ["card"],
            "metadata": {"coachgate_key": key},
        }
        if customer_ref:
            params["customer"] = customer_ref
        with self._mapped("setup"):
            intent = self._client.v1.setup_intents.create(
                params, options={"idempotency_key": f"{key}:setup"})
        log.info("stripe: setup %s started (%s)", intent.id, key)
        return _card_setup(intent)

    def card_setup(self, ref: str) -> CardSetup:
        with self._mapped("setup"):
            intent = self._client.v1.setup_intents.retrieve(ref)
        return _card_setup(intent)

    # --- Money ----------------------------------------------------------------------------

    def authorize(self, request: PaymentRequest) -> PaymentResult:
        return self._pay(request, capture_method="manual", step="authorize")

    def charge(self, request: PaymentRequest) -> PaymentResult:
        return self._pay(request, capture_method="automatic", step="charge")

    def capture(self, *, ref: str, amount_minor: int, currency: str, key: str
                ) -> PaymentResult:
        if amount_minor <= 0:
            raise ValueError("capture needs a positive amount; cancel() releases a hold")
        amount = _to_stripe(amount_minor, currency)
        with self._mapped("capture"):
            try:
                intent = self._client.v1.payment_intents.capture(
                    ref, {"amount_to_capture": amount},
                    options={"idempotency_key": f"{key}:capture"})
            except stripe.InvalidRequestError as exc:
                if exc.code == "payment_intent_unexpected_state" and \
                        _error_intent(exc).get("status") == "canceled":
                    raise PaymentDeclined(
                        "authorization_expired",
                        "The authorisation was cancelled or has lapsed; charge instead.",
                        ref=ref) from exc
                raise
        log.info("stripe: captured %s of %s (%s)", intent.amount_received, ref, key)
        return PaymentResult(ref=intent.id, status="captured",
                             amount_minor=_from_stripe(intent.amount_received, intent.currency))

    def cancel(self, *, ref: str, key: str) -> PaymentResult:
        with self._mapped("cancel"):
            try:
                intent = self._client.v1.payment_intents.cancel(
                    ref, options={"idempotency_key": f"{key}:cancel"})
            except stripe.InvalidRequestError as exc:
                # Already cancelled (by us with another key, or lapsed): the hold is gone,
                # which is what the caller wants.
                if exc.code == "payment_intent_unexpected_state" and \
                        _error_intent(exc).get("status") == "canceled":
                    log.info("stripe: %s was already cancelled (%s)", ref, key)
                    return PaymentResult(ref=ref, status="cancelled", amount_minor=0)
                raise
        log.info("stripe: cancelled %s (%s)", intent.id, key)
        return PaymentResult(ref=intent.id, status="cancelled", amount_minor=0)

    def refund(self, *, ref: str, amount_minor: int, currency: str, key: str
               ) -> PaymentResult:
        amount = _to_stripe(amount_minor, currency)
        with self._mapped("refund"):
            refund = self._client.v1.refunds.create(
                {"payment_intent": ref, "amount": amount,
                 "metadata": {"coachgate_key": key}},
                options={"idempotency_key": f"{key}:refund"})
        if refund.status in ("failed", "canceled"):
            raise GatewayError(f"Stripe refund {refund.id} of {ref} is {refund.status}")
        log.info("stripe: refunded %s of %s as %s (%s)", refund.amount, ref, refund.id, key)
        return PaymentResult(ref=ref, status="refunded",
                             amount_minor=_from_stripe(refund.amount, refund.currency))

    def _pay(self, request: PaymentRequest, *, capture_method: str, step: str
             ) -> PaymentResult:
        if not request.payment_method_ref:
            raise PaymentDeclined("no_payment_method", "No saved card for this payment.")
        params: PaymentIntentCreateParams = {
            "amount": _to_stripe(request.amount_minor, request.currency),
            "currency": request.currency.lower(),
            "payment_method": request.payment_method_ref,
            "allowed_payment_method_types": ["card"],
            "confirm": True,
            "off_session": True,
            "capture_method": capture_method,
            "metadata": {**request.metadata, "coachgate_key": request.key},
        }
        if request.customer_ref:
            params["customer"] = request.customer_ref
        if request.description:
            params["description"] = request.description
        with self._mapped(step):
            intent = self._create_intent(params, request, capture_method, step)
        log.info("stripe: %s %s -> %s %s", step, request.key, intent.id, intent.status)
        if intent.status == "requires_capture":
            return PaymentResult(ref=intent.id, status="authorized", amount_minor=_from_stripe(
                intent.amount_capturable, intent.currency))
        if intent.status == "succeeded":
            return PaymentResult(ref=intent.id, status="captured", amount_minor=_from_stripe(
                intent.amount_received, intent.currency))
        if intent.status == "requires_action":
            raise PaymentDeclined("authentication_required",
                                  "The card asks for the student's authentication.",
                                  ref=intent.id)
        if intent.status == "requires_payment_method":
            error = intent.last_payment_error
            code = _decline_code(getattr(error, "code", None),
                                 getattr(error, "decline_code", None))
            raise PaymentDeclined(code, getattr(error, "message", None) or "Declined.",
                                  ref=intent.id)
        raise GatewayError(f"Stripe PaymentIntent {intent.id} is {intent.status} "
                           f"after {step}")

    def _create_intent(self, params: PaymentIntentCreateParams, request: PaymentRequest,
                       capture_method: str, step: str) -> Any:
        """Create (and confirm) the intent, recovering from what Stripe's idempotency
        answers (https://docs.stripe.com/api/idempotent_requests):

        * A 5xx once the request began executing is saved under its key and replayed for
          24 hours, whether or not the intent was created first. So after a 5xx the
          customer's intents are listed (a list is read from Stripe's primary store:
          consistent at once, where search is eventually consistent, typically a minute
          behind) and one with this payment's ``coachgate_key`` and capture method is the
          answer. Only when there is none — nothing was created — is a new key used
          (``<key>:<step>:attempt-N``, deterministic, so a concurrent or later run uses
          the same one; the lookup first finds what an earlier key created).
        * 409 ``idempotency_key_in_use``: another run's request with this key is still
          executing; wait and send the same key again (never a new one: the first may
          create the intent).

        Without a customer there is nothing to list by: a 5xx stays GatewayUnavailable
        (coachgate always has one: off-session cards belong to a customer)."""
        base = f"{request.key}:{step}"
        for attempt in range(1, MAX_CREATE_KEYS + 1):
            key = base if attempt == 1 else f"{base}:attempt-{attempt}"
            try:
                return self._create_with_key(params, key)
            except stripe.APIError as exc:
                status = exc.http_status
                if status is None or status < 500 or not request.customer_ref:
                    raise
                found = self._find_intent(request, capture_method)
                if found is not None:
                    log.warning("stripe: %s answered %s; found %s it created (%s)",
                                key, status, found.id, found.status)
                    return found
                if attempt == MAX_CREATE_KEYS:
                    raise
                log.warning("stripe: %s answered %s and created nothing; trying a new key",
                            key, status)
        raise AssertionError("unreachable")

    def _create_with_key(self, params: PaymentIntentCreateParams, key: str) -> Any:
        try:
            return self._client.v1.payment_intents.create(
                params, options={"idempotency_key": key})
        except stripe.APIError as exc:
            if exc.http_status != 409 or \
                    _error_body(exc).get("code") != "idempotency_key_in_use":
                raise
            log.info("stripe: %s is in use by another request; waiting %.1f s",
                     key, IN_USE_WAIT_S)
        self._sleep(IN_USE_WAIT_S)
        try:
            return self._client.v1.payment_intents.create(
                params, options={"idempotency_key": key})
        except stripe.APIError as exc:
            if exc.http_status == 409:
                raise GatewayUnavailable(f"Stripe request {key} is still in progress",
                                         retry_after=IN_USE_WAIT_S) from exc
            raise

    def _find_intent(self, request: PaymentRequest, capture_method: str) -> Any:
        """The newest intent of this payment (``coachgate_key``) and step (the capture
        method tells authorize from charge), or None."""
        since = int(time.time()) - LOOKUP_WINDOW_S
        page = self._client.v1.payment_intents.list(
            {"customer": request.customer_ref, "created": {"gte": since}, "limit": 100})
        for intent in page.auto_paging_iter():  # newest first
            metadata = intent.metadata.to_dict() if intent.metadata else {}
            if metadata.get("coachgate_key") == request.key and \
                    intent.capture_method == capture_method:
                return intent
        return None

    # --- Webhooks -------------------------------------------------------------------------

    def parse_webhook(self, payload: bytes, headers: dict[str, str]) -> WebhookEvent:
        if not self._webhook_secret:
            raise InvalidSignature("No Stripe webhook secret is configured "
                                   "(COACHGATE_STRIPE_WEBHOOK_SECRET).")
        signature = _header(headers, "Stripe-Signature")
        try:
            # Default tolerance (300 s) refuses replays of old, validly signed events.
            event = self._client.construct_event(payload, signature, self._webhook_secret)
        except stripe.SignatureVerificationError as exc:
            raise InvalidSignature(exc.user_message or "bad Stripe signature") from exc
        except ValueError as exc:  # signed, yet not JSON: not from Stripe
            raise InvalidSignature("The webhook payload is not JSON.") from exc
        data = _iso_amounts(event.data.object.to_dict())
        return WebhookEvent(id=event.id, type=event.type, data=data)

    # --- Errors ---------------------------------------------------------------------------

    @contextmanager
    def _mapped(self, step: str) -> Iterator[None]:
        """Stripe's errors -> retry later (GatewayUnavailable) or someone must act
        (PaymentDeclined); the rest propagates."""
        try:
            yield
        except stripe.CardError as exc:
            body = _error_body(exc)
            code = _decline_code(exc.code, body.get("decline_code"))
            ref = str(_error_intent(exc).get("id") or "")
            log.info("stripe: %s declined: %s %s", step, code, ref)
            raise PaymentDeclined(code, exc.user_message or "The card was declined.",
                                  ref=ref) from exc
        except stripe.RateLimitError as exc:
            raise GatewayUnavailable(f"Stripe rate limit during {step}",
                                     retry_after=_retry_after(exc)) from exc
        except stripe.APIConnectionError as exc:
            raise GatewayUnavailable(f"Stripe unreachable during {step}") from exc
        except stripe.InvalidRequestError as exc:
            if exc.param == "payment_method" and exc.code in ("parameter_missing",
                                                              "resource_missing"):
                raise PaymentDeclined("no_payment_method", exc.user_message or
                                      "The saved card is missing.",
                                      ref=str(_error_intent(exc).get("id") or "")) from exc
            raise
        except stripe.APIError as exc:
            status = exc.http_status
            if status is None or status >= 500 or status == 409:
                raise GatewayUnavailable(f"Stripe answered {status} during {step}",
                                         retry_after=_retry_after(exc)) from exc
            raise


@functools.lru_cache(maxsize=8)
def _cached_gateway(secret_key: str, webhook_secret: str, api_base: str, timeout: float,
                    max_network_retries: int) -> StripeGateway:
    return StripeGateway(secret_key=secret_key, webhook_secret=webhook_secret,
                         api_base=api_base, timeout=timeout,
                         max_network_retries=max_network_retries)


def _to_stripe(amount_minor: int, currency: str) -> int:
    try:
        return money.to_gateway(amount_minor, currency.upper(), "stripe")
    except money.NotChargeable as exc:
        raise AmountNotChargeable(str(exc)) from exc


def _from_stripe(amount: int, currency: str) -> int:
    try:
        return money.from_gateway(amount, currency.upper(), "stripe")
    except money.NotChargeable as exc:  # Stripe never sends one; do not guess
        raise AmountNotChargeable(str(exc)) from exc


# Amount fields of the objects coachgate receives (PaymentIntent, Charge, Refund), each in
# the currency of the object that holds it.
_AMOUNT_FIELDS = frozenset({"amount", "amount_capturable", "amount_received", "amount_captured",
                            "amount_refunded", "application_fee_amount"})


def _iso_amounts(obj: Any, currency: str = "") -> Any:
    """A webhook's object with its amounts in ISO minor units, nested objects too (a
    charge's refunds, an expanded latest_charge). An amount Stripe could not have sent
    (a fraction of an ISO unit) becomes None, with a warning: never a guess."""
    if isinstance(obj, list):
        return [_iso_amounts(item, currency) for item in obj]
    if not isinstance(obj, dict):
        return obj
    own = obj.get("currency")
    currency = own.upper() if isinstance(own, str) and own else currency
    out: dict[str, Any] = {}
    for name, value in obj.items():
        if name in _AMOUNT_FIELDS and isinstance(value, int) and not isinstance(value, bool) \
                and money.is_currency(currency):
            try:
                out[name] = money.from_gateway(value, currency, "stripe")
            except money.NotChargeable:
                log.warning("stripe: %s %s of %s is not a whole %s minor unit",
                            name, value, obj.get("id", "?"), currency)
                out[name] = None
        else:
            out[name] = _iso_amounts(value, currency)
    return out


def _card_setup(intent: Any) -> CardSetup:
    pm = intent.payment_method
    pm_ref = pm if isinstance(pm, str) else (getattr(pm, "id", "") if pm else "")
    return CardSetup(ref=intent.id, status=intent.status,
                     client_secret=intent.client_secret or "",
                     payment_method_ref=pm_ref if intent.status == "succeeded" else "")


def _decline_code(code: str | None, decline_code: str | None) -> str:
    # "generic_decline" says less than the code ("card_declined"): keep the code then.
    if decline_code and decline_code != "generic_decline":
        return decline_code
    return code or "card_declined"


def _error_body(exc: stripe.StripeError) -> dict[str, Any]:
    body = exc.json_body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return dict(body["error"])
    return {}


def _error_intent(exc: stripe.StripeError) -> dict[str, Any]:
    intent = _error_body(exc).get("payment_intent")
    return intent if isinstance(intent, dict) else {}


def _retry_after(exc: stripe.StripeError) -> float | None:
    value = (exc.headers or {}).get("retry-after") or (exc.headers or {}).get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    meta = "http_" + wanted.replace("-", "_")
    for key, value in headers.items():
        if key.lower() in (wanted, meta):
            return value
    return None

"""A stateful local Stripe: the v1 routes and JSON coachgate uses, served over HTTP.

    fake = StripeFake().start()              # or: with StripeFake() as fake:
    client = stripe.StripeClient(fake.secret_key, base_addresses={"api": fake.base_url})
    seti = client.v1.setup_intents.create({"customer": cus_id, "usage": "off_session"})
    fake.complete_setup(seti.id, "pm_card_visa")   # what Stripe.js does in the browser
    ...
    fake.stop()

``base_url`` is the server root (``http://127.0.0.1:PORT``); the SDK appends ``/v1/...``.
Run alone with ``python -m coachgate.integrations.stripe.fake [--port 12111]`` (0 picks a
free port): it prints ``{"base_url", "secret_key", "publishable_key", "webhook_secret",
"webhook_url"}`` as one JSON line and serves until Ctrl-C (or SIGTERM).

What it does like Stripe (https://docs.stripe.com/api):

* Routes: ``POST /v1/customers``, ``GET|POST|DELETE /v1/customers/{id}``,
  ``GET /v1/payment_methods/{id}``, ``POST /v1/setup_intents``,
  ``GET /v1/setup_intents/{id}``, ``POST /v1/setup_intents/{id}/confirm|cancel``,
  ``POST /v1/payment_intents``, ``GET /v1/payment_intents`` (list: ``customer``,
  ``created``, ``limit``, ``starting_after``, ``ending_before``; newest first),
  ``GET /v1/payment_intents/{id}``,
  ``POST /v1/payment_intents/{id}/capture|cancel``, ``POST /v1/refunds``,
  ``GET /v1/refunds`` (list: ``payment_intent``, ``charge``), ``GET /v1/refunds/{id}``,
  ``GET /v1/charges/{id}``, ``GET /v1/events/{id}``; and two of
  ours for what happens outside the API, ``POST /_fake/setup_intents/{id}/complete`` and
  ``POST /_fake/payment_intents/{id}/expire`` (see ``complete_setup`` and
  ``expire_authorization``). Anything else answers 404 "Unrecognized request URL".
* Authentication: ``Authorization: Bearer sk_...`` (or HTTP Basic with the key as user)
  must be one of the fake's secret keys (``secret_key``, ``new_secret_key()``); otherwise
  401. Bodies are form-encoded with Stripe's nesting (``metadata[k]=v``, ``a[0]=x``);
  unknown parameters answer 400 ``parameter_unknown`` (``expand`` is accepted and ignored).
* Errors use Stripe's envelope ``{"error": {"type", "code", "decline_code", "message",
  "param", "payment_intent": {...}}}``: 402 ``card_error``, 400 ``invalid_request_error``
  (``parameter_missing``, ``parameter_unknown``, ``parameter_invalid_integer``,
  ``payment_intent_unexpected_state``, ``setup_intent_unexpected_state``,
  ``amount_too_small``, ``amount_too_large``, ``charge_already_refunded``), 404
  ``resource_missing``, 401 bad key, 400 ``idempotency_error``, 409
  ``idempotency_key_in_use``, 429 ``rate_limit``.
  Message texts follow Stripe's closely but are ours.
* Money: amounts are integers in the currency's smallest unit, as on Stripe; currencies are
  stored lower case; zero-decimal currencies (JPY, KRW, ...) take whole units; the
  three-decimal ones (BHD, JOD, KWD, OMR, TND) take the minor unit but the last digit must
  be 0 (Stripe's rule); ISK and UGX (Stripe's "special cases") are two-decimal in the API
  and must be divisible by 100 (400 ``invalid_charge_amount_no_decimal_compatible``).
  Divisibility is enforced on every amount that moves money (PaymentIntent ``amount``,
  ``amount_to_capture``, refund ``amount``); Stripe's minimum charge amounts (USD 50,
  GBP 30, JPY 50, ...) and its 8-digit maximum on PaymentIntent creation.
* PaymentIntents: create with ``confirm=true`` (and ``off_session``) charges the saved card
  at once: ``capture_method=manual`` -> ``requires_capture`` (``amount_capturable``),
  ``automatic``/``automatic_async`` -> ``succeeded`` (``amount_received``); a decline ->
  402 and the intent stays ``requires_payment_method`` with ``last_payment_error``.
  ``latest_charge`` names a Charge. Capture takes ``amount_to_capture`` <= the capturable
  amount (the rest of the hold is released; the fake does not show it as a refund);
  cancel works from ``requires_payment_method|requires_capture|requires_confirmation|
  requires_action|processing``. Refunds take ``payment_intent`` (or ``charge``) and an
  ``amount`` <= captured - already refunded.
* Test cards, as Stripe's ``pm_card_*`` tokens (each use makes a new ``pm_...``):
  ``pm_card_visa``, ``pm_card_mastercard`` (succeed); ``pm_card_chargeDeclined`` /
  ``pm_card_visa_chargeDeclined`` / ``pm_card_chargeCustomerFail`` (``card_declined``,
  ``generic_decline``); ``pm_card_insufficientFunds`` /
  ``pm_card_chargeDeclinedInsufficientFunds`` (``card_declined``, ``insufficient_funds``);
  ``pm_card_chargeDeclinedExpiredCard`` (``expired_card``);
  ``pm_card_chargeDeclinedIncorrectCvc`` (``incorrect_cvc``);
  ``pm_card_chargeDeclinedProcessingError`` (``processing_error``);
  ``pm_card_authenticationRequired`` (3DS on every payment: off-session payments fail with
  ``authentication_required``, on-session ones go to ``requires_action``);
  ``pm_card_authenticationRequiredOnSetup`` (3DS once at setup, then off-session payments
  succeed). The decline cards fail when *charged*; saving them succeeds. (On Stripe the
  generic-decline and insufficient-funds cards may already be refused when saved;
  ``pm_card_chargeCustomerFail`` is the one that saves and then declines there too.)
* SetupIntents (``usage=off_session`` by default): confirming server-side with a card that
  needs 3DS leaves ``requires_action``; ``complete_setup(seti_id, pm)`` does what Stripe.js
  does in the student's browser (including the 3DS step): the intent succeeds and the
  PaymentMethod is attached to the customer.
* Idempotency (https://docs.stripe.com/api/idempotent_requests): ``Idempotency-Key`` on a
  POST, scoped to the API key, kept 24 hours. The same key with the same endpoint and
  parameters replays the saved status and body with ``Idempotent-Replayed: true``; another
  endpoint or other parameters answer 400 (type ``idempotency_error``); a key whose first
  request is still executing (see ``slow_next``) answers 409 ``idempotency_key_in_use``
  (nothing saved for that one). Saved: results of requests that began executing (2xx, card
  errors, errors about an object's state or an amount limit, and 500s injected with
  ``fail_next(stage="during"|"after")``, replayed with ``Stripe-Should-Retry: false``).
  Not saved (retry them freely): 401, 429, parameter and lookup errors, faults injected
  ``stage="before"`` (a 500 from in front of the API, a connection error).
* Objects carry every field Stripe always sends (checked against the official SDK's
  schemas by tests/integrations/stripe/test_stripe_fidelity.py); fields for features the
  fake does not model are ``null`` or empty, as on an account that does not use them.
* Webhooks: every change below appends an event ``{"id": "evt_...", "object": "event",
  "type", "data": {"object": {...}}, "created", "livemode": false, "api_version",
  "request": {"id", "idempotency_key"}, "pending_webhooks"}`` to ``events``:
  ``setup_intent.succeeded``, ``payment_intent.amount_capturable_updated``,
  ``payment_intent.succeeded``, ``payment_intent.payment_failed``,
  ``payment_intent.canceled``, ``charge.refunded``. ``deliver(event, url=None)`` POSTs one,
  signed as Stripe does (``Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256 of
  "<t>.<body>" with the webhook secret>``). Automatic delivery is **off** by default (tests
  call ``deliver`` when they want to); with ``auto_deliver=True`` and ``webhook_url`` set,
  each request's events are POSTed just *before* its answer is sent — on Stripe too a
  webhook may arrive before the API response, and a test sees every delivery done once
  its call returns (no retries, unlike Stripe; outcomes in ``deliveries``).

What it adds for tests: fault injection (``fail_next``, ``rate_limit_next``,
``timeout_next``, ``slow_next``), every HTTP request in ``requests``
(``RecordedRequest``: method, path, idempotency key, parsed params, status), the state in
plain dicts of Stripe-shaped objects (``customers``, ``payment_methods``,
``setup_intents``, ``payment_intents``, ``charges``, ``refunds``), ``expire_authorization``
(Stripe cancels an uncaptured intent after 7 days) and ``reset()``. Setup helpers and
dicts are shared with the server threads: read them between requests.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import copy
import hashlib
import hmac
import json
import logging
import re
import secrets
import string
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, cast
from urllib.parse import parse_qsl, urlsplit

import httpx

from coachgate.integrations.localserver import LoopbackService, TrackedHandler, TrackingServer

log = logging.getLogger(__name__)

JSON = dict[str, Any]

DEFAULT_PORT = 12111  # stripe-mock's port, so tooling that knows it finds us
# Used for events when the request carried no Stripe-Version (the stripe SDK always sends
# one: its pinned version).
DEFAULT_API_VERSION = "2026-10-28.endive"
IDEMPOTENCY_TTL = 24 * 3600.0
AUTHORIZATION_DAYS = 7

# Stripe's currency rules (https://docs.stripe.com/currencies), typed here from Stripe's
# documentation on purpose and not imported from coachgate: the fake is the independent
# check of coachgate's conversions (kit.money), so it must not share their table.
ZERO_DECIMAL = frozenset({
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "vnd", "vuv",
    "xaf", "xof", "xpf"})
THREE_DECIMAL = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})
# "Special cases": zero-decimal in fact, two-decimal in the API for backwards
# compatibility, amounts evenly divisible by 100.
WHOLE_HUNDREDS = frozenset({"isk", "ugx"})
CURRENCIES = ZERO_DECIMAL | THREE_DECIMAL | WHOLE_HUNDREDS | frozenset({
    "aed", "ars", "aud", "bgn", "brl", "cad", "chf", "cny", "czk", "dkk", "egp", "eur",
    "gbp", "hkd", "huf", "idr", "ils", "inr", "mad", "mxn", "myr", "ngn", "nok", "nzd",
    "php", "pln", "ron", "rsd", "sar", "sek", "sgd", "thb", "try", "twd", "uah", "usd",
    "xcg", "zar"})
# Stripe's minimum charge amounts (https://docs.stripe.com/currencies#minimum-and-maximum-
# charge-amounts), in the smallest unit; currencies not listed: 1.
MINIMUM_AMOUNT = {
    "usd": 50, "eur": 50, "gbp": 30, "aud": 50, "cad": 50, "chf": 50, "nzd": 50,
    "sgd": 50, "brl": 50, "inr": 50, "jpy": 50, "hkd": 400, "dkk": 250, "nok": 300,
    "sek": 300, "pln": 200, "czk": 1500, "huf": 17500, "mxn": 1000, "ron": 200,
    "bgn": 100, "aed": 200, "myr": 200, "thb": 1000}
MAXIMUM_AMOUNT = 99_999_999

_PI_CANCELABLE = ("requires_payment_method", "requires_capture", "requires_confirmation",
                  "requires_action", "processing")
_SI_CONFIRMABLE = ("requires_payment_method", "requires_confirmation", "requires_action")
_BASE62 = string.ascii_letters + string.digits


# --- Test cards ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Card:
    brand: str
    last4: str
    # "ok" | "decline" | "auth_always" (3DS on every payment) | "auth_once" (3DS until the
    # card is set up for off-session use)
    outcome: str = "ok"
    code: str = ""
    decline_code: str = ""
    message: str = ""


_DECLINED = "Your card was declined."
_AUTH_MESSAGE = "Your card was declined. This transaction requires authentication."
_GENERIC = _Card("visa", "0002", "decline", "card_declined", "generic_decline", _DECLINED)
_FUNDS = _Card("visa", "9995", "decline", "card_declined", "insufficient_funds",
               "Your card has insufficient funds.")
_EXPIRED = _Card("visa", "0069", "decline", "expired_card", "expired_card",
                 "Your card has expired.")
TEST_CARDS: dict[str, _Card] = {
    "pm_card_visa": _Card("visa", "4242"),
    "pm_card_mastercard": _Card("mastercard", "4444"),
    "pm_card_chargeDeclined": _GENERIC,
    "pm_card_visa_chargeDeclined": _GENERIC,
    "pm_card_chargeCustomerFail": _Card("visa", "0341", "decline", "card_declined",
                                        "generic_decline", _DECLINED),
    "pm_card_insufficientFunds": _FUNDS,
    "pm_card_chargeDeclinedInsufficientFunds": _FUNDS,
    "pm_card_visa_chargeDeclinedInsufficientFunds": _FUNDS,
    "pm_card_chargeDeclinedExpiredCard": _EXPIRED,
    "pm_card_visa_chargeDeclinedExpiredCard": _EXPIRED,
    "pm_card_chargeDeclinedIncorrectCvc": _Card(
        "visa", "0127", "decline", "incorrect_cvc", "incorrect_cvc",
        "Your card's security code is incorrect."),
    "pm_card_chargeDeclinedProcessingError": _Card(
        "visa", "0119", "decline", "processing_error", "processing_error",
        "An error occurred while processing your card. Try again in a little bit."),
    "pm_card_authenticationRequired": _Card("visa", "3184", "auth_always"),
    "pm_card_authenticationRequiredOnSetup": _Card("visa", "3155", "auth_once"),
}


# --- Public records -----------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request. ``params``: the parsed form body (POST) or query (GET/DELETE);
    ``status``: what the fake answered (0: no answer, ``timeout_next(applied=False)``);
    ``replayed``: an idempotent replay of a saved answer; ``body``: the JSON answered
    (None: no answer)."""

    at: float
    method: str
    path: str
    idempotency_key: str | None
    params: JSON
    status: int
    replayed: bool = False
    body: JSON | None = None


@dataclass(frozen=True)
class Delivery:
    """One webhook POST: ``status`` is the receiver's HTTP status (None: no answer)."""

    at: float
    event_id: str
    event_type: str
    url: str
    status: int | None
    error: str = ""


# --- Internals ----------------------------------------------------------------------------


class _ApiError(Exception):
    """A Stripe error answer. ``saved``: the request began executing, so its answer is
    kept under its idempotency key (card errors, state errors, amount limits)."""

    def __init__(self, status: int, type_: str, message: str, *, code: str | None = None,
                 param: str | None = None, decline_code: str | None = None,
                 extra: JSON | None = None, saved: bool = False,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message
        self.code = code
        self.param = param
        self.decline_code = decline_code
        self.extra = extra or {}
        self.saved = saved
        self.headers = headers or {}

    def body(self) -> JSON:
        error: JSON = {"type": self.type, "message": self.message}
        if self.code:
            error["code"] = self.code
            error["doc_url"] = f"https://docs.stripe.com/error-codes/{self.code.replace('_', '-')}"
        if self.decline_code:
            error["decline_code"] = self.decline_code
        if self.param:
            error["param"] = self.param
        error.update(self.extra)
        return {"error": error}


def _invalid(message: str, *, param: str | None = None, code: str | None = None,
             saved: bool = False, extra: JSON | None = None) -> _ApiError:
    return _ApiError(400, "invalid_request_error", message, param=param, code=code,
                     saved=saved, extra=extra)


@dataclass
class _Saved:
    """An idempotent result; ``status`` None while its first request is executing."""

    method: str
    path: str
    params: JSON
    status: int | None
    body: JSON | None
    created: float
    request_id: str


@dataclass
class _Fault:
    kind: str  # "fail" | "fail_during" | "fail_after" | "rate_limit" | "timeout" | "slow"
    remaining: int
    status: int = 500
    seconds: float = 0.0
    applied: bool = True
    path: str | None = None  # "/v1/payment_intents" or "POST /v1/payment_intents" (prefix)
    should_retry: bool | None = None
    retry_after: float | None = None

    def matches(self, method: str, path: str) -> bool:
        if self.path is None:
            return True
        want_method, _, want_path = self.path.rpartition(" ")
        if want_method and want_method.upper() != method:
            return False
        return path.startswith(want_path)


@dataclass
class _Answer:
    status: int
    body: JSON | None = None
    headers: dict[str, str] = field(default_factory=dict)
    hold: float = 0.0
    drop: bool = False  # close the connection without answering
    replayed: bool = False
    finish: Callable[[], None] | None = None  # after the hold, before the answer
    events: list[JSON] = field(default_factory=list)  # to deliver after the answer


@dataclass
class _Context:
    request_id: str | None
    idempotency_key: str | None
    api_version: str
    events: list[JSON] = field(default_factory=list)


_KEY_PART = re.compile(r"\[([^\[\]]*)\]")
_KEY_HEAD = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")


def parse_form(body: str) -> JSON:
    """Stripe's form encoding: ``a[b]=1&c[0]=x&c[1]=y`` -> ``{"a": {"b": "1"}, "c":
    ["x", "y"]}``; ``c[]=x`` appends. Values stay strings. Raises ValueError."""
    root: JSON = {}
    for raw_key, value in parse_qsl(body, keep_blank_values=True, strict_parsing=False):
        match = _KEY_HEAD.match(raw_key)
        if match is None:
            raise ValueError(f"Invalid parameter name: {raw_key}")
        parts = [match.group(1), *_KEY_PART.findall(match.group(2))]
        node = root
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ValueError(f"Invalid hash: {raw_key}")
            node = child
        last = parts[-1] if parts[-1] != "" else str(len(node))
        if isinstance(node.get(last), dict):
            raise ValueError(f"Invalid hash: {raw_key}")
        node[last] = value
    return cast(JSON, _listify(root))


def _listify(value: Any) -> Any:
    if isinstance(value, dict):
        converted = {k: _listify(v) for k, v in value.items()}
        if converted and all(k.isdigit() for k in converted):
            return [converted[k] for k in sorted(converted, key=int)]
        return converted
    return value


def _new_id(prefix: str, length: int = 24) -> str:
    return f"{prefix}_" + "".join(secrets.choice(_BASE62) for _ in range(length))


def _mask(key: str) -> str:
    return key[:8] + "*" * max(0, len(key) - 12) + key[-4:] if len(key) > 12 else "****"


# --- The fake -----------------------------------------------------------------------------


class StripeFake(LoopbackService):
    """A stateful Stripe on 127.0.0.1 (see the module docstring)."""

    thread_name = "stripe-fake"

    def __init__(self, *, port: int = 0, secret_key: str | None = None,
                 publishable_key: str | None = None, webhook_secret: str | None = None,
                 webhook_url: str | None = None, auto_deliver: bool = False) -> None:
        self._port = port
        self.secret_key = secret_key or "sk_test_fake_" + "".join(
            secrets.choice(_BASE62) for _ in range(24))
        self.publishable_key = publishable_key or "pk_test_fake_" + "".join(
            secrets.choice(_BASE62) for _ in range(24))
        self.webhook_secret = webhook_secret or "whsec_" + secrets.token_hex(16)
        self._initial_webhook_url = webhook_url
        self._initial_auto_deliver = auto_deliver
        self._api_keys = {self.secret_key}
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._init_state()

    def _init_state(self) -> None:
        self.webhook_url: str | None = self._initial_webhook_url
        self.auto_deliver = self._initial_auto_deliver
        self.customers: dict[str, JSON] = {}
        self.payment_methods: dict[str, JSON] = {}
        self.setup_intents: dict[str, JSON] = {}
        self.payment_intents: dict[str, JSON] = {}
        self.charges: dict[str, JSON] = {}
        self.refunds: dict[str, JSON] = {}
        self.events: list[JSON] = []
        self.requests: list[RecordedRequest] = []
        self.deliveries: list[Delivery] = []
        self._cards: dict[str, _Card] = {}  # pm id -> behaviour
        self._set_up: set[str] = set()  # pm ids set up (authenticated) for off-session use
        self._saved: dict[tuple[str, str], _Saved] = {}
        self._faults: list[_Fault] = []
        self._context: _Context | None = None

    # --- Lifecycle ------------------------------------------------------------------------

    def _new_server(self) -> _Server:
        server = _Server(("127.0.0.1", self._port), _Handler)
        server.fake = self
        return server

    @property
    def base_url(self) -> str:
        """The API root, like ``https://api.stripe.com`` (the SDK appends /v1/...)."""
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        """Forget every object, event, request, saved idempotent result and pending fault;
        keep the server, the keys and extra keys from ``new_secret_key``."""
        with self._lock:
            self._init_state()

    def new_secret_key(self) -> str:
        """Another valid secret key (same account; idempotency keys are scoped per key)."""
        key = "sk_test_fake_" + "".join(secrets.choice(_BASE62) for _ in range(24))
        with self._lock:
            self._api_keys.add(key)
        return key

    # --- Faults ---------------------------------------------------------------------------

    def fail_next(self, n: int, status: int = 500, *, path: str | None = None,
                  should_retry: bool | None = None,
                  stage: Literal["before", "during", "after"] = "before") -> None:
        """The next ``n`` API requests (matching ``path``: a prefix such as
        ``/v1/payment_intents`` or ``"POST /v1/refunds"``) answer ``status`` with an
        ``api_error``. Where it fails is ``stage``:

        * ``"before"`` (default): before the request reaches Stripe's API (a load
          balancer's 503, a connection reset answered as 500): nothing changes, nothing is
          saved under the idempotency key, a retry with the same key executes afresh.
          ``should_retry`` sets ``Stripe-Should-Retry``; by default it is absent and the
          SDK retries 5xx on its own.
        * ``"during"``: the endpoint began executing and failed before changing anything.
        * ``"after"``: the endpoint executed (the intent is created, the refund made, their
          events sent) and then failed.

        For ``"during"`` and ``"after"`` Stripe saves the 500 under the idempotency key
        and replays it for 24 hours (https://docs.stripe.com/api/idempotent_requests:
        "this includes 500 errors"), answering ``Stripe-Should-Retry: false`` (so the SDK
        does not retry it); they apply to requests that would execute (not to replays)."""
        kind = {"before": "fail", "during": "fail_during", "after": "fail_after"}[stage]
        with self._lock:
            self._faults.append(_Fault(kind, n, status=status, path=path,
                                       should_retry=should_retry))

    def rate_limit_next(self, n: int, *, should_retry: bool = False,
                        retry_after: float | None = None, path: str | None = None) -> None:
        """The next ``n`` API requests answer 429 ``rate_limit`` (nothing changes).
        ``should_retry=True`` adds ``Stripe-Should-Retry: true`` (the SDK then retries the
        request itself); ``retry_after`` adds a ``Retry-After`` header."""
        with self._lock:
            self._faults.append(_Fault("rate_limit", n, status=429, path=path,
                                       should_retry=should_retry, retry_after=retry_after))

    def timeout_next(self, n: int, seconds: float, *, applied: bool = True,
                     path: str | None = None) -> None:
        """Hold the answers to the next ``n`` API requests for ``seconds`` (longer than the
        client's timeout). ``applied=True`` (default): the request executes and its result
        is saved under its idempotency key at once, only the answer is late — so a retry
        with the same key is replayed, as on Stripe. ``applied=False``: nothing executes;
        after the hold the connection is closed without an answer."""
        with self._lock:
            self._faults.append(_Fault("timeout", n, seconds=float(seconds),
                                       applied=applied, path=path))

    def slow_next(self, n: int, seconds: float, *, path: str | None = None) -> None:
        """The next ``n`` API requests take ``seconds`` to execute: the change is made at
        once, but the result is saved under the idempotency key (and answered) only after
        ``seconds``; meanwhile a request with the same key answers 409
        ``idempotency_key_in_use``, as Stripe answers concurrent requests with one key."""
        with self._lock:
            self._faults.append(_Fault("slow", n, seconds=float(seconds), path=path))

    def reset_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, kinds: tuple[str, ...], method: str, path: str) -> _Fault | None:
        for fault in self._faults:
            if fault.kind in kinds and fault.remaining > 0 and fault.matches(method, path):
                fault.remaining -= 1
                if fault.remaining == 0:
                    self._faults.remove(fault)
                return fault
        return None

    # --- Test helpers (what happens outside the API) --------------------------------------

    def complete_setup(self, setup_intent_id: str, payment_method: str | None = None) -> JSON:
        """Finish a SetupIntent as Stripe.js does in the browser (card entry and any 3DS
        step): it succeeds with ``payment_method`` (a ``pm_card_*`` token or an existing
        ``pm_...``; default: the one already on the intent, else ``pm_card_visa``), which
        is attached to the intent's customer. Returns the intent. Over HTTP:
        ``POST /_fake/setup_intents/{id}/complete`` (optional ``payment_method``)."""
        return self._outside_api(self._complete_setup, setup_intent_id, payment_method)

    def expire_authorization(self, payment_intent_id: str) -> JSON:
        """Stripe cancels an uncaptured PaymentIntent after 7 days: do it now
        (``cancellation_reason="expired"``). Over HTTP:
        ``POST /_fake/payment_intents/{id}/expire``."""
        return self._outside_api(self._expire_authorization, payment_intent_id)

    def _outside_api(self, action: Callable[..., JSON], *args: Any) -> JSON:
        with self._lock:
            self._context = _Context(None, None, DEFAULT_API_VERSION)
            try:
                result = action(*args)
            except _ApiError as exc:
                raise ValueError(exc.message) from None
            finally:
                events, self._context = self._context.events, None
        self._auto_deliver(events)
        return result

    def _complete_setup(self, si_id: str, payment_method: str | None) -> JSON:
        si = self._find(self.setup_intents, si_id, "setupintent")
        if si["status"] not in _SI_CONFIRMABLE:
            raise _invalid(f"SetupIntent {si_id} is {si['status']}",
                           code="setup_intent_unexpected_state")
        pm_id = self._resolve_payment_method(
            payment_method or si["payment_method"] or "pm_card_visa", customer=si["customer"])
        self._succeed_setup(si, pm_id)
        return copy.deepcopy(si)

    def _expire_authorization(self, pi_id: str) -> JSON:
        pi = self._find(self.payment_intents, pi_id, "payment_intent")
        if pi["status"] != "requires_capture":
            raise _invalid(f"PaymentIntent {pi_id} is {pi['status']}",
                           code="payment_intent_unexpected_state")
        self._cancel_payment_intent(pi, "expired")
        return copy.deepcopy(pi)

    def _api_fake_complete_setup(self, params: JSON, si_id: str) -> JSON:
        self._allow(params, {"payment_method"})
        return self._complete_setup(si_id, self._str(params, "payment_method"))

    def _api_fake_expire(self, params: JSON, pi_id: str) -> JSON:
        self._allow(params, set())
        return self._expire_authorization(pi_id)

    # --- Webhooks -------------------------------------------------------------------------

    def sign(self, payload: bytes | str, secret: str | None = None,
             timestamp: int | None = None) -> str:
        """A ``Stripe-Signature`` header for ``payload``, as Stripe computes it."""
        body = payload.decode() if isinstance(payload, bytes) else payload
        stamp = int(time.time()) if timestamp is None else int(timestamp)
        digest = hmac.new((secret or self.webhook_secret).encode(),
                          f"{stamp}.{body}".encode(), hashlib.sha256).hexdigest()
        return f"t={stamp},v1={digest}"

    @staticmethod
    def event_payload(event: JSON) -> bytes:
        """The body Stripe would POST for ``event`` (pretty-printed JSON, as Stripe's)."""
        return json.dumps(event, indent=2).encode()

    def deliver(self, event: JSON, url: str | None = None, *, secret: str | None = None,
                timestamp: int | None = None, timeout: float = 10.0) -> int:
        """POST ``event`` to ``url`` (default ``webhook_url``), signed with the webhook
        secret (or ``secret``, e.g. a wrong one; ``timestamp``, e.g. an old one). Returns
        the receiver's HTTP status; raises ``httpx.TransportError`` when it does not
        answer. Recorded in ``deliveries``."""
        target = url or self.webhook_url
        if not target:
            raise ValueError("no webhook url: pass url= or set fake.webhook_url")
        payload = self.event_payload(event)
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            "Stripe-Signature": self.sign(payload, secret, timestamp),
        }
        try:
            response = httpx.post(target, content=payload, headers=headers, timeout=timeout)
        except httpx.TransportError as exc:
            self._record_delivery(event, target, None, str(exc) or type(exc).__name__)
            raise
        self._record_delivery(event, target, response.status_code, "")
        return response.status_code

    def _record_delivery(self, event: JSON, url: str, status: int | None, error: str) -> None:
        with self._lock:
            self.deliveries.append(Delivery(time.time(), event["id"], event["type"], url,
                                            status, error))

    def _auto_deliver(self, events: list[JSON]) -> None:
        if not (self.auto_deliver and self.webhook_url):
            return
        for event in events:
            try:
                self.deliver(event)
            except httpx.TransportError as exc:  # in deliveries; Stripe would retry later
                log.info("stripe fake: webhook %s not delivered: %s", event["id"], exc)

    def _emit(self, type_: str, obj: JSON) -> None:
        ctx = self._context
        event: JSON = {
            "id": _new_id("evt"),
            "object": "event",
            "api_version": ctx.api_version if ctx else DEFAULT_API_VERSION,
            "created": int(time.time()),
            "data": {"object": copy.deepcopy(obj)},
            "livemode": False,
            "pending_webhooks": 1 if self.webhook_url else 0,
            "request": {"id": ctx.request_id if ctx else None,
                        "idempotency_key": ctx.idempotency_key if ctx else None},
            "type": type_,
        }
        self.events.append(event)
        if ctx is not None:
            ctx.events.append(event)

    # --- HTTP entry -----------------------------------------------------------------------

    def _handle(self, method: str, target: str, headers: dict[str, str],
                raw: bytes) -> _Answer:
        arrived = time.time()
        parts = urlsplit(target)
        path = parts.path.rstrip("/") or "/"
        key = headers.get("idempotency-key") or None
        with self._lock:
            params: JSON = {}
            parse_error: str | None = None
            try:
                text = raw.decode() if method == "POST" else parts.query
                params = parse_form(text)
            except (ValueError, UnicodeDecodeError) as exc:
                parse_error = str(exc)
            try:
                answer = self._dispatch(method, path, headers, params, parse_error, key,
                                        arrived)
            except Exception:  # a bug in the fake: answer like Stripe's 500, keep serving
                log.exception("stripe fake: %s %s failed", method, path)
                answer = _Answer(500, {"error": {"type": "api_error",
                                                 "message": "The fake failed (a bug)."}})
            self.requests.append(RecordedRequest(
                arrived, method, path, key if method == "POST" else None, params,
                0 if answer.drop else answer.status, answer.replayed,
                None if answer.drop else answer.body))
            return answer

    def _dispatch(self, method: str, path: str, headers: dict[str, str], params: JSON,
                  parse_error: str | None, key: str | None, now: float) -> _Answer:
        request_id = _new_id("req", 14)
        base_headers = {"Request-Id": request_id,
                        "Stripe-Version": headers.get("stripe-version", DEFAULT_API_VERSION)}
        if key and method == "POST":
            base_headers["Idempotency-Key"] = key

        def error(exc: _ApiError) -> _Answer:
            return _Answer(exc.status, exc.body(), {**base_headers, **exc.headers})

        fault = self._take_fault(("fail",), method, path)
        if fault is not None:
            extra = {} if fault.should_retry is None else {
                "Stripe-Should-Retry": "true" if fault.should_retry else "false"}
            return error(_ApiError(
                fault.status, "api_error",
                "An unknown error occurred. (injected by the fake)", headers=extra))
        fault = self._take_fault(("rate_limit",), method, path)
        if fault is not None:
            extra = {"Stripe-Should-Retry": "true" if fault.should_retry else "false"}
            if fault.retry_after is not None:
                extra["Retry-After"] = f"{fault.retry_after:g}"
            return error(_ApiError(
                429, "invalid_request_error",
                "Request rate limit exceeded. Learn more about rate limits here "
                "https://docs.stripe.com/rate-limits.", code="rate_limit", headers=extra))
        try:
            api_key = self._authenticate(headers)
        except _ApiError as exc:
            return error(exc)
        route = self._route(method, path)
        if route is None:
            return error(_ApiError(
                404, "invalid_request_error",
                f"Unrecognized request URL ({method}: {path}). Please see "
                "https://docs.stripe.com or we can help at https://support.stripe.com/."))
        if parse_error is not None:
            return error(_invalid(parse_error))
        handler, args = route
        delay = self._take_fault(("timeout", "slow"), method, path)
        if delay is not None and delay.kind == "timeout" and not delay.applied:
            return _Answer(0, drop=True, hold=delay.seconds)

        saved: _Saved | None = None
        if key and method == "POST":
            scope = (api_key, key)
            existing = self._saved.get(scope)
            if existing is not None and existing.created < now - IDEMPOTENCY_TTL:
                del self._saved[scope]
                existing = None
            if existing is not None:
                return self._replay(existing, method, path, params, key, base_headers)
            saved = _Saved(method, path, params, None, None, now, request_id)
            self._saved[scope] = saved

        late = self._take_fault(("fail_during", "fail_after"), method, path)
        self._context = _Context(request_id, key if method == "POST" else None,
                                 headers.get("stripe-version", DEFAULT_API_VERSION))
        try:
            if late is not None and late.kind == "fail_during":
                raise self._late_failure(late)
            status, body, keep = 200, handler(params, *args), True
        except _ApiError as exc:
            status, body, keep = exc.status, exc.body(), exc.saved
            base_headers.update(exc.headers)
        except Exception:  # a bug in the fake: answer like Stripe's 500, save nothing
            log.exception("stripe fake: %s %s failed", method, path)
            status, body, keep = 500, {"error": {"type": "api_error",
                                                 "message": "The fake failed (a bug)."}}, False
        finally:
            events, self._context = self._context.events, None
        if late is not None and late.kind == "fail_after":
            if keep:  # it executed (a result, a decline...): the answer is lost to a 500
                failure = self._late_failure(late)
                status, body = failure.status, failure.body()
                base_headers.update(failure.headers)
            else:  # refused before executing (a bad parameter): the fault did not bite
                if late not in self._faults:
                    self._faults.insert(0, late)
                late.remaining += 1

        answer = _Answer(status, body, base_headers,
                         events=events if self.auto_deliver and self.webhook_url else [])
        if saved is not None:
            if not keep:
                self._saved.pop((api_key, cast(str, key)), None)
            elif delay is not None and delay.kind == "slow":
                entry = saved

                def finish() -> None:
                    with self._lock:
                        entry.status, entry.body = status, body

                answer.finish = finish
            else:
                saved.status, saved.body = status, body
        if delay is not None:
            answer.hold = delay.seconds
        return answer

    @staticmethod
    def _late_failure(fault: _Fault) -> _ApiError:
        return _ApiError(fault.status, "api_error",
                         "An unknown error occurred. (injected by the fake, after the "
                         "request began executing)", saved=True,
                         headers={"Stripe-Should-Retry": "false"})

    def _replay(self, saved: _Saved, method: str, path: str, params: JSON, key: str,
                headers: dict[str, str]) -> _Answer:
        if saved.status is None:
            # Nothing is saved for this request: it never began executing.
            exc = _invalid(
                "There is currently another in-progress request using this Idempotent "
                "Key (that probably means you submitted twice, and the other request is "
                "still going through): " + key + ". Please try again later.",
                code="idempotency_key_in_use")
            return _Answer(409, exc.body(), headers)
        if (saved.method, saved.path) != (method, path):
            exc = _invalid(
                "Keys for idempotent requests can only be used for the same endpoint they "
                f"were first used for ('{saved.method} {saved.path}' vs '{method} {path}'). "
                f"Try using a key other than '{key}' if you meant to execute a different "
                "request.")
            exc.type = "idempotency_error"
            return _Answer(400, exc.body(), headers)
        if saved.params != params:
            exc = _invalid(
                "Keys for idempotent requests can only be used with the same parameters "
                f"they were first used with. Try using a key other than '{key}' if you "
                "meant to execute a different request.")
            exc.type = "idempotency_error"
            return _Answer(400, exc.body(), headers)
        extra = {"Stripe-Should-Retry": "false"} if saved.status >= 500 else {}
        return _Answer(saved.status, copy.deepcopy(saved.body),
                       {**headers, **extra, "Idempotent-Replayed": "true",
                        "Original-Request": saved.request_id}, replayed=True)

    def _authenticate(self, headers: dict[str, str]) -> str:
        auth = headers.get("authorization", "")
        scheme, _, credential = auth.partition(" ")
        key = ""
        if scheme.lower() == "bearer":
            key = credential.strip()
        elif scheme.lower() == "basic":
            with contextlib.suppress(ValueError, UnicodeDecodeError):
                key = base64.b64decode(credential.strip()).decode().partition(":")[0]
        if not key:
            raise _ApiError(
                401, "invalid_request_error",
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
                "YOUR_SECRET_KEY').")
        if key not in self._api_keys:
            if key.startswith("pk_"):
                message = ("This API call cannot be made with a publishable API key. "
                           "Please use a secret API key.")
            else:
                message = f"Invalid API Key provided: {_mask(key)}"
            raise _ApiError(401, "invalid_request_error", message)
        return key

    def _route(self, method: str, path: str) -> tuple[Callable[..., JSON], tuple[str, ...]] | None:
        for want, pattern, handler in self._routes():
            if want != method:
                continue
            match = pattern.fullmatch(path)
            if match is not None:
                return handler, match.groups()
        return None

    def _routes(self) -> list[tuple[str, re.Pattern[str], Callable[..., JSON]]]:
        obj = r"([A-Za-z0-9_]+)"
        return [
            ("POST", re.compile(r"/v1/customers"), self._api_create_customer),
            ("GET", re.compile(rf"/v1/customers/{obj}"), self._api_retrieve_customer),
            ("POST", re.compile(rf"/v1/customers/{obj}"), self._api_update_customer),
            ("DELETE", re.compile(rf"/v1/customers/{obj}"), self._api_delete_customer),
            ("GET", re.compile(rf"/v1/payment_methods/{obj}"),
             self._api_retrieve_payment_method),
            ("POST", re.compile(r"/v1/setup_intents"), self._api_create_setup_intent),
            ("GET", re.compile(rf"/v1/setup_intents/{obj}"), self._api_retrieve_setup_intent),
            ("POST", re.compile(rf"/v1/setup_intents/{obj}/confirm"),
             self._api_confirm_setup_intent),
            ("POST", re.compile(rf"/v1/setup_intents/{obj}/cancel"),
             self._api_cancel_setup_intent),
            ("POST", re.compile(r"/v1/payment_intents"), self._api_create_payment_intent),
            ("GET", re.compile(r"/v1/payment_intents"), self._api_list_payment_intents),
            ("GET", re.compile(rf"/v1/payment_intents/{obj}"),
             self._api_retrieve_payment_intent),
            ("POST", re.compile(rf"/v1/payment_intents/{obj}/capture"),
             self._api_capture_payment_intent),
            ("POST", re.compile(rf"/v1/payment_intents/{obj}/cancel"),
             self._api_cancel_payment_intent),
            ("POST", re.compile(r"/v1/refunds"), self._api_create_refund),
            ("GET", re.compile(r"/v1/refunds"), self._api_list_refunds),
            ("GET", re.compile(rf"/v1/refunds/{obj}"), self._api_retrieve_refund),
            ("GET", re.compile(rf"/v1/charges/{obj}"), self._api_retrieve_charge),
            ("GET", re.compile(rf"/v1/events/{obj}"), self._api_retrieve_event),
            # Ours, not Stripe's: what happens outside the API (the browser, the clock).
            ("POST", re.compile(rf"/_fake/setup_intents/{obj}/complete"),
             self._api_fake_complete_setup),
            ("POST", re.compile(rf"/_fake/payment_intents/{obj}/expire"),
             self._api_fake_expire),
        ]

    # --- Parameters -----------------------------------------------------------------------

    @staticmethod
    def _allow(params: JSON, allowed: set[str]) -> None:
        for name in params:
            if name not in allowed and name != "expand":
                raise _invalid(f"Received unknown parameter: {name}", param=name,
                               code="parameter_unknown")

    @staticmethod
    def _str(params: JSON, name: str, *, required: bool = False,
             choices: tuple[str, ...] | None = None) -> str | None:
        value = params.get(name)
        if value is None or value == "":
            if required:
                raise _invalid(f"Missing required param: {name}.", param=name,
                               code="parameter_missing")
            return None
        if not isinstance(value, str):
            raise _invalid(f"Invalid string: {value!r}", param=name)
        if choices is not None and value not in choices:
            raise _invalid(f"Invalid {name}: must be one of {', '.join(choices)}",
                           param=name)
        return value

    @classmethod
    def _int(cls, params: JSON, name: str, *, required: bool = False) -> int | None:
        value = cls._str(params, name, required=required)
        if value is None:
            return None
        if not re.fullmatch(r"-?\d+", value):
            raise _invalid(f"Invalid integer: {value}", param=name,
                           code="parameter_invalid_integer")
        return int(value)

    @classmethod
    def _positive(cls, params: JSON, name: str, *, required: bool = False) -> int | None:
        value = cls._int(params, name, required=required)
        if value is not None and value < 1:
            raise _invalid(f"Invalid positive integer: {value}", param=name,
                           code="parameter_invalid_integer")
        return value

    @classmethod
    def _bool(cls, params: JSON, name: str) -> bool | None:
        value = cls._str(params, name)
        if value is None:
            return None
        if value not in ("true", "false"):
            raise _invalid(f"Invalid boolean: {value}", param=name)
        return value == "true"

    @staticmethod
    def _metadata(params: JSON, current: dict[str, str] | None = None) -> dict[str, str]:
        result = dict(current or {})
        value = params.get("metadata")
        if value is None:
            return result
        if value == "":
            return {}
        if not isinstance(value, dict):
            raise _invalid("Invalid hash", param="metadata")
        for k, v in value.items():
            if not isinstance(v, str):
                raise _invalid(f"Invalid string: {v!r}", param=f"metadata[{k}]")
            if len(k) > 40:
                raise _invalid("Metadata keys can have up to 40 characters.",
                               param=f"metadata[{k}]")
            if len(v) > 500:
                raise _invalid("Metadata values can have up to 500 characters.",
                               param=f"metadata[{k}]")
            if v == "":
                result.pop(k, None)
            else:
                result[k] = v
        if len(result) > 50:
            raise _invalid("Metadata can have up to 50 keys.", param="metadata")
        return result

    @classmethod
    def _currency(cls, params: JSON) -> str:
        currency = cast(str, cls._str(params, "currency", required=True)).lower()
        if currency not in CURRENCIES:
            raise _invalid(f"Invalid currency: {currency}.", param="currency")
        return currency

    @staticmethod
    def _payment_method_types(params: JSON) -> list[str]:
        name = "allowed_payment_method_types" if "allowed_payment_method_types" in params \
            else "payment_method_types"
        value = params.get(name)
        if value is None:
            return ["card"]
        if not isinstance(value, list) or not value:
            raise _invalid("Invalid array", param=name)
        for item in value:
            if item != "card":
                raise _invalid(f"The payment method type {item!r} is not supported by the "
                               "fake (cards only).", param=name)
        return ["card"]

    def _customer_param(self, params: JSON) -> str | None:
        customer = self._str(params, "customer")
        if customer is None:
            return None
        found = self.customers.get(customer)
        if found is None or found.get("deleted"):
            raise _ApiError(400, "invalid_request_error",
                            f"No such customer: '{customer}'", param="customer",
                            code="resource_missing")
        return customer

    @classmethod
    def _check_amount(cls, amount: int, currency: str) -> None:
        minimum = MINIMUM_AMOUNT.get(currency, 1)
        if amount < minimum:
            raise _invalid(f"Amount must be at least {minimum} {currency} (in the currency's "
                           "smallest unit).", param="amount", code="amount_too_small")
        if amount > MAXIMUM_AMOUNT:
            raise _invalid(f"Amount must be no more than {MAXIMUM_AMOUNT}.", param="amount",
                           code="amount_too_large")
        cls._check_divisible(amount, currency, "amount")

    @staticmethod
    def _check_divisible(amount: int, currency: str, param: str) -> None:
        """Stripe's per-currency divisibility, on every amount that moves money (a payment,
        a capture, a refund)."""
        if currency in WHOLE_HUNDREDS and amount % 100:
            raise _invalid(
                f"Invalid amount. Currency {currency.upper()} has become effectively "
                "zero-decimal and charged amounts must be evenly divisible by 100. See "
                "https://stripe.com/docs/currencies#special-cases for more information.",
                param=param, code="invalid_charge_amount_no_decimal_compatible")
        if currency in THREE_DECIMAL and amount % 10:
            raise _invalid(
                f"Invalid amount. Amounts in {currency.upper()} must have 0 as their last "
                "digit: round three-decimal amounts to the nearest ten. See "
                "https://stripe.com/docs/currencies#three-decimal for more information.",
                param=param)

    # --- Lookups --------------------------------------------------------------------------

    @staticmethod
    def _find(table: dict[str, JSON], obj_id: str, label: str) -> JSON:
        found = table.get(obj_id)
        if found is None:
            raise _ApiError(404, "invalid_request_error", f"No such {label}: '{obj_id}'",
                            param="id", code="resource_missing")
        return found

    def _resolve_payment_method(self, value: str, *, customer: str | None) -> str:
        """A ``pm_card_*`` token makes a new PaymentMethod; a ``pm_...`` must exist and,
        when attached, belong to ``customer``. Returns the PaymentMethod id."""
        card = TEST_CARDS.get(value)
        if card is not None:
            return self._new_payment_method(card)
        pm = self.payment_methods.get(value)
        if pm is None:
            raise _ApiError(400, "invalid_request_error", f"No such PaymentMethod: '{value}'",
                            param="payment_method", code="resource_missing")
        if pm["customer"] is not None and pm["customer"] != customer:
            raise _invalid(
                f"The PaymentMethod {value} is attached to Customer {pm['customer']}; pass "
                "that customer (customer=...) to use it.", param="payment_method")
        return value

    def _new_payment_method(self, card: _Card) -> str:
        pm_id = _new_id("pm")
        now = int(time.time())
        self.payment_methods[pm_id] = {
            "id": pm_id, "object": "payment_method", "allow_redisplay": "unspecified",
            "billing_details": {"address": None, "email": None, "name": None, "phone": None},
            "card": {
                "brand": card.brand, "country": "US", "exp_month": 12,
                "exp_year": time.gmtime(now).tm_year + 3, "funding": "credit",
                "last4": card.last4,
                "fingerprint": hashlib.sha256(card.last4.encode()).hexdigest()[:16],
                "checks": {"address_line1_check": None, "address_postal_code_check": None,
                           "cvc_check": "pass"},
                "networks": {"available": [card.brand], "preferred": None},
                "three_d_secure_usage": {"supported": True},
            },
            "created": now, "customer": None, "customer_account": None, "livemode": False,
            "metadata": {}, "type": "card",
        }
        self._cards[pm_id] = card
        return pm_id

    # --- Customers ------------------------------------------------------------------------

    def _api_create_customer(self, params: JSON) -> JSON:
        self._allow(params, {"email", "name", "description", "phone", "metadata"})
        customer_id = _new_id("cus", 14)
        customer: JSON = {
            "id": customer_id, "object": "customer", "address": None, "balance": 0,
            "created": int(time.time()), "currency": None, "default_source": None,
            "delinquent": False, "description": self._str(params, "description"),
            "discount": None, "email": self._str(params, "email"),
            "invoice_prefix": customer_id[4:12].upper(),
            "invoice_settings": {"custom_fields": None, "default_payment_method": None,
                                 "footer": None, "rendering_options": None},
            "livemode": False, "metadata": self._metadata(params),
            "name": self._str(params, "name"), "next_invoice_sequence": 1,
            "phone": self._str(params, "phone"),
            "preferred_locales": [], "shipping": None, "tax_exempt": "none",
            "test_clock": None,
        }
        self.customers[customer_id] = customer
        return copy.deepcopy(customer)

    def _api_retrieve_customer(self, params: JSON, customer_id: str) -> JSON:
        self._allow(params, set())
        return copy.deepcopy(self._find(self.customers, customer_id, "customer"))

    def _api_update_customer(self, params: JSON, customer_id: str) -> JSON:
        self._allow(params, {"email", "name", "description", "phone", "metadata",
                             "invoice_settings"})
        customer = self._find(self.customers, customer_id, "customer")
        if customer.get("deleted"):
            raise _invalid(f"No such customer: '{customer_id}'", code="resource_missing")
        for name in ("email", "name", "description", "phone"):
            if name in params:
                customer[name] = self._str(params, name)
        customer["metadata"] = self._metadata(params, customer["metadata"])
        settings = params.get("invoice_settings")
        if isinstance(settings, dict) and "default_payment_method" in settings:
            pm = settings["default_payment_method"] or None
            if pm is not None and self.payment_methods.get(pm, {}).get("customer") != (
                    customer_id):
                raise _invalid(f"No such PaymentMethod: '{pm}'",
                               param="invoice_settings[default_payment_method]",
                               code="resource_missing")
            customer["invoice_settings"]["default_payment_method"] = pm
        return copy.deepcopy(customer)

    def _api_delete_customer(self, params: JSON, customer_id: str) -> JSON:
        self._allow(params, set())
        customer = self._find(self.customers, customer_id, "customer")
        if customer.get("deleted"):
            raise _ApiError(404, "invalid_request_error", f"No such customer: '{customer_id}'",
                            param="id", code="resource_missing")
        self.customers[customer_id] = {"id": customer_id, "object": "customer",
                                       "deleted": True}
        for pm in self.payment_methods.values():
            if pm["customer"] == customer_id:
                pm["customer"] = None
        return copy.deepcopy(self.customers[customer_id])

    def _api_retrieve_payment_method(self, params: JSON, pm_id: str) -> JSON:
        self._allow(params, set())
        return copy.deepcopy(self._find(self.payment_methods, pm_id, "PaymentMethod"))

    # --- SetupIntents ---------------------------------------------------------------------

    _SI_CREATE = {"customer", "usage", "payment_method_types", "allowed_payment_method_types",
                  "payment_method", "confirm", "metadata", "description", "return_url",
                  "automatic_payment_methods", "use_stripe_sdk", "payment_method_options",
                  "mandate_data"}
    _SI_CONFIRM = {"payment_method", "return_url", "use_stripe_sdk", "payment_method_options",
                   "mandate_data"}

    def _api_create_setup_intent(self, params: JSON) -> JSON:
        self._allow(params, self._SI_CREATE)
        customer = self._customer_param(params)
        usage = self._str(params, "usage", choices=("off_session", "on_session"))
        types = self._payment_method_types(params)
        confirm = self._bool(params, "confirm") or False
        pm_value = self._str(params, "payment_method")
        pm_id = self._resolve_payment_method(pm_value, customer=customer) if pm_value else None
        if confirm and pm_id is None:
            raise _invalid("You cannot confirm this SetupIntent because it's missing a "
                           "payment method.", param="payment_method", code="parameter_missing")
        si_id = _new_id("seti")
        si: JSON = {
            "id": si_id, "object": "setup_intent", "application": None,
            "automatic_payment_methods": None, "cancellation_reason": None,
            "client_secret": f"{si_id}_secret_{_new_id('x', 25)[2:]}",
            "created": int(time.time()), "customer": customer,
            "description": self._str(params, "description"),
            "excluded_payment_method_types": None, "flow_directions": None,
            "last_setup_error": None, "latest_attempt": None, "livemode": False,
            "mandate": None, "metadata": self._metadata(params), "next_action": None,
            "on_behalf_of": None, "payment_method": pm_id,
            "payment_method_configuration_details": None,
            "payment_method_options": {"card": {"mandate_options": None, "network": None,
                                                "request_three_d_secure": "automatic"}},
            "payment_method_types": types, "single_use_mandate": None,
            "status": "requires_confirmation" if pm_id else "requires_payment_method",
            "usage": usage or "off_session",
        }
        self.setup_intents[si_id] = si
        if confirm:
            self._confirm_setup(si, cast(str, pm_id))
        return copy.deepcopy(si)

    def _api_retrieve_setup_intent(self, params: JSON, si_id: str) -> JSON:
        self._allow(params, {"client_secret"})
        return copy.deepcopy(self._find(self.setup_intents, si_id, "setupintent"))

    def _api_confirm_setup_intent(self, params: JSON, si_id: str) -> JSON:
        self._allow(params, self._SI_CONFIRM)
        si = self._find(self.setup_intents, si_id, "setupintent")
        pm_value = self._str(params, "payment_method")
        pm_id = self._resolve_payment_method(pm_value, customer=si["customer"]) if pm_value \
            else si["payment_method"]
        if si["status"] not in _SI_CONFIRMABLE:
            state = "already succeeded" if si["status"] == "succeeded" else \
                f"a status of {si['status']}"
            raise _invalid(f"You cannot confirm this SetupIntent because it has {state}.",
                           code="setup_intent_unexpected_state", saved=True,
                           extra={"setup_intent": copy.deepcopy(si)})
        if pm_id is None:
            raise _invalid("You cannot confirm this SetupIntent because it's missing a "
                           "payment method.", param="payment_method", code="parameter_missing")
        self._confirm_setup(si, pm_id)
        return copy.deepcopy(si)

    def _api_cancel_setup_intent(self, params: JSON, si_id: str) -> JSON:
        self._allow(params, {"cancellation_reason"})
        si = self._find(self.setup_intents, si_id, "setupintent")
        reason = self._str(params, "cancellation_reason",
                           choices=("abandoned", "requested_by_customer", "duplicate"))
        if si["status"] not in _SI_CONFIRMABLE:
            raise _invalid(f"You cannot cancel this SetupIntent because it has a status of "
                           f"{si['status']}.", code="setup_intent_unexpected_state",
                           saved=True, extra={"setup_intent": copy.deepcopy(si)})
        si.update(status="canceled", cancellation_reason=reason, next_action=None)
        return copy.deepcopy(si)

    def _confirm_setup(self, si: JSON, pm_id: str) -> None:
        card = self._cards[pm_id]
        if card.outcome in ("auth_always", "auth_once"):
            # 3DS: only the student's browser can finish it (complete_setup).
            si.update(status="requires_action", payment_method=pm_id, next_action={
                "type": "use_stripe_sdk",
                "use_stripe_sdk": {"type": "three_d_secure_redirect",
                                   "stripe_js": f"{self.base_url}/3ds/{si['id']}"}})
            return
        self._succeed_setup(si, pm_id)

    def _succeed_setup(self, si: JSON, pm_id: str) -> None:
        if si["customer"] is not None:
            self.payment_methods[pm_id]["customer"] = si["customer"]
        if si["usage"] == "off_session":
            self._set_up.add(pm_id)
        si.update(status="succeeded", payment_method=pm_id, next_action=None,
                  last_setup_error=None)
        self._emit("setup_intent.succeeded", si)

    # --- PaymentIntents -------------------------------------------------------------------

    _PI_CREATE = {"amount", "currency", "customer", "payment_method", "payment_method_types",
                  "allowed_payment_method_types", "off_session", "confirm", "capture_method",
                  "metadata", "description", "statement_descriptor",
                  "statement_descriptor_suffix", "receipt_email", "setup_future_usage",
                  "automatic_payment_methods", "error_on_requires_action",
                  "confirmation_method", "return_url", "transfer_group", "use_stripe_sdk",
                  "payment_method_options"}

    def _api_create_payment_intent(self, params: JSON) -> JSON:
        self._allow(params, self._PI_CREATE)
        amount = cast(int, self._int(params, "amount", required=True))
        currency = self._currency(params)
        self._check_amount(amount, currency)
        customer = self._customer_param(params)
        capture_method = self._str(params, "capture_method",
                                   choices=("automatic", "automatic_async", "manual"))
        confirm = self._bool(params, "confirm") or False
        off_session_raw = self._str(params, "off_session",
                                    choices=("true", "false", "one_off", "recurring"))
        if off_session_raw is not None and not confirm:
            raise _invalid("You may only specify `off_session` when `confirm=true`.",
                           param="off_session")
        off_session = off_session_raw in ("true", "one_off", "recurring")
        types = self._payment_method_types(params)
        metadata = self._metadata(params)
        pm_value = self._str(params, "payment_method")
        pm_id = self._resolve_payment_method(pm_value, customer=customer) if pm_value else None
        if confirm and pm_id is None:
            raise _invalid(
                "You cannot confirm this PaymentIntent because it's missing a payment "
                "method. To confirm the PaymentIntent with "
                f"{customer or 'a customer'}, specify a payment method attached to this "
                "customer along with the customer ID.", param="payment_method",
                code="parameter_missing")
        pi_id = _new_id("pi")
        pi: JSON = {
            "id": pi_id, "object": "payment_intent", "amount": amount,
            "amount_capturable": 0, "amount_details": {"tip": {}}, "amount_received": 0,
            "application": None,
            "application_fee_amount": None, "automatic_payment_methods": None,
            "canceled_at": None, "cancellation_reason": None,
            "capture_method": capture_method or "automatic_async",
            "client_secret": f"{pi_id}_secret_{_new_id('x', 25)[2:]}",
            "confirmation_method": "automatic", "created": int(time.time()),
            "currency": currency, "customer": customer, "customer_account": None,
            "description": self._str(params, "description"),
            "excluded_payment_method_types": None, "last_payment_error": None,
            "latest_charge": None, "livemode": False, "managed_payments": None,
            "metadata": metadata, "next_action": None, "on_behalf_of": None,
            "payment_method": pm_id, "payment_method_configuration_details": None,
            "payment_method_options": {"card": {
                "installments": None, "mandate_options": None, "network": None,
                "request_three_d_secure": "automatic"}},
            "payment_method_types": types, "processing": None,
            "receipt_email": self._str(params, "receipt_email"), "review": None,
            "setup_future_usage": None, "shipping": None, "source": None,
            "statement_descriptor": None, "statement_descriptor_suffix": None,
            "status": "requires_confirmation" if pm_id else "requires_payment_method",
            "transfer_data": None, "transfer_group": None,
        }
        self.payment_intents[pi_id] = pi
        if confirm:
            self._confirm_payment(pi, cast(str, pm_id), off_session=off_session)
        return copy.deepcopy(pi)

    def _api_retrieve_payment_intent(self, params: JSON, pi_id: str) -> JSON:
        self._allow(params, {"client_secret"})
        return copy.deepcopy(self._find(self.payment_intents, pi_id, "payment_intent"))

    def _card_error(self, pi: JSON, pm_id: str, card: _Card, *, code: str, decline_code: str,
                    message: str, charge_id: str | None) -> _ApiError:
        """Record a failed attempt on ``pi`` and build the 402 Stripe answers with."""
        pm = copy.deepcopy(self.payment_methods[pm_id])
        last_error: JSON = {
            "type": "card_error", "code": code, "decline_code": decline_code,
            "message": message, "payment_method": pm,
            "doc_url": f"https://docs.stripe.com/error-codes/{code.replace('_', '-')}",
        }
        if charge_id:
            last_error["charge"] = charge_id
        pi.update(status="requires_payment_method", last_payment_error=last_error,
                  amount_capturable=0, next_action=None)
        if charge_id:
            pi["latest_charge"] = charge_id
        self._emit("payment_intent.payment_failed", pi)
        extra: JSON = {"payment_intent": copy.deepcopy(pi), "payment_method": pm}
        if charge_id:
            extra["charge"] = charge_id
        return _ApiError(402, "card_error", message, code=code, decline_code=decline_code,
                         extra=extra, saved=True)

    def _confirm_payment(self, pi: JSON, pm_id: str, *, off_session: bool) -> None:
        card = self._cards[pm_id]
        pi["payment_method"] = pm_id
        if card.outcome == "decline":
            charge = self._new_charge(pi, pm_id, failed=card)
            raise self._card_error(pi, pm_id, card, code=card.code,
                                   decline_code=card.decline_code, message=card.message,
                                   charge_id=charge["id"])
        needs_auth = card.outcome == "auth_always" or (
            card.outcome == "auth_once" and pm_id not in self._set_up)
        if needs_auth and off_session:
            raise self._card_error(pi, pm_id, card, code="authentication_required",
                                   decline_code="authentication_required",
                                   message=_AUTH_MESSAGE, charge_id=None)
        if needs_auth:
            pi.update(status="requires_action", next_action={
                "type": "use_stripe_sdk",
                "use_stripe_sdk": {"type": "three_d_secure_redirect",
                                   "stripe_js": f"{self.base_url}/3ds/{pi['id']}"}})
            return
        charge = self._new_charge(pi, pm_id)
        pi["latest_charge"] = charge["id"]
        pi["last_payment_error"] = None
        if pi["capture_method"] == "manual":
            pi.update(status="requires_capture", amount_capturable=pi["amount"])
            self._emit("payment_intent.amount_capturable_updated", pi)
        else:
            pi.update(status="succeeded", amount_received=pi["amount"])
            self._emit("payment_intent.succeeded", pi)

    def _new_charge(self, pi: JSON, pm_id: str, *, failed: _Card | None = None) -> JSON:
        charge_id = _new_id("ch")
        card = self._cards[pm_id]
        pm = self.payment_methods[pm_id]
        now = int(time.time())
        automatic = pi["capture_method"] != "manual"
        captured = failed is None and automatic
        charge: JSON = {
            "id": charge_id, "object": "charge", "amount": pi["amount"],
            "amount_captured": pi["amount"] if captured else 0, "amount_refunded": 0,
            "application": None, "application_fee": None, "application_fee_amount": None,
            "balance_transaction": None,
            "billing_details": copy.deepcopy(pm["billing_details"]),
            "calculated_statement_descriptor": None if failed else "COACHGATE",
            "captured": captured, "created": now, "currency": pi["currency"],
            "customer": pi["customer"], "description": pi["description"],
            "disputed": False, "failure_balance_transaction": None,
            "failure_code": failed.code if failed else None,
            "failure_message": failed.message if failed else None, "fraud_details": {},
            "livemode": False, "metadata": dict(pi["metadata"]), "on_behalf_of": None,
            "outcome": {
                "network_status": "declined_by_network" if failed else "approved_by_network",
                "reason": failed.decline_code if failed else None, "risk_level": "normal",
                "seller_message": "The bank did not return any further details with this "
                                  "decline." if failed else "Payment complete.",
                "type": "issuer_declined" if failed else "authorized",
            },
            "paid": failed is None, "payment_intent": pi["id"], "payment_method": pm_id,
            "payment_method_details": {"type": "card", "card": {
                "brand": card.brand, "last4": card.last4,
                "exp_month": pm["card"]["exp_month"], "exp_year": pm["card"]["exp_year"],
                "capture_before": None if automatic or failed
                else now + AUTHORIZATION_DAYS * 86400,
            }},
            "receipt_email": pi["receipt_email"], "receipt_number": None,
            "receipt_url": f"{self.base_url}/receipts/payment/{charge_id}",
            "refunded": False,
            # Not sent unless expanded on Stripe since API 2022-11-15; kept here, as
            # Stripe's fixtures show it, so an expanding caller finds it.
            "refunds": {"object": "list", "data": [], "has_more": False,
                        "url": f"/v1/charges/{charge_id}/refunds"},
            "review": None, "shipping": None, "source": None, "source_transfer": None,
            "statement_descriptor": None, "statement_descriptor_suffix": None,
            "status": "failed" if failed else "succeeded", "transfer_data": None,
            "transfer_group": None,
        }
        self.charges[charge_id] = charge
        return charge

    def _api_capture_payment_intent(self, params: JSON, pi_id: str) -> JSON:
        self._allow(params, {"amount_to_capture", "metadata", "final_capture",
                             "statement_descriptor", "statement_descriptor_suffix"})
        pi = self._find(self.payment_intents, pi_id, "payment_intent")
        amount = self._positive(params, "amount_to_capture")
        metadata = self._metadata(params, pi["metadata"])
        if pi["status"] != "requires_capture":
            raise _invalid(
                f"This PaymentIntent could not be captured because it has a status of "
                f"{pi['status']}. Only a PaymentIntent with one of the following statuses "
                "may be captured: requires_capture.",
                code="payment_intent_unexpected_state", saved=True,
                extra={"payment_intent": copy.deepcopy(pi)})
        capturable = pi["amount_capturable"]
        amount = capturable if amount is None else amount
        self._check_divisible(amount, pi["currency"], "amount_to_capture")
        if amount > capturable:
            raise _invalid(f"The amount to capture ({amount}) is greater than the amount "
                           f"capturable ({capturable}).", param="amount_to_capture",
                           code="amount_too_large", saved=True)
        pi.update(status="succeeded", amount_received=amount, amount_capturable=0,
                  metadata=metadata)
        charge = self.charges[pi["latest_charge"]]
        charge.update(captured=True, amount_captured=amount)
        self._emit("payment_intent.succeeded", pi)
        return copy.deepcopy(pi)

    def _api_cancel_payment_intent(self, params: JSON, pi_id: str) -> JSON:
        self._allow(params, {"cancellation_reason"})
        pi = self._find(self.payment_intents, pi_id, "payment_intent")
        reason = self._str(params, "cancellation_reason", choices=(
            "duplicate", "fraudulent", "requested_by_customer", "abandoned"))
        if pi["status"] not in _PI_CANCELABLE:
            raise _invalid(
                f"You cannot cancel this PaymentIntent because it has a status of "
                f"{pi['status']}. Only a PaymentIntent with one of the following statuses "
                f"may be canceled: {', '.join(_PI_CANCELABLE)}.",
                code="payment_intent_unexpected_state", saved=True,
                extra={"payment_intent": copy.deepcopy(pi)})
        self._cancel_payment_intent(pi, reason)
        return copy.deepcopy(pi)

    def _cancel_payment_intent(self, pi: JSON, reason: str | None) -> None:
        pi.update(status="canceled", canceled_at=int(time.time()), cancellation_reason=reason,
                  amount_capturable=0, next_action=None)
        self._emit("payment_intent.canceled", pi)

    # --- Lists ----------------------------------------------------------------------------

    def _list(self, params: JSON, url: str, table: dict[str, JSON], filters: set[str]
              ) -> JSON:
        """Stripe's list answer: newest first, ``limit`` (1-100, default 10),
        ``starting_after``/``ending_before`` an id in the list, ``created`` an integer or
        a range (``created[gte]=...``), equality ``filters`` on top-level fields. Lists
        are read from the primary store, so they are consistent at once (unlike search)."""
        self._allow(params, {"limit", "starting_after", "ending_before", "created", *filters})
        limit = self._positive(params, "limit")
        limit = 10 if limit is None else limit
        if limit > 100:
            raise _invalid("This value must be less than or equal to 100.", param="limit")
        rows = sorted(table.values(), key=lambda o: o["created"], reverse=True)
        # Same second: the later-made first, as Stripe orders them.
        order = {obj_id: i for i, obj_id in enumerate(table)}
        rows.sort(key=lambda o: (-o["created"], -order[o["id"]]))
        for name in filters:
            wanted = self._str(params, name)
            if wanted is not None:
                rows = [o for o in rows if o.get(name) == wanted]
        created = params.get("created")
        if isinstance(created, str):
            created = {"eq": created}
        if created is not None:
            if not isinstance(created, dict) or set(created) - {"gt", "gte", "lt", "lte", "eq"}:
                raise _invalid("Invalid created: an integer or a hash of gt, gte, lt, lte.",
                               param="created")
            tests = {"gt": int.__gt__, "gte": int.__ge__, "lt": int.__lt__,
                     "lte": int.__le__, "eq": int.__eq__}
            for op, raw in created.items():
                bound = self._int({"created": raw}, "created")
                rows = [o for o in rows if bound is None or tests[op](o["created"], bound)]
        after = self._str(params, "starting_after")
        before = self._str(params, "ending_before")
        ids = [o["id"] for o in rows]
        for name, cursor in (("starting_after", after), ("ending_before", before)):
            if cursor is not None and cursor not in table:
                raise _ApiError(404, "invalid_request_error",
                                f"No such object: '{cursor}'", param=name,
                                code="resource_missing")
        if after is not None:
            rows = rows[ids.index(after) + 1:] if after in ids else []
            page = rows[:limit]
        elif before is not None:
            rows = rows[:ids.index(before)] if before in ids else []
            page = rows[-limit:]
        else:
            page = rows[:limit]
        return {"object": "list", "data": copy.deepcopy(page),
                "has_more": len(rows) > len(page), "url": url}

    def _api_list_payment_intents(self, params: JSON) -> JSON:
        customer = self._str(params, "customer")
        if customer is not None and customer not in self.customers:
            raise _ApiError(400, "invalid_request_error", f"No such customer: '{customer}'",
                            param="customer", code="resource_missing")
        return self._list(params, "/v1/payment_intents", self.payment_intents, {"customer"})

    def _api_list_refunds(self, params: JSON) -> JSON:
        return self._list(params, "/v1/refunds", self.refunds, {"payment_intent", "charge"})

    # --- Refunds, charges, events ---------------------------------------------------------

    def _api_create_refund(self, params: JSON) -> JSON:
        self._allow(params, {"payment_intent", "charge", "amount", "reason", "metadata",
                             "instructions_email"})
        pi_id = self._str(params, "payment_intent")
        charge_id = self._str(params, "charge")
        amount = self._positive(params, "amount")
        reason = self._str(params, "reason",
                           choices=("duplicate", "fraudulent", "requested_by_customer"))
        metadata = self._metadata(params)
        if pi_id is None and charge_id is None:
            raise _invalid("One of the following params should be provided for this request: "
                           "payment_intent or charge.", code="parameter_missing")
        if pi_id is not None:
            pi = self.payment_intents.get(pi_id)
            if pi is None:
                raise _invalid(f"No such payment_intent: '{pi_id}'", param="payment_intent",
                               code="resource_missing")
            if pi["status"] != "succeeded":
                raise _invalid(f"This PaymentIntent ({pi_id}) does not have a successful "
                               "charge to refund.", param="payment_intent", saved=True)
            if charge_id is not None and charge_id != pi["latest_charge"]:
                raise _invalid(f"Charge {charge_id} does not belong to PaymentIntent "
                               f"{pi_id}.", param="charge")
            charge_id = pi["latest_charge"]
        charge = self.charges.get(cast(str, charge_id))
        if charge is None:
            raise _invalid(f"No such charge: '{charge_id}'", param="charge",
                           code="resource_missing")
        if not charge["captured"]:
            raise _invalid(f"Charge {charge_id} has not been captured; cancel its "
                           "PaymentIntent instead.", param="charge", saved=True)
        remaining = charge["amount_captured"] - charge["amount_refunded"]
        if remaining <= 0:
            raise _invalid(f"Charge {charge_id} has already been refunded.",
                           code="charge_already_refunded", saved=True)
        amount = remaining if amount is None else amount
        self._check_divisible(amount, charge["currency"], "amount")
        if amount > remaining:
            raise _invalid(f"Refund amount ({amount}) is greater than unrefunded amount on "
                           f"charge ({remaining})", param="amount", code="amount_too_large",
                           saved=True)
        refund_id = _new_id("re")
        refund: JSON = {
            "id": refund_id, "object": "refund", "amount": amount,
            "balance_transaction": None, "charge": charge_id, "created": int(time.time()),
            "currency": charge["currency"], "customer": charge["customer"],
            "customer_account": None,
            "destination_details": {"card": {"reference": None, "reference_status": "pending",
                                             "reference_type": None, "type": "refund"},
                                    "type": "card"},
            "metadata": metadata, "payment_intent": charge["payment_intent"],
            "payment_method": charge["payment_method"],
            "reason": reason, "receipt_number": None, "source_transfer_reversal": None,
            "status": "succeeded", "transfer_reversal": None,
        }
        self.refunds[refund_id] = refund
        charge["refunds"]["data"].insert(0, copy.deepcopy(refund))
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] >= charge["amount_captured"]
        self._emit("charge.refunded", charge)
        return copy.deepcopy(refund)

    def _api_retrieve_refund(self, params: JSON, refund_id: str) -> JSON:
        self._allow(params, set())
        return copy.deepcopy(self._find(self.refunds, refund_id, "refund"))

    def _api_retrieve_charge(self, params: JSON, charge_id: str) -> JSON:
        self._allow(params, set())
        return copy.deepcopy(self._find(self.charges, charge_id, "charge"))

    def _api_retrieve_event(self, params: JSON, event_id: str) -> JSON:
        self._allow(params, set())
        for event in self.events:
            if event["id"] == event_id:
                return copy.deepcopy(event)
        raise _ApiError(404, "invalid_request_error", f"No such event: '{event_id}'",
                        param="id", code="resource_missing")


# --- HTTP server --------------------------------------------------------------------------


class _Server(TrackingServer):
    fake: StripeFake


class _Handler(TrackedHandler):
    server_version = "stripe-fake"

    def _serve(self) -> None:
        fake = cast(_Server, self.server).fake
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        answer = fake._handle(self.command, self.path, headers, raw)
        # Before the answer: on Stripe a webhook may arrive before the API response, and
        # tests see every delivery done once the call returns.
        fake._auto_deliver(answer.events)
        if answer.hold > 0:
            fake._stopping.wait(answer.hold)
        if answer.finish is not None:
            answer.finish()
        if answer.drop:
            self.close_connection = True
            return
        payload = b""
        if answer.body is not None:
            payload = json.dumps(answer.body, indent=2).encode()
            answer.headers.setdefault("Content-Type", "application/json")
        try:
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if payload:
                self.wfile.write(payload)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
            self.close_connection = True

    do_GET = do_POST = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:  # quiet; calls are in .requests
        log.debug("stripe fake: " + format, *args)


# --- Standalone ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m coachgate.integrations.stripe.fake",
        description="A local Stripe fake: prints one JSON line (base_url, secret_key, "
                    "publishable_key, webhook_secret), serves until Ctrl-C.")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    parser.add_argument("--secret-key", default=None, help="default: a new sk_test_fake_...")
    parser.add_argument("--publishable-key", default=None)
    parser.add_argument("--webhook-secret", default=None, help="default: a new whsec_...")
    parser.add_argument("--webhook-url", default=None,
                        help="where events go (with --auto-deliver), e.g. "
                             "http://127.0.0.1:8000/api/v1/billing/webhooks/stripe")
    parser.add_argument("--auto-deliver", action="store_true",
                        help="POST each event to --webhook-url as it happens")
    args = parser.parse_args(argv)

    fake = StripeFake(port=args.port, secret_key=args.secret_key,
                      publishable_key=args.publishable_key,
                      webhook_secret=args.webhook_secret, webhook_url=args.webhook_url,
                      auto_deliver=args.auto_deliver).start()
    return fake.serve_until_signal(lambda: {
        "base_url": fake.base_url, "secret_key": fake.secret_key,
        "publishable_key": fake.publishable_key, "webhook_secret": fake.webhook_secret,
        "webhook_url": fake.webhook_url, "auto_deliver": fake.auto_deliver,
    })

if __name__ == "__main__":
    raise SystemExit(main())

"""StripeGateway through the official SDK against the local Stripe fake: every interface
method, the idempotency keys, the error mapping and the webhook signature checks."""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import pytest
import stripe

from coachgate.billing.gateways.base import (
    AmountNotChargeable,
    GatewayError,
    GatewayUnavailable,
    InvalidSignature,
    PaymentDeclined,
    PaymentRequest,
)
from coachgate.billing.gateways.stripe import StripeGateway
from coachgate.integrations.stripe.fake import StripeFake


def saved_card(gateway: StripeGateway, fake: StripeFake, card: str = "pm_card_visa",
               user_id: int = 1) -> tuple[str, str]:
    """A customer with a card saved for off-session use: (customer_ref, payment_method)."""
    customer = gateway.ensure_customer(user_id=user_id, email=f"s{user_id}@example.com",
                                       existing_ref="")
    setup = gateway.start_card_setup(customer_ref=customer.ref, key=f"card:{user_id}")
    fake.complete_setup(setup.ref, card)
    done = gateway.card_setup(setup.ref)
    assert done.status == "succeeded"
    return customer.ref, done.payment_method_ref


def request(customer: str, pm: str, amount: int = 5000, key: str = "booking:1",
            currency: str = "USD") -> PaymentRequest:
    return PaymentRequest(key=key, amount_minor=amount, currency=currency,
                          customer_ref=customer, payment_method_ref=pm,
                          description="Session with Ada", metadata={"booking": "1"})


def posts(fake: StripeFake, path: str) -> list[tuple[str | None, int, bool]]:
    return [(r.idempotency_key, r.status, r.replayed) for r in fake.requests
            if r.method == "POST" and r.path == path]


# --- Customers and cards ------------------------------------------------------------------


def test_customer_and_card_setup(stripe_gateway: StripeGateway, stripe_fake: StripeFake
                                 ) -> None:
    customer = stripe_gateway.ensure_customer(user_id=7, email="ada@example.com",
                                              existing_ref="")
    stored = stripe_fake.customers[customer.ref]
    assert (stored["email"], stored["metadata"]) == ("ada@example.com",
                                                     {"coachgate_user_id": "7"})
    assert stripe_gateway.ensure_customer(user_id=7, email="ada@example.com",
                                          existing_ref=customer.ref) == customer
    assert len(stripe_fake.customers) == 1

    setup = stripe_gateway.start_card_setup(customer_ref=customer.ref, key="booking:9")
    assert (setup.status, setup.payment_method_ref) == ("requires_payment_method", "")
    assert setup.client_secret.startswith(setup.ref + "_secret_")
    intent = stripe_fake.setup_intents[setup.ref]
    assert (intent["customer"], intent["usage"]) == (customer.ref, "off_session")
    assert posts(stripe_fake, "/v1/setup_intents") == [("booking:9:setup", 200, False)]

    stripe_fake.complete_setup(setup.ref, "pm_card_visa")  # the student's browser
    done = stripe_gateway.card_setup(setup.ref)
    assert done.status == "succeeded"
    assert done.payment_method_ref == intent["payment_method"]
    assert stripe_fake.payment_methods[done.payment_method_ref]["customer"] == customer.ref


def test_card_needing_3ds_at_setup_is_not_ready_until_the_browser_finishes(
        stripe_gateway: StripeGateway, stripe_fake: StripeFake) -> None:
    customer = stripe_gateway.ensure_customer(user_id=1, email="a@example.com",
                                              existing_ref="")
    setup = stripe_gateway.start_card_setup(customer_ref=customer.ref, key="b:1")
    client = stripe.StripeClient(stripe_fake.secret_key, base_addresses={
        "api": stripe_fake.base_url})
    client.v1.setup_intents.confirm(setup.ref, {
        "payment_method": "pm_card_authenticationRequiredOnSetup"})
    pending = stripe_gateway.card_setup(setup.ref)
    assert (pending.status, pending.payment_method_ref) == ("requires_action", "")
    stripe_fake.complete_setup(setup.ref)
    assert stripe_gateway.card_setup(setup.ref).payment_method_ref.startswith("pm_")


def test_a_deleted_customer_is_replaced(stripe_gateway: StripeGateway,
                                       stripe_fake: StripeFake) -> None:
    first = stripe_gateway.ensure_customer(user_id=3, email="c@example.com", existing_ref="")
    client = stripe.StripeClient(stripe_fake.secret_key, base_addresses={
        "api": stripe_fake.base_url})
    client.v1.customers.delete(first.ref)
    second = stripe_gateway.ensure_customer(user_id=3, email="c@example.com",
                                            existing_ref=first.ref)
    assert second.ref != first.ref
    assert stripe_fake.customers[second.ref]["email"] == "c@example.com"
    unknown = stripe_gateway.ensure_customer(user_id=3, email="c@example.com",
                                             existing_ref="cus_from_test_mode")
    assert unknown.ref not in (first.ref, second.ref, "cus_from_test_mode")


# --- Money --------------------------------------------------------------------------------


def test_authorize_then_capture_in_full(stripe_gateway: StripeGateway,
                                        stripe_fake: StripeFake) -> None:
    customer, pm = saved_card(stripe_gateway, stripe_fake)
    held = stripe_gateway.authorize(request(customer, pm, 5000))
    assert (held.status, held.amount_minor) == ("authorized", 5000)
    intent = stripe_fake.payment_intents[held.ref]
    assert (intent["status"], intent["capture_method"], intent["amount"],
            intent["currency"], intent["customer"]) == (
        "requires_capture", "manual", 5000, "usd", customer)
    assert intent["metadata"] == {"booking": "1", "coachgate_key": "booking:1"}
    assert intent["description"] == "Session with Ada"
    sent = next(r for r in stripe_fake.requests if r.path == "/v1/payment_intents")
    assert (sent.params["off_session"], sent.params["confirm"]) == ("true", "true")
    assert posts(stripe_fake, "/v1/payment_intents") == [("booking:1:authorize", 200, False)]

    captured = stripe_gateway.capture(ref=held.ref, amount_minor=5000, currency="USD",
                                      key="booking:1")
    assert (captured.ref, captured.status, captured.amount_minor) == (held.ref, "captured",
                                                                      5000)
    assert stripe_fake.payment_intents[held.ref]["status"] == "succeeded"
    assert posts(stripe_fake, f"/v1/payment_intents/{held.ref}/capture") == [
        ("booking:1:capture", 200, False)]


def test_partial_capture_releases_the_rest(stripe_gateway: StripeGateway,
                                           stripe_fake: StripeFake) -> None:
    customer, pm = saved_card(stripe_gateway, stripe_fake)
    held = stripe_gateway.authorize(request(customer, pm, 5000))
    captured = stripe_gateway.capture(ref=held.ref, amount_minor=2000, currency="USD",
                                      key="booking:1")
    assert (captured.status, captured.amount_minor) == ("captured", 2000)
    intent = stripe_fake.payment_intents[held.ref]
    assert (intent["amount_received"], intent["amount_capturable"]) == (2000, 0)
    assert stripe_fake.charges[intent["latest_charge"]]["amount_captured"] == 2000


def test_capturing_more_than_held_is_a_bug_not_a_decline(stripe_gateway: StripeGateway,
                                                         stripe_fake: StripeFake) -> None:
    customer, pm = saved_card(stripe_gateway, stripe_fake)
    held = stripe_gateway.authorize(request(customer, pm, 5000))
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe_gateway.capture(ref=held.ref, amount_minor=6000, currency="USD", key="booking:1")
    assert not isinstance(caught.value, GatewayError)
    assert stripe_fake.payment_intents[held.ref]["status"] == "requires_capture"
    with pytest.raises(ValueError, match="positive"):
        stripe_gateway.capture(ref=held.ref, amount_minor=0, currency="USD", key="booking:1")


def test_authorize_then_cancel(stripe_gateway: StripeGateway, stripe_fake: StripeFake
                               ) -> None:
    customer, pm = saved_card(stripe_gateway, stripe_fake)
    held = stripe_gateway.authorize(request(customer, pm))
    cancelled = stripe_gateway.cancel(ref=held.ref, key="booking:1")
    assert (cancelled.ref, cancelled.status, cancelled.amount_minor) == (held.ref,
                                                                         "cancelled", 0)
    assert stripe_fake.payment_intents[held.ref]["status"] == "canceled"
    assert posts(stripe_fake, f"/v1/payment_intents/{held.ref}/cancel") == [
        ("booking:1:cancel", 200, False)]
    # Cancelling again under another key: the hold is gone either way.
    assert stripe_gateway.cancel(ref=held.ref, key="sweep:1").status == "cancelled"


def test_capture_after_the_hold_lapsed(stripe_gateway: StripeGateway,
                                       stripe_fake: StripeFake) -> None:
    customer, pm = saved_card(stripe_gateway, stripe_fake)
    held = stripe_gateway.authorize(request(customer, pm))
    stripe_fake.expire_authorization(held.ref)
    with pytest.raises(PaymentDeclined) as caught:
        stripe_gateway.capture(ref=held.ref, amount_minor=5000, currency="USD", key="booking:1")
    assert (caught.value.code, caught.value.ref) == ("authorization_expired", held.ref)


def test_charge_captures_at_once(stripe_gateway: StripeGateway, stripe_fake: StripeFake
                                 ) -> None:
    customer, pm = saved_card(stripe_gateway, stripe_fake)
    paid = stripe_gateway.charge(request(customer, pm, 12000, key="pack:4"))
    assert (paid.status, paid.amount_minor) == ("captured", 12000)
    intent = stripe_fake.payment_intents[paid.ref]
    assert (intent["status"], intent["capture_method"], intent["amount_received"]) == (
        "succeeded", "automatic", 12000)
    assert posts(stripe_fake, "/v1/payment_intents") == [("pack:4:charge", 200, False)]


def test_refund_part_then_the_rest(stripe_gateway: StripeGateway, stripe_fake: StripeFake
                                   ) -> None:
    customer, pm = saved_card(stripe_gateway, stripe_fake)
    paid = stripe_gateway.charge(request(customer, pm, 3000))
    refunded = stripe_gateway.refund(ref=paid.ref, amount_minor=1000, currency="USD",
                                     key="refund:1")
    assert (refunded.ref, refunded.status, refunded.amount_minor) == (paid.ref, "refunded",
                                                                      1000)
    # Repeated with the same key (a retried task): no second refund.
    assert stripe_gateway.refund(ref=paid.ref, amount_minor=1000, currency="USD",
                                 key="refund:1") == refunded
    assert [r["amount"] for r in stripe_fake.refunds.values()] == [1000]
    assert posts(stripe_fake, "/v1/refunds") == [("refund:1:refund", 200, False),
                                                 ("refund:1:refund", 200, True)]

    with pytest.raises(stripe.InvalidRequestError):  # more than is left: a bug
        stripe_gateway.refund(ref=paid.ref, amount_minor=2500, currency="USD", key="refund:2")
    assert stripe_gateway.refund(ref=paid.ref, amount_minor=2000, currency="USD",
                                 key="refund:3").amount_minor == 2000
    charge = stripe_fake.charges[stripe_fake.payment_intents[paid.ref]["latest_charge"]]
    assert (charge["amount_refunded"], charge["refunded"]) == (3000, True)


def test_the_same_key_never_makes_a_second_payment(stripe_gateway: StripeGateway,
                                                   stripe_fake: StripeFake) -> None:
    customer, pm = saved_card(stripe_gateway, stripe_fake)
    first = stripe_gateway.authorize(request(customer, pm))
    again = stripe_gateway.authorize(request(customer, pm))
    assert again == first
    assert len(stripe_fake.payment_intents) == 1
    assert posts(stripe_fake, "/v1/payment_intents") == [
        ("booking:1:authorize", 200, False), ("booking:1:authorize", 200, True)]
    other = stripe_gateway.authorize(request(customer, pm, key="booking:2"))
    assert other.ref != first.ref
    assert len(stripe_fake.payment_intents) == 2


# --- Declines -----------------------------------------------------------------------------


def test_declined_card(stripe_gateway: StripeGateway, stripe_fake: StripeFake) -> None:
    customer, pm = saved_card(stripe_gateway, stripe_fake, "pm_card_chargeDeclined")
    with pytest.raises(PaymentDeclined) as caught:
        stripe_gateway.authorize(request(customer, pm))
    assert caught.value.code == "card_declined"
    assert caught.value.message == "Your card was declined."
    assert stripe_fake.payment_intents[caught.value.ref]["status"] == (
        "requires_payment_method")
    # The same key again: Stripe replays the decline; still one PaymentIntent.
    with pytest.raises(PaymentDeclined) as again:
        stripe_gateway.authorize(request(customer, pm))
    assert (again.value.code, again.value.ref) == ("card_declined", caught.value.ref)
    assert len(stripe_fake.payment_intents) == 1


def test_insufficient_funds(stripe_gateway: StripeGateway, stripe_fake: StripeFake) -> None:
    customer, pm = saved_card(stripe_gateway, stripe_fake, "pm_card_insufficientFunds")
    with pytest.raises(PaymentDeclined) as caught:
        stripe_gateway.charge(request(customer, pm))
    assert caught.value.code == "insufficient_funds"


def test_authentication_required(stripe_gateway: StripeGateway, stripe_fake: StripeFake
                                 ) -> None:
    customer, pm = saved_card(stripe_gateway, stripe_fake, "pm_card_authenticationRequired")
    with pytest.raises(PaymentDeclined) as caught:
        stripe_gateway.authorize(request(customer, pm))
    assert caught.value.code == "authentication_required"
    assert caught.value.ref in stripe_fake.payment_intents


def test_no_payment_method(stripe_gateway: StripeGateway, stripe_fake: StripeFake) -> None:
    customer = stripe_gateway.ensure_customer(user_id=1, email="a@example.com",
                                              existing_ref="")
    before = len(stripe_fake.requests)
    with pytest.raises(PaymentDeclined) as empty:
        stripe_gateway.authorize(request(customer.ref, ""))
    assert empty.value.code == "no_payment_method"
    assert len(stripe_fake.requests) == before  # nothing sent
    with pytest.raises(PaymentDeclined) as gone:
        stripe_gateway.authorize(request(customer.ref, "pm_detached_long_ago"))
    assert gone.value.code == "no_payment_method"
    assert stripe_fake.payment_intents == {}


# --- Outages ------------------------------------------------------------------------------


def test_a_500_before_execution_is_retried_by_the_sdk_with_the_same_key(
        stripe_gateway: StripeGateway, stripe_fake: StripeFake) -> None:
    """A 500 that never reached the endpoint (a load balancer's, a connection reset) is
    not saved by Stripe: the same key executes afresh."""
    customer, pm = saved_card(stripe_gateway, stripe_fake)
    stripe_fake.fail_next(1, 500, path="/v1/payment_intents", stage="before")
    held = stripe_gateway.authorize(request(customer, pm))
    assert held.status == "authorized"
    assert posts(stripe_fake, "/v1/payment_intents") == [
        ("booking:1:authorize", 500, False), ("booking:1:authorize", 200, False)]
    assert len(stripe_fake.payment_intents) == 1


def test_a_stored_500_after_the_intent_was_made_is_recovered_by_lookup(
        stripe_gateway: StripeGateway, stripe_fake: StripeFake) -> None:
    """Stripe created the intent, then answered 500 and saved that answer under the key
    for 24 hours: the gateway finds the intent by its coachgate_key and never makes a
    second one, now or when the call is made again."""
    customer, pm = saved_card(stripe_gateway, stripe_fake)
    stripe_fake.fail_next(1, 500, path="POST /v1/payment_intents", stage="after")
    held = stripe_gateway.authorize(request(customer, pm))
    assert (held.status, held.amount_minor) == ("authorized", 5000)
    assert list(stripe_fake.payment_intents) == [held.ref]
    assert posts(stripe_fake, "/v1/payment_intents") == [("booking:1:authorize", 500, False)]
    lookups = [r for r in stripe_fake.requests if (r.method, r.path) == (
        "GET", "/v1/payment_intents")]
    assert [r.params["customer"] for r in lookups] == [customer]
    again = stripe_gateway.authorize(request(customer, pm))  # a rerun after a crash
    assert again == held
    assert posts(stripe_fake, "/v1/payment_intents")[-1] == ("booking:1:authorize", 500, True)
    assert list(stripe_fake.payment_intents) == [held.ref]  # money held once
    # The same payment's charge step is another intent: not mistaken for this one.
    charged = stripe_gateway.charge(request(customer, pm))
    assert charged.status == "captured" and charged.ref != held.ref


def test_a_stored_500_with_nothing_made_gets_a_new_key(stripe_gateway: StripeGateway,
                                                      stripe_fake: StripeFake) -> None:
    customer, pm = saved_card(stripe_gateway, stripe_fake)
    stripe_fake.fail_next(1, 500, path="POST /v1/payment_intents", stage="during")
    charged = stripe_gateway.charge(request(customer, pm))
    assert charged.status == "captured"
    assert posts(stripe_fake, "/v1/payment_intents") == [
        ("booking:1:charge", 500, False), ("booking:1:charge:attempt-2", 200, False)]
    assert list(stripe_fake.payment_intents) == [charged.ref]
    # Run again: the first key still replays its 500; the lookup finds the intent the
    # second key made, so nothing is charged twice.
    assert stripe_gateway.charge(request(customer, pm)) == charged
    assert posts(stripe_fake, "/v1/payment_intents")[-1] == ("booking:1:charge", 500, True)
    assert list(stripe_fake.payment_intents) == [charged.ref]


def test_stored_500s_on_every_key_stay_unavailable(stripe_gateway: StripeGateway,
                                                  stripe_fake: StripeFake) -> None:
    customer, pm = saved_card(stripe_gateway, stripe_fake)
    stripe_fake.fail_next(3, 500, path="POST /v1/payment_intents", stage="during")
    with pytest.raises(GatewayUnavailable):
        stripe_gateway.authorize(request(customer, pm))
    assert [k for k, _, _ in posts(stripe_fake, "/v1/payment_intents")] == [
        "booking:1:authorize", "booking:1:authorize:attempt-2",
        "booking:1:authorize:attempt-3"]
    assert stripe_fake.payment_intents == {}


def test_a_key_in_use_is_waited_for_and_sent_again(stripe_fake: StripeFake) -> None:
    """Two runs of one payment at once (a lease that lapsed while Stripe was slow): the
    second gets 409 idempotency_key_in_use, waits, sends the same key again and is
    answered with the first one's intent."""
    gateway = StripeGateway(secret_key=stripe_fake.secret_key, api_base=stripe_fake.base_url,
                            timeout=5.0, max_network_retries=1)
    customer, pm = saved_card(gateway, stripe_fake)
    stripe_fake.slow_next(1, 1.5, path="POST /v1/payment_intents")
    results: list[Any] = []
    first = threading.Thread(target=lambda: results.append(
        gateway.authorize(request(customer, pm))))
    first.start()
    deadline = time.monotonic() + 5
    while not posts(stripe_fake, "/v1/payment_intents"):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    second = gateway.authorize(request(customer, pm))
    first.join(10)
    assert results == [second] and second.status == "authorized"
    statuses = [(s, replayed) for _, s, replayed in posts(stripe_fake, "/v1/payment_intents")]
    assert (409, False) in statuses and statuses[-1] == (200, True)
    assert {k for k, _, _ in posts(stripe_fake, "/v1/payment_intents")} == {
        "booking:1:authorize"}
    assert len(stripe_fake.payment_intents) == 1


def test_a_lasting_outage_is_gateway_unavailable(stripe_gateway: StripeGateway,
                                                 stripe_fake: StripeFake) -> None:
    customer, pm = saved_card(stripe_gateway, stripe_fake)
    stripe_fake.fail_next(10, 503, path="/v1/payment_intents")
    with pytest.raises(GatewayUnavailable):
        stripe_gateway.authorize(request(customer, pm))
    assert len(posts(stripe_fake, "/v1/payment_intents")) == 3  # 1 + 2 SDK retries
    assert stripe_fake.payment_intents == {}
    stripe_fake.reset_faults()
    assert stripe_gateway.authorize(request(customer, pm)).status == "authorized"
    assert len(stripe_fake.payment_intents) == 1


def test_a_lost_answer_is_replayed_not_repeated(stripe_fake: StripeFake) -> None:
    gateway = StripeGateway(secret_key=stripe_fake.secret_key, api_base=stripe_fake.base_url,
                            timeout=1.0, max_network_retries=2)
    customer, pm = saved_card(gateway, stripe_fake)
    stripe_fake.timeout_next(1, 3.0, path="/v1/payment_intents")
    held = gateway.authorize(request(customer, pm))
    assert held.status == "authorized"
    assert posts(stripe_fake, "/v1/payment_intents") == [
        ("booking:1:authorize", 200, False), ("booking:1:authorize", 200, True)]
    assert list(stripe_fake.payment_intents) == [held.ref]  # money held once


def test_rate_limited(stripe_gateway: StripeGateway, stripe_fake: StripeFake) -> None:
    customer, pm = saved_card(stripe_gateway, stripe_fake)
    stripe_fake.rate_limit_next(1, retry_after=2, path="/v1/payment_intents")
    with pytest.raises(GatewayUnavailable) as caught:
        stripe_gateway.authorize(request(customer, pm))
    assert caught.value.retry_after == 2.0
    assert stripe_fake.payment_intents == {}
    # When Stripe says the request may be retried, the SDK does it itself.
    stripe_fake.rate_limit_next(1, should_retry=True, path="/v1/payment_intents")
    assert stripe_gateway.authorize(request(customer, pm)).status == "authorized"
    assert [s for _, s, _ in posts(stripe_fake, "/v1/payment_intents")] == [429, 429, 200]


def test_unreachable_stripe_is_gateway_unavailable(stripe_fake: StripeFake) -> None:
    port = stripe_fake.port
    with StripeFake() as other:
        dead_base = other.base_url
    assert dead_base != f"http://127.0.0.1:{port}"
    gateway = StripeGateway(secret_key=stripe_fake.secret_key, api_base=dead_base,
                            timeout=1.0, max_network_retries=0)
    with pytest.raises(GatewayUnavailable):
        gateway.authorize(request("cus_x", "pm_x"))


# --- Webhooks -----------------------------------------------------------------------------


def test_webhook_with_a_good_signature(stripe_gateway: StripeGateway,
                                       stripe_fake: StripeFake) -> None:
    customer, pm = saved_card(stripe_gateway, stripe_fake)
    held = stripe_gateway.authorize(request(customer, pm))
    event = stripe_fake.events[-1]
    payload = stripe_fake.event_payload(event)
    parsed = stripe_gateway.parse_webhook(payload, {
        "Stripe-Signature": stripe_fake.sign(payload)})
    assert (parsed.id, parsed.type) == (event["id"], "payment_intent.amount_capturable_updated")
    assert type(parsed.data) is dict
    assert type(parsed.data["metadata"]) is dict
    assert (parsed.data["id"], parsed.data["amount_capturable"]) == (held.ref, 5000)
    assert parsed.data == event["data"]["object"]
    # Header names in any case (Django's request.headers, or its META).
    assert stripe_gateway.parse_webhook(payload, {
        "HTTP_STRIPE_SIGNATURE": stripe_fake.sign(payload)}).id == event["id"]


@pytest.mark.parametrize("case", ["other_secret", "missing", "old", "tampered", "garbage"])
def test_webhook_with_a_bad_signature(stripe_gateway: StripeGateway, stripe_fake: StripeFake,
                                      case: str) -> None:
    payload = json.dumps({"id": "evt_1", "object": "event", "type": "payment_intent.succeeded",
                          "data": {"object": {"id": "pi_1"}}}).encode()
    headers: dict[str, str] = {"Stripe-Signature": stripe_fake.sign(payload)}
    if case == "other_secret":
        headers["Stripe-Signature"] = stripe_fake.sign(payload, secret="whsec_someone_else")
    elif case == "missing":
        headers = {}
    elif case == "old":  # validly signed, but replayed 10 minutes later
        headers["Stripe-Signature"] = stripe_fake.sign(payload,
                                                       timestamp=int(time.time()) - 600)
    elif case == "tampered":
        payload = payload.replace(b"pi_1", b"pi_2")
    elif case == "garbage":
        headers["Stripe-Signature"] = "nonsense"
    with pytest.raises(InvalidSignature):
        stripe_gateway.parse_webhook(payload, headers)


def test_webhooks_need_a_configured_secret(stripe_fake: StripeFake) -> None:
    gateway = StripeGateway(secret_key=stripe_fake.secret_key, api_base=stripe_fake.base_url)
    payload = b'{"id": "evt_1"}'
    with pytest.raises(InvalidSignature):
        gateway.parse_webhook(payload, {"Stripe-Signature": stripe_fake.sign(payload)})


def test_a_signed_payload_that_is_not_json(stripe_gateway: StripeGateway,
                                           stripe_fake: StripeFake) -> None:
    payload = b"not json"
    with pytest.raises(InvalidSignature):
        stripe_gateway.parse_webhook(payload, {"Stripe-Signature": stripe_fake.sign(payload)})


# --- Amounts and secrets ------------------------------------------------------------------


@pytest.mark.parametrize(("currency", "amount"), [("JPY", 5000), ("KWD", 12340),
                                                  ("USD", 1999)])
def test_amounts_pass_through_unchanged(stripe_gateway: StripeGateway,
                                        stripe_fake: StripeFake, currency: str,
                                        amount: int) -> None:
    customer, pm = saved_card(stripe_gateway, stripe_fake)
    held = stripe_gateway.authorize(request(customer, pm, amount, currency=currency))
    assert held.amount_minor == amount
    sent = [r for r in stripe_fake.requests if r.path == "/v1/payment_intents"][-1]
    assert (sent.params["amount"], sent.params["currency"]) == (str(amount),
                                                                currency.lower())
    assert stripe_fake.payment_intents[held.ref]["amount"] == amount


def test_three_decimal_amounts_not_ending_in_zero_are_refused_before_sending(
        stripe_gateway: StripeGateway, stripe_fake: StripeFake) -> None:
    # More currencies, both directions: tests/billing/test_currency_units.py.
    customer, pm = saved_card(stripe_gateway, stripe_fake)
    with pytest.raises(AmountNotChargeable):
        stripe_gateway.authorize(request(customer, pm, 12345, currency="KWD"))
    assert stripe_fake.payment_intents == {}
    assert not [r for r in stripe_fake.requests if r.path == "/v1/payment_intents"]


def test_the_secret_key_is_never_shown(stripe_gateway: StripeGateway,
                                       stripe_fake: StripeFake,
                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    customer, pm = saved_card(stripe_gateway, stripe_fake, "pm_card_chargeDeclined")
    with pytest.raises(PaymentDeclined) as caught:
        stripe_gateway.charge(request(customer, pm))
    shown: list[Any] = [repr(stripe_gateway), str(stripe_gateway), caplog.text,
                        str(caught.value), repr(caught.value)]
    assert caplog.text  # the gateway did log its steps
    assert all(stripe_fake.secret_key not in s for s in shown)
    assert stripe_fake.secret_key[-8:] not in caplog.text

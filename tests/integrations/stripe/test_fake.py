"""The Stripe fake behaves like Stripe where coachgate relies on it: raw HTTP for the wire
details (envelopes, statuses, headers), the real SDK where its parsing matters."""

from __future__ import annotations

import json
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import stripe

from coachgate.integrations.stripe.fake import StripeFake, parse_form


@pytest.fixture(scope="module")
def _server() -> Iterator[StripeFake]:
    with StripeFake() as fake:
        yield fake


@pytest.fixture
def fake(_server: StripeFake) -> StripeFake:
    _server.reset()
    return _server


def call(fake: StripeFake, method: str, path: str, data: dict[str, str] | None = None, *,
         key: str | None = None, api_key: str | None = None, timeout: float = 5.0,
         auth: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {api_key or fake.secret_key}"}
    if auth is not None:  # "" sends none
        headers = {"Authorization": auth} if auth else {}
    if key:
        headers["Idempotency-Key"] = key
    if method == "GET":
        return httpx.get(fake.base_url + path, params=data, headers=headers, timeout=timeout)
    return httpx.request(method, fake.base_url + path, data=data, headers=headers,
                         timeout=timeout)


def saved_card(fake: StripeFake, card: str = "pm_card_visa") -> tuple[str, str]:
    customer = call(fake, "POST", "/v1/customers", {"email": "s@example.com"}).json()["id"]
    seti = call(fake, "POST", "/v1/setup_intents", {"customer": customer}).json()["id"]
    return customer, fake.complete_setup(seti, card)["payment_method"]


def pay(fake: StripeFake, customer: str, pm: str, amount: int = 1000, *,
        capture: str = "manual", currency: str = "usd", key: str | None = None,
        **extra: str) -> httpx.Response:
    return call(fake, "POST", "/v1/payment_intents", {
        "amount": str(amount), "currency": currency, "customer": customer,
        "payment_method": pm, "confirm": "true", "off_session": "true",
        "capture_method": capture, **extra}, key=key)


def error(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}
    return dict(body["error"])


# --- Wire format and authentication -------------------------------------------------------


def test_parse_form_nests_like_stripe() -> None:
    parsed = parse_form("a=1&metadata[k]=v&metadata[e]=&types[0]=card&types[1]=x&l[]=p"
                        "&deep[x][y]=z")
    assert parsed == {"a": "1", "metadata": {"k": "v", "e": ""}, "types": ["card", "x"],
                      "l": ["p"], "deep": {"x": {"y": "z"}}}
    with pytest.raises(ValueError, match="Invalid hash"):
        parse_form("a=1&a[b]=2")


def test_requests_need_a_secret_key(fake: StripeFake) -> None:
    missing = call(fake, "GET", "/v1/customers/cus_x", auth="")
    assert missing.status_code == 401
    assert "did not provide an API key" in error(missing)["message"]

    wrong = call(fake, "GET", "/v1/customers/cus_x", api_key="sk_test_wrong_key_1234")
    assert wrong.status_code == 401
    message = error(wrong)["message"]
    assert message.startswith("Invalid API Key provided")
    assert "sk_test_wrong_key_1234" not in message  # masked, as Stripe does
    assert message.endswith("1234")

    publishable = call(fake, "POST", "/v1/customers", api_key=fake.publishable_key)
    assert publishable.status_code == 401
    assert "publishable" in error(publishable)["message"]
    assert fake.customers == {}

    # HTTP Basic with the key as user name works too (curl -u sk_...:).
    basic = httpx.post(fake.base_url + "/v1/customers", auth=(fake.secret_key, ""))
    assert basic.status_code == 200
    assert basic.json()["object"] == "customer"


def test_sdk_raises_authentication_error_for_a_bad_key(fake: StripeFake) -> None:
    client = stripe.StripeClient("sk_test_nope_nope_nope", base_addresses={
        "api": fake.base_url}, max_network_retries=0)
    with pytest.raises(stripe.AuthenticationError):
        client.v1.customers.create({"email": "a@example.com"})


def test_form_bodies_metadata_and_unknown_params(fake: StripeFake) -> None:
    created = call(fake, "POST", "/v1/customers", {"email": "a@example.com",
                                                   "metadata[user]": "7"})
    assert created.status_code == 200
    body = created.json()
    assert body["id"].startswith("cus_")
    assert (body["email"], body["metadata"], body["livemode"]) == (
        "a@example.com", {"user": "7"}, False)
    assert created.headers["Request-Id"].startswith("req_")

    unknown = call(fake, "POST", "/v1/customers", {"colour": "red"})
    assert unknown.status_code == 400
    assert error(unknown)["code"] == "parameter_unknown"
    assert error(unknown)["param"] == "colour"

    bad_int = call(fake, "POST", "/v1/payment_intents", {"amount": "ten", "currency": "usd"})
    assert bad_int.status_code == 400
    assert (error(bad_int)["code"], error(bad_int)["param"]) == (
        "parameter_invalid_integer", "amount")


def test_missing_objects_and_unknown_routes(fake: StripeFake) -> None:
    missing = call(fake, "GET", "/v1/payment_intents/pi_nothing")
    assert missing.status_code == 404
    assert error(missing) | {"doc_url": ""} == {
        "type": "invalid_request_error", "code": "resource_missing", "param": "id",
        "message": "No such payment_intent: 'pi_nothing'", "doc_url": ""}

    unknown = call(fake, "GET", "/v1/balance_transactions")
    assert unknown.status_code == 404
    assert "Unrecognized request URL" in error(unknown)["message"]


def test_deleted_customers_cannot_pay(fake: StripeFake) -> None:
    customer = call(fake, "POST", "/v1/customers").json()["id"]
    assert call(fake, "DELETE", f"/v1/customers/{customer}").json()["deleted"] is True
    assert call(fake, "GET", f"/v1/customers/{customer}").json() == {
        "id": customer, "object": "customer", "deleted": True}
    refused = pay(fake, customer, "pm_card_visa")
    assert refused.status_code == 400
    assert (error(refused)["code"], error(refused)["param"]) == ("resource_missing",
                                                                 "customer")


# --- Idempotency --------------------------------------------------------------------------


def test_same_key_same_params_replays_the_first_answer(fake: StripeFake) -> None:
    customer, pm = saved_card(fake)
    first = pay(fake, customer, pm, key="k-1")
    second = pay(fake, customer, pm, key="k-1")
    assert first.status_code == second.status_code == 200
    assert second.json() == first.json()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.headers["Original-Request"] == first.headers["Request-Id"]
    assert "Idempotent-Replayed" not in first.headers
    assert len(fake.payment_intents) == 1
    posts = [r for r in fake.requests if r.path == "/v1/payment_intents"]
    assert [(r.idempotency_key, r.status, r.replayed) for r in posts] == [
        ("k-1", 200, False), ("k-1", 200, True)]
    assert posts[0].params["amount"] == "1000"


def test_same_key_other_params_or_endpoint_is_an_idempotency_error(fake: StripeFake) -> None:
    customer, pm = saved_card(fake)
    assert pay(fake, customer, pm, 1000, key="k-2").status_code == 200

    other_amount = pay(fake, customer, pm, 1500, key="k-2")
    assert other_amount.status_code == 400
    assert error(other_amount)["type"] == "idempotency_error"
    assert "same parameters" in error(other_amount)["message"]

    other_endpoint = call(fake, "POST", "/v1/customers", key="k-2")
    assert other_endpoint.status_code == 400
    assert error(other_endpoint)["type"] == "idempotency_error"
    assert "same endpoint" in error(other_endpoint)["message"]
    assert len(fake.payment_intents) == 1


def test_keys_are_scoped_to_the_api_key(fake: StripeFake) -> None:
    other_key = fake.new_secret_key()
    first = call(fake, "POST", "/v1/customers", {"email": "a@example.com"}, key="shared")
    second = call(fake, "POST", "/v1/customers", {"email": "a@example.com"}, key="shared",
                  api_key=other_key)
    assert first.status_code == second.status_code == 200
    assert first.json()["id"] != second.json()["id"]
    assert "Idempotent-Replayed" not in second.headers
    assert len(fake.customers) == 2


def test_sdk_sees_idempotency_errors(fake: StripeFake) -> None:
    client = stripe.StripeClient(fake.secret_key, base_addresses={"api": fake.base_url},
                                 max_network_retries=0)
    client.v1.customers.create({"email": "a@example.com"}, options={"idempotency_key": "c"})
    with pytest.raises(stripe.IdempotencyError):
        client.v1.customers.create({"email": "b@example.com"},
                                   options={"idempotency_key": "c"})


def test_card_declines_are_saved_and_replayed(fake: StripeFake) -> None:
    customer, pm = saved_card(fake, "pm_card_chargeDeclined")
    declined = pay(fake, customer, pm, key="d-1")
    assert declined.status_code == 402
    err = error(declined)
    assert (err["type"], err["code"], err["decline_code"], err["message"]) == (
        "card_error", "card_declined", "generic_decline", "Your card was declined.")
    assert err["payment_intent"]["status"] == "requires_payment_method"
    assert err["payment_intent"]["last_payment_error"]["code"] == "card_declined"
    assert fake.charges[err["charge"]]["status"] == "failed"

    again = pay(fake, customer, pm, key="d-1")
    assert again.status_code == 402
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == declined.json()
    assert len(fake.payment_intents) == 1
    assert [e["type"] for e in fake.events][-1] == "payment_intent.payment_failed"


def test_validation_errors_are_not_saved(fake: StripeFake) -> None:
    customer, pm = saved_card(fake)
    invalid = call(fake, "POST", "/v1/payment_intents", {
        "amount": "1000", "customer": customer, "payment_method": pm}, key="v-1")
    assert invalid.status_code == 400
    assert (error(invalid)["code"], error(invalid)["param"]) == ("parameter_missing",
                                                                 "currency")
    fixed = pay(fake, customer, pm, key="v-1")  # same key, corrected request: runs
    assert fixed.status_code == 200
    assert "Idempotent-Replayed" not in fixed.headers


# --- Money --------------------------------------------------------------------------------


def test_partial_capture_limits(fake: StripeFake) -> None:
    customer, pm = saved_card(fake)
    held = pay(fake, customer, pm, 1000).json()
    assert (held["status"], held["amount_capturable"], held["amount_received"]) == (
        "requires_capture", 1000, 0)
    assert held["latest_charge"].startswith("ch_")
    capture = f"/v1/payment_intents/{held['id']}/capture"

    too_much = call(fake, "POST", capture, {"amount_to_capture": "1200"})
    assert too_much.status_code == 400
    assert (error(too_much)["code"], error(too_much)["param"]) == ("amount_too_large",
                                                                   "amount_to_capture")
    assert fake.payment_intents[held["id"]]["status"] == "requires_capture"

    captured = call(fake, "POST", capture, {"amount_to_capture": "600"}).json()
    assert (captured["status"], captured["amount_received"], captured["amount_capturable"]) \
        == ("succeeded", 600, 0)
    charge = fake.charges[held["latest_charge"]]
    assert (charge["captured"], charge["amount_captured"]) == (True, 600)

    twice = call(fake, "POST", capture, {"amount_to_capture": "100"})
    assert twice.status_code == 400
    assert error(twice)["code"] == "payment_intent_unexpected_state"
    assert error(twice)["payment_intent"]["status"] == "succeeded"
    assert [e["type"] for e in fake.events][-2:] == [
        "payment_intent.amount_capturable_updated", "payment_intent.succeeded"]


def test_cancel_only_from_cancelable_states(fake: StripeFake) -> None:
    customer, pm = saved_card(fake)
    held = pay(fake, customer, pm).json()
    canceled = call(fake, "POST", f"/v1/payment_intents/{held['id']}/cancel",
                    {"cancellation_reason": "requested_by_customer"}).json()
    assert (canceled["status"], canceled["amount_capturable"]) == ("canceled", 0)
    assert canceled["cancellation_reason"] == "requested_by_customer"
    again = call(fake, "POST", f"/v1/payment_intents/{held['id']}/cancel")
    assert again.status_code == 400
    assert error(again)["code"] == "payment_intent_unexpected_state"

    paid = pay(fake, customer, pm, capture="automatic").json()
    assert paid["status"] == "succeeded"
    refused = call(fake, "POST", f"/v1/payment_intents/{paid['id']}/cancel")
    assert refused.status_code == 400
    assert fake.payment_intents[paid["id"]]["status"] == "succeeded"


def test_refund_limits(fake: StripeFake) -> None:
    customer, pm = saved_card(fake)
    paid = pay(fake, customer, pm, 1000, capture="automatic").json()
    first = call(fake, "POST", "/v1/refunds", {"payment_intent": paid["id"], "amount": "400"})
    assert first.status_code == 200
    assert (first.json()["amount"], first.json()["status"]) == (400, "succeeded")
    assert first.json()["charge"] == paid["latest_charge"]

    too_much = call(fake, "POST", "/v1/refunds", {"payment_intent": paid["id"],
                                                  "amount": "700"})
    assert too_much.status_code == 400
    assert (error(too_much)["code"], error(too_much)["param"]) == ("amount_too_large",
                                                                   "amount")
    rest = call(fake, "POST", "/v1/refunds", {"payment_intent": paid["id"]})
    assert rest.json()["amount"] == 600
    charge = fake.charges[paid["latest_charge"]]
    assert (charge["amount_refunded"], charge["refunded"]) == (1000, True)

    done = call(fake, "POST", "/v1/refunds", {"payment_intent": paid["id"], "amount": "1"})
    assert done.status_code == 400
    assert error(done)["code"] == "charge_already_refunded"
    assert len(fake.refunds) == 2
    refunded = [e for e in fake.events if e["type"] == "charge.refunded"]
    assert [e["data"]["object"]["amount_refunded"] for e in refunded] == [400, 1000]


def test_refunds_need_a_captured_payment(fake: StripeFake) -> None:
    customer, pm = saved_card(fake)
    held = pay(fake, customer, pm, 1000).json()
    refused = call(fake, "POST", "/v1/refunds", {"payment_intent": held["id"]})
    assert refused.status_code == 400
    assert fake.refunds == {}
    missing = call(fake, "POST", "/v1/refunds", {})
    assert error(missing)["code"] == "parameter_missing"


def test_amount_rules_per_currency(fake: StripeFake) -> None:
    customer, pm = saved_card(fake)
    yen = pay(fake, customer, pm, 500, currency="JPY").json()
    assert (yen["amount"], yen["currency"]) == (500, "jpy")
    kwd = pay(fake, customer, pm, 12340, currency="kwd").json()
    assert (kwd["amount"], kwd["currency"]) == (12340, "kwd")

    odd_fils = pay(fake, customer, pm, 12345, currency="kwd")
    assert odd_fils.status_code == 400
    assert (error(odd_fils)["type"], error(odd_fils)["param"]) == ("invalid_request_error",
                                                                   "amount")
    too_small = pay(fake, customer, pm, 49, currency="usd")
    assert error(too_small)["code"] == "amount_too_small"
    unknown = pay(fake, customer, pm, 1000, currency="xyz")
    assert error(unknown)["param"] == "currency"
    assert len(fake.payment_intents) == 2


def test_confirm_needs_a_payment_method(fake: StripeFake) -> None:
    customer = call(fake, "POST", "/v1/customers").json()["id"]
    refused = call(fake, "POST", "/v1/payment_intents", {
        "amount": "1000", "currency": "usd", "customer": customer, "confirm": "true",
        "off_session": "true"})
    assert refused.status_code == 400
    assert (error(refused)["code"], error(refused)["param"]) == ("parameter_missing",
                                                                 "payment_method")
    gone = pay(fake, customer, "pm_does_not_exist")
    assert (error(gone)["code"], error(gone)["param"]) == ("resource_missing",
                                                           "payment_method")
    assert fake.payment_intents == {}


# --- Cards and setup ----------------------------------------------------------------------


def test_setup_intent_attaches_the_card_to_the_customer(fake: StripeFake) -> None:
    customer = call(fake, "POST", "/v1/customers").json()["id"]
    seti = call(fake, "POST", "/v1/setup_intents", {
        "customer": customer, "usage": "off_session",
        "payment_method_types[0]": "card"}).json()
    assert (seti["status"], seti["usage"], seti["payment_method"]) == (
        "requires_payment_method", "off_session", None)
    assert seti["client_secret"].startswith(seti["id"] + "_secret_")

    confirmed = call(fake, "POST", f"/v1/setup_intents/{seti['id']}/confirm",
                     {"payment_method": "pm_card_visa"}).json()
    assert confirmed["status"] == "succeeded"
    pm = confirmed["payment_method"]
    assert pm.startswith("pm_") and pm != "pm_card_visa"
    assert fake.payment_methods[pm]["customer"] == customer
    assert call(fake, "GET", f"/v1/payment_methods/{pm}").json()["card"]["last4"] == "4242"
    assert fake.events[-1]["type"] == "setup_intent.succeeded"

    again = call(fake, "POST", f"/v1/setup_intents/{seti['id']}/confirm",
                 {"payment_method": "pm_card_visa"})
    assert error(again)["code"] == "setup_intent_unexpected_state"


def test_authentication_required_cards(fake: StripeFake) -> None:
    customer = call(fake, "POST", "/v1/customers").json()["id"]
    seti = call(fake, "POST", "/v1/setup_intents", {"customer": customer}).json()
    pending = call(fake, "POST", f"/v1/setup_intents/{seti['id']}/confirm",
                   {"payment_method": "pm_card_authenticationRequired"}).json()
    assert pending["status"] == "requires_action"  # 3DS: only the browser can finish it
    assert pending["next_action"]["type"] == "use_stripe_sdk"
    done = fake.complete_setup(seti["id"])
    assert done["status"] == "succeeded"
    assert done["payment_method"] == pending["payment_method"]

    off_session = pay(fake, customer, done["payment_method"])
    assert off_session.status_code == 402
    err = error(off_session)
    assert (err["code"], err["decline_code"]) == ("authentication_required",
                                                  "authentication_required")
    assert err["payment_intent"]["status"] == "requires_payment_method"

    # This card needs 3DS once, at setup; then off-session payments go through.
    customer2, pm2 = saved_card(fake, "pm_card_authenticationRequiredOnSetup")
    assert pay(fake, customer2, pm2).json()["status"] == "requires_capture"


def test_cards_of_another_customer_are_refused(fake: StripeFake) -> None:
    _, pm = saved_card(fake)
    stranger = call(fake, "POST", "/v1/customers").json()["id"]
    refused = pay(fake, stranger, pm)
    assert refused.status_code == 400
    assert error(refused)["param"] == "payment_method"


def test_insufficient_funds_decline_code(fake: StripeFake) -> None:
    customer, pm = saved_card(fake, "pm_card_insufficientFunds")
    declined = pay(fake, customer, pm, capture="automatic")
    assert (error(declined)["code"], error(declined)["decline_code"]) == (
        "card_declined", "insufficient_funds")


def test_expire_authorization_cancels_the_hold(fake: StripeFake) -> None:
    customer, pm = saved_card(fake)
    held = pay(fake, customer, pm).json()
    expired = fake.expire_authorization(held["id"])
    assert (expired["status"], expired["cancellation_reason"]) == ("canceled", "expired")
    refused = call(fake, "POST", f"/v1/payment_intents/{held['id']}/capture")
    assert error(refused)["payment_intent"]["status"] == "canceled"


def test_outside_the_api_helpers_over_http(fake: StripeFake) -> None:
    customer = call(fake, "POST", "/v1/customers").json()["id"]
    seti = call(fake, "POST", "/v1/setup_intents", {"customer": customer}).json()["id"]
    done = call(fake, "POST", f"/_fake/setup_intents/{seti}/complete",
                {"payment_method": "pm_card_mastercard"})
    assert done.json()["status"] == "succeeded"
    pm = done.json()["payment_method"]
    assert fake.payment_methods[pm]["card"]["brand"] == "mastercard"
    with pytest.raises(ValueError, match="succeeded"):
        fake.complete_setup(seti)

    held = pay(fake, customer, pm).json()
    expired = call(fake, "POST", f"/_fake/payment_intents/{held['id']}/expire")
    assert expired.json()["status"] == "canceled"
    again = call(fake, "POST", f"/_fake/payment_intents/{held['id']}/expire")
    assert error(again)["code"] == "payment_intent_unexpected_state"
    assert call(fake, "POST", f"/_fake/payment_intents/{held['id']}/expire",
                auth="").status_code == 401


# --- Faults -------------------------------------------------------------------------------


def test_fail_next_answers_before_anything_executes(fake: StripeFake) -> None:
    fake.fail_next(1, 503, path="POST /v1/customers")
    other = call(fake, "GET", "/v1/customers/cus_x")  # not matching: unaffected
    assert other.status_code == 404
    failed = call(fake, "POST", "/v1/customers", {"email": "a@example.com"}, key="f-1")
    assert failed.status_code == 503
    assert error(failed)["type"] == "api_error"
    assert "Stripe-Should-Retry" not in failed.headers
    assert fake.customers == {}
    retried = call(fake, "POST", "/v1/customers", {"email": "a@example.com"}, key="f-1")
    assert retried.status_code == 200
    assert "Idempotent-Replayed" not in retried.headers  # the failure was not saved
    assert len(fake.customers) == 1


def test_rate_limit_next(fake: StripeFake) -> None:
    fake.rate_limit_next(1, retry_after=2)
    limited = call(fake, "POST", "/v1/customers")
    assert limited.status_code == 429
    assert error(limited)["code"] == "rate_limit"
    assert limited.headers["Stripe-Should-Retry"] == "false"
    assert limited.headers["Retry-After"] == "2"
    assert fake.customers == {}
    fake.rate_limit_next(1, should_retry=True)
    assert call(fake, "POST", "/v1/customers").headers["Stripe-Should-Retry"] == "true"
    assert call(fake, "POST", "/v1/customers").status_code == 200


def test_timeout_next_applies_the_change_and_saves_it(fake: StripeFake) -> None:
    customer, pm = saved_card(fake)
    fake.timeout_next(1, 2.0, path="/v1/payment_intents")
    with pytest.raises(httpx.ReadTimeout):
        call(fake, "POST", "/v1/payment_intents", {
            "amount": "1000", "currency": "usd", "customer": customer,
            "payment_method": pm, "confirm": "true", "capture_method": "manual"},
            key="t-1", timeout=0.3)
    assert len(fake.payment_intents) == 1  # Stripe did the work; the answer was late
    retry = call(fake, "POST", "/v1/payment_intents", {
        "amount": "1000", "currency": "usd", "customer": customer,
        "payment_method": pm, "confirm": "true", "capture_method": "manual"}, key="t-1")
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json()["id"] in fake.payment_intents
    assert len(fake.payment_intents) == 1


def test_timeout_next_not_applied_drops_the_request(fake: StripeFake) -> None:
    fake.timeout_next(1, 0.2, applied=False)
    with pytest.raises(httpx.TransportError):
        call(fake, "POST", "/v1/customers", {"email": "a@example.com"}, key="t-2")
    assert fake.customers == {}
    assert fake.requests[-1].status == 0
    assert call(fake, "POST", "/v1/customers", {"email": "a@example.com"},
                key="t-2").status_code == 200


def test_slow_request_makes_a_concurrent_same_key_answer_409(fake: StripeFake) -> None:
    fake.slow_next(1, 1.0)
    first: queue.Queue[httpx.Response] = queue.Queue()
    thread = threading.Thread(target=lambda: first.put(
        call(fake, "POST", "/v1/customers", {"email": "a@example.com"}, key="s-1")))
    thread.start()
    deadline = time.monotonic() + 5
    while not fake.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    concurrent = call(fake, "POST", "/v1/customers", {"email": "a@example.com"}, key="s-1")
    assert concurrent.status_code == 409
    # Stripe's code for it (https://docs.stripe.com/error-codes/idempotency-key-in-use).
    assert (error(concurrent)["type"], error(concurrent)["code"]) == (
        "invalid_request_error", "idempotency_key_in_use")
    thread.join(timeout=5)
    assert first.get(timeout=1).status_code == 200
    after = call(fake, "POST", "/v1/customers", {"email": "a@example.com"}, key="s-1")
    assert after.headers["Idempotent-Replayed"] == "true"
    assert len(fake.customers) == 1


def test_a_500_after_execution_is_saved_and_replayed(fake: StripeFake) -> None:
    """Stripe saves a 500 once the endpoint began executing ("this includes 500 errors")
    and replays it for 24 hours; the change it made stays made."""
    customer, pm = saved_card(fake)
    fake.fail_next(1, 500, path="POST /v1/payment_intents", stage="after")
    first = pay(fake, customer, pm, key="k-after")
    assert (first.status_code, first.headers["Stripe-Should-Retry"]) == (500, "false")
    assert len(fake.payment_intents) == 1  # it was created
    again = pay(fake, customer, pm, key="k-after")
    assert (again.status_code, again.headers["Idempotent-Replayed"]) == (500, "true")
    assert again.json() == first.json()
    assert len(fake.payment_intents) == 1
    # Another key executes afresh.
    assert pay(fake, customer, pm, key="k-other").status_code == 200
    assert len(fake.payment_intents) == 2


def test_a_500_during_execution_is_saved_with_nothing_made(fake: StripeFake) -> None:
    customer, pm = saved_card(fake)
    fake.fail_next(1, 500, path="POST /v1/payment_intents", stage="during")
    assert pay(fake, customer, pm, key="k-during").status_code == 500
    assert fake.payment_intents == {}
    replay = pay(fake, customer, pm, key="k-during")
    assert (replay.status_code, replay.headers["Idempotent-Replayed"]) == (500, "true")
    assert fake.payment_intents == {}


def test_a_late_fault_waits_for_a_request_that_executes(fake: StripeFake) -> None:
    """A request refused before executing (a bad parameter) is not saved and does not use
    up the fault; a replay does not either."""
    customer, pm = saved_card(fake)
    assert pay(fake, customer, pm, key="k-ok").status_code == 200
    fake.fail_next(1, 500, path="POST /v1/payment_intents", stage="after")
    assert pay(fake, customer, pm, key="k-ok").status_code == 200  # a replay
    bad = call(fake, "POST", "/v1/payment_intents", {"amount": "x", "currency": "usd"},
               key="k-bad")
    assert bad.status_code == 400
    assert pay(fake, customer, pm, key="k-late").status_code == 500
    assert pay(fake, customer, pm, key="k-next").status_code == 200


def test_list_payment_intents_and_refunds(fake: StripeFake) -> None:
    customer, pm = saved_card(fake)
    ids = [pay(fake, customer, pm, capture="automatic", key=f"k{i}").json()["id"]
           for i in range(3)]
    listed = call(fake, "GET", f"/v1/payment_intents?customer={customer}&limit=2").json()
    assert (listed["object"], [p["id"] for p in listed["data"]], listed["has_more"]) == (
        "list", ids[:0:-1], True)
    rest = call(fake, "GET", f"/v1/payment_intents?customer={customer}&limit=2"
                f"&starting_after={ids[1]}").json()
    assert ([p["id"] for p in rest["data"]], rest["has_more"]) == ([ids[0]], False)
    other, _ = saved_card(fake)
    assert call(fake, "GET", f"/v1/payment_intents?customer={other}").json()["data"] == []
    assert call(fake, "GET", "/v1/payment_intents?limit=101").status_code == 400
    assert call(fake, "GET", "/v1/payment_intents?customer=cus_nope").status_code == 400
    assert call(fake, "GET", "/v1/payment_intents?nope=1").status_code == 400
    refund = call(fake, "POST", "/v1/refunds", {"payment_intent": ids[2], "amount": "100"})
    assert refund.status_code == 200
    refunds = call(fake, "GET", f"/v1/refunds?payment_intent={ids[2]}").json()["data"]
    assert [r["id"] for r in refunds] == [refund.json()["id"]]
    assert call(fake, "GET", f"/v1/refunds?payment_intent={ids[1]}").json()["data"] == []


# --- Webhooks -----------------------------------------------------------------------------


class Receiver:
    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.status = 200
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(outer.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def test_events_have_stripes_shape(fake: StripeFake) -> None:
    customer, pm = saved_card(fake)
    held = pay(fake, customer, pm, key="e-1").json()
    event = fake.events[-1]
    assert event["id"].startswith("evt_")
    assert (event["object"], event["type"], event["livemode"]) == (
        "event", "payment_intent.amount_capturable_updated", False)
    assert event["data"]["object"]["id"] == held["id"]
    assert event["data"]["object"]["amount_capturable"] == 1000
    assert event["request"]["idempotency_key"] == "e-1"
    assert isinstance(event["created"], int) and event["api_version"]
    fetched = call(fake, "GET", f"/v1/events/{event['id']}")
    assert fetched.json() == event


def test_deliver_signs_like_stripe(fake: StripeFake, receiver: Receiver) -> None:
    customer, pm = saved_card(fake)
    pay(fake, customer, pm)
    event = fake.events[-1]
    assert fake.deliver(event, receiver.url) == 200
    headers, body = receiver.received[-1]
    assert json.loads(body) == event
    assert headers["content-type"].startswith("application/json")
    # The SDK's own verifier accepts it; another secret does not.
    assert stripe.WebhookSignature.verify_header(body, headers["stripe-signature"],
                                                 fake.webhook_secret, tolerance=300)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(body, headers["stripe-signature"],
                                              "whsec_other", tolerance=300)
    assert fake.deliveries[-1].status == 200
    assert fake.deliveries[-1].event_id == event["id"]

    receiver.status = 400
    assert fake.deliver(event, receiver.url) == 400


def test_sign_matches_the_sdk(fake: StripeFake) -> None:
    payload = '{"id": "evt_1"}'
    expected = stripe.WebhookSignature.generate_signature_header(
        payload, fake.webhook_secret, timestamp=1_700_000_000)
    assert fake.sign(payload, timestamp=1_700_000_000) == expected
    assert fake.sign(payload.encode(), secret="whsec_x", timestamp=1) != fake.sign(
        payload, timestamp=1)


def test_auto_delivery(fake: StripeFake, receiver: Receiver) -> None:
    fake.webhook_url = receiver.url
    fake.auto_deliver = True
    customer, pm = saved_card(fake)  # setup_intent.succeeded (from complete_setup)
    pay(fake, customer, pm, capture="automatic")
    types = [json.loads(body)["type"] for _, body in receiver.received]
    assert types == ["setup_intent.succeeded", "payment_intent.succeeded"]
    assert [d.status for d in fake.deliveries] == [200, 200]


def test_delivery_is_off_by_default(fake: StripeFake, receiver: Receiver) -> None:
    fake.webhook_url = receiver.url
    customer, pm = saved_card(fake)
    pay(fake, customer, pm)
    assert len(fake.events) == 2
    assert receiver.received == []


# --- Lifecycle ----------------------------------------------------------------------------


def test_reset_forgets_state_but_keeps_keys(fake: StripeFake) -> None:
    saved_card(fake)
    fake.fail_next(5)
    key = fake.secret_key
    fake.reset()
    assert (fake.customers, fake.setup_intents, fake.payment_methods, fake.events,
            fake.requests) == ({}, {}, {}, [], [])
    assert fake.secret_key == key
    assert call(fake, "POST", "/v1/customers").status_code == 200  # faults gone too


def test_stop_releases_port_and_thread() -> None:
    fake = StripeFake().start()
    port = fake.port
    fake.timeout_next(1, 30.0)
    held: queue.Queue[BaseException | httpx.Response] = queue.Queue()

    def hold() -> None:
        try:
            held.put(call(fake, "POST", "/v1/customers", timeout=10))
        except httpx.HTTPError as exc:
            held.put(exc)

    threading.Thread(target=hold, daemon=True).start()
    deadline = time.monotonic() + 5
    while not fake.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    server_thread = fake._thread
    assert server_thread is not None and server_thread.is_alive()
    started = time.monotonic()
    fake.stop()
    held.get(timeout=5)  # the held answer was released, not left for 30 s
    assert time.monotonic() - started < 5
    assert not server_thread.is_alive()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass
    fake.stop()  # twice is fine


def test_standalone_fake_starts_serves_and_stops() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "coachgate.integrations.stripe.fake", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines: queue.Queue[str] = queue.Queue()
        assert proc.stdout is not None
        stdout = proc.stdout
        threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
        info = json.loads(lines.get(timeout=15))
        assert info["base_url"].startswith("http://127.0.0.1:")
        assert info["secret_key"].startswith("sk_test_")
        assert info["webhook_secret"].startswith("whsec_")
        client = stripe.StripeClient(info["secret_key"], base_addresses={
            "api": info["base_url"]}, max_network_retries=0)
        customer = client.v1.customers.create({"email": "a@example.com"})
        assert client.v1.customers.retrieve(customer.id).email == "a@example.com"
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=5)  # waits, and closes the pipes
        except subprocess.TimeoutExpired:  # pragma: no cover - never expected
            proc.kill()
            proc.communicate(timeout=5)
    assert proc.returncode == 0


@pytest.mark.parametrize(("currency", "good", "bad"), [
    ("isk", 500000, 500050),  # Stripe's "special cases": two-decimal, whole hundreds only
    ("ugx", 500000, 500001),
    ("kwd", 12340, 12345),  # three-decimal: last digit 0
    ("bhd", 5000, 5001),
])
def test_divisibility_is_enforced_on_payments_captures_and_refunds(
        fake: StripeFake, currency: str, good: int, bad: int) -> None:
    customer, pm = saved_card(fake)
    refused = pay(fake, customer, pm, bad, currency=currency)
    assert refused.status_code == 400
    body = error(refused)
    assert (body["type"], body["param"]) == ("invalid_request_error", "amount")
    assert body["message"].startswith("Invalid amount.")
    if currency in ("isk", "ugx"):
        assert body["code"] == "invalid_charge_amount_no_decimal_compatible"
        assert "evenly divisible by 100" in body["message"]
    assert fake.payment_intents == {}

    held = pay(fake, customer, pm, good, currency=currency).json()
    capture = f"/v1/payment_intents/{held['id']}/capture"
    odd = good - (bad - good)  # as far off the step below the hold as bad is above it
    partial = call(fake, "POST", capture, {"amount_to_capture": str(odd)})
    assert partial.status_code == 400
    assert (error(partial)["type"], error(partial)["param"]) == ("invalid_request_error",
                                                                 "amount_to_capture")
    assert fake.payment_intents[held["id"]]["status"] == "requires_capture"
    assert call(fake, "POST", capture).json()["amount_received"] == good

    part = call(fake, "POST", "/v1/refunds", {"payment_intent": held["id"],
                                             "amount": str(bad - good)})
    assert (part.status_code, error(part)["param"]) == (400, "amount")
    assert fake.refunds == {}


def test_mga_is_zero_decimal_and_huf_two_decimal_for_charges(fake: StripeFake) -> None:
    customer, pm = saved_card(fake)
    assert pay(fake, customer, pm, 5001, currency="mga").json()["amount"] == 5001
    assert pay(fake, customer, pm, 100050, currency="huf").json()["amount"] == 100050

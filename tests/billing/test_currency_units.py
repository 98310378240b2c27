"""Amounts in every kind of currency, from the offer to Stripe and back (docs/billing.md,
"Amounts a gateway can move"): the gateway converts ISO minor units to Stripe's unit and
back, the fake refuses what Stripe refuses, offers refuse prices the gateway cannot charge,
and settlement records exactly what Stripe takes. Real SDK, local fake, no mocks."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import stripe

from coachgate.billing import ledger, services
from coachgate.billing.gateways.base import AmountNotChargeable, PaymentRequest
from coachgate.billing.gateways.stripe import StripeGateway
from coachgate.billing.models import Payment, PaymentStatus, Settlement
from coachgate.catalog import services as catalog
from coachgate.integrations.stripe.fake import StripeFake
from coachgate.kit.errors import InvalidInput
from coachgate.scheduling import services as scheduling
from tests.factories import MONDAY, make_offer

START = MONDAY + timedelta(hours=10)
AUTH = START - timedelta(hours=24)
M = timedelta(minutes=1)


def saved_card(gateway: StripeGateway, fake: StripeFake) -> tuple[str, str]:
    customer = gateway.ensure_customer(user_id=1, email="s@example.com", existing_ref="")
    setup = gateway.start_card_setup(customer_ref=customer.ref, key="card:1")
    fake.complete_setup(setup.ref, "pm_card_visa")
    return customer.ref, gateway.card_setup(setup.ref).payment_method_ref


def request(card: tuple[str, str], amount: int, currency: str, key: str) -> PaymentRequest:
    return PaymentRequest(key=key, amount_minor=amount, currency=currency,
                          customer_ref=card[0], payment_method_ref=card[1])


# (currency, a price in ISO minor units, what Stripe must be sent for it)
CASES = [
    ("USD", 5000, 5000),  # 50.00 dollars
    ("JPY", 5000, 5000),  # ¥5000: zero-decimal on both sides
    ("KWD", 12300, 12300),  # 12.300 dinars: three decimals, last digit 0
    ("BHD", 20000, 20000),
    ("ISK", 5000, 500000),  # 5000 kr: ISO has no minor unit, Stripe counts hundredths
    ("UGX", 50000, 5000000),  # likewise
    ("MGA", 500000, 5000),  # 5000.00 ariary: ISO counts 1/100, Stripe whole ariary
    ("HUF", 500000, 500000),  # two decimals for charges (zero only for payouts)
]


@pytest.mark.parametrize(("currency", "price", "sent"), CASES)
def test_authorize_capture_refund_convert_both_ways(
        stripe_gateway: StripeGateway, stripe_fake: StripeFake, currency: str, price: int,
        sent: int) -> None:
    card = saved_card(stripe_gateway, stripe_fake)
    held = stripe_gateway.authorize(request(card, price, currency, "booking:1"))
    pi = stripe_fake.payment_intents[held.ref]
    assert (pi["amount"], pi["currency"]) == (sent, currency.lower())
    assert held.amount_minor == price  # amount_capturable, read back in ISO units
    half = price // 2
    captured = stripe_gateway.capture(ref=held.ref, amount_minor=half, currency=currency,
                                      key="booking:1")
    assert stripe_fake.payment_intents[held.ref]["amount_received"] == sent // 2
    assert captured.amount_minor == half  # amount_received, in ISO units
    fifth = price // 5
    refunded = stripe_gateway.refund(ref=held.ref, amount_minor=fifth, currency=currency,
                                     key="booking:1:refund:0")
    assert [r["amount"] for r in stripe_fake.refunds.values()] == [sent // 5]
    assert refunded.amount_minor == fifth


@pytest.mark.parametrize(("currency", "price", "sent"), CASES)
def test_charge_and_its_webhook_convert_both_ways(
        stripe_gateway: StripeGateway, stripe_fake: StripeFake, currency: str, price: int,
        sent: int) -> None:
    card = saved_card(stripe_gateway, stripe_fake)
    paid = stripe_gateway.charge(request(card, price, currency, "pack:1"))
    assert paid.amount_minor == price
    stripe_gateway.refund(ref=paid.ref, amount_minor=price, currency=currency,
                          key="pack:1:refund:0")
    for kind, fields in (("payment_intent.succeeded", ("amount", "amount_received")),
                         ("charge.refunded", ("amount", "amount_captured",
                                              "amount_refunded"))):
        event = next(e for e in stripe_fake.events if e["type"] == kind)
        assert all(event["data"]["object"][f] == sent for f in fields)  # Stripe's unit
        payload = stripe_fake.event_payload(event)
        parsed = stripe_gateway.parse_webhook(payload, {
            "Stripe-Signature": stripe_fake.sign(payload)})
        assert all(parsed.data[f] == price for f in fields)  # coachgate's unit


@pytest.mark.parametrize(("currency", "amount"), [("KWD", 12345), ("MGA", 12345),
                                                  ("BHD", 5005), ("IQD", 10000)])
def test_amounts_stripe_cannot_take_exactly_are_refused_before_sending(
        stripe_gateway: StripeGateway, stripe_fake: StripeFake, currency: str, amount: int
        ) -> None:
    card = saved_card(stripe_gateway, stripe_fake)
    with pytest.raises(AmountNotChargeable):
        stripe_gateway.authorize(request(card, amount, currency, "booking:1"))
    assert not [r for r in stripe_fake.requests if r.path == "/v1/payment_intents"]
    held = stripe_gateway.authorize(request(card, 20000, "KWD", "booking:2"))
    with pytest.raises(AmountNotChargeable):
        stripe_gateway.capture(ref=held.ref, amount_minor=10005, currency="KWD",
                               key="booking:2")
    assert stripe_fake.payment_intents[held.ref]["status"] == "requires_capture"


@pytest.mark.parametrize(("currency", "iso_amount"), [("ISK", 5000), ("MGA", 500000)])
def test_sending_iso_units_unchanged_is_what_the_fake_catches(
        stripe_gateway: StripeGateway, stripe_fake: StripeFake, currency: str,
        iso_amount: int) -> None:
    """What the gateway did before it converted: ISO units as they are. The fake answers
    like Stripe — refused for ISK (whole hundreds only) — or charges 100 × for MGA, which
    the converted path does not."""
    card = saved_card(stripe_gateway, stripe_fake)
    client = stripe.StripeClient(stripe_fake.secret_key,
                                 base_addresses={"api": stripe_fake.base_url})
    params: Any = {"amount": iso_amount + 1 if currency == "ISK" else iso_amount,
                   "currency": currency.lower(), "customer": card[0],
                   "payment_method": card[1], "confirm": True, "off_session": True}
    if currency == "ISK":
        with pytest.raises(stripe.InvalidRequestError) as caught:
            client.v1.payment_intents.create(params)
        assert (caught.value.http_status, caught.value.param, caught.value.code) == (
            400, "amount", "invalid_charge_amount_no_decimal_compatible")
    else:
        raw = client.v1.payment_intents.create(params)
        assert raw.amount == iso_amount  # 500000 whole ariary: 100 × the price
        held = stripe_gateway.authorize(request(card, iso_amount, currency, "booking:1"))
        assert stripe_fake.payment_intents[held.ref]["amount"] == iso_amount // 100


# --- offers ---------------------------------------------------------------------------


def offer_data(**overrides: Any) -> dict[str, Any]:
    return {"title": "Session", "price_minor": 5000, "currency": "USD", "duration_minutes": 60,
            "session_type": "video", "delivery": "jitsi", **overrides}


@pytest.mark.parametrize(("currency", "price", "field"), [
    ("KWD", 12345, "price_minor"), ("BHD", 5, "price_minor"), ("MGA", 12345, "price_minor"),
    ("IQD", 10000, "currency")])
def test_offers_refuse_prices_stripe_cannot_charge(stripe_gateway, coach, currency: str,
                                                   price: int, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        catalog.create_offer(coach, offer_data(currency=currency, price_minor=price))
    assert caught.value.details == {"field": field}
    offer = catalog.create_offer(coach, offer_data(currency="KWD", price_minor=12340))
    with pytest.raises(InvalidInput) as caught:
        catalog.update_offer(coach, offer.pk, {"price_minor": 12345})
    assert caught.value.details == {"field": "price_minor"}
    with pytest.raises(InvalidInput):  # 12340 MGA minor units: not whole ariary
        catalog.update_offer(coach, offer.pk, {"currency": "MGA"})
    offer.refresh_from_db()
    assert (offer.currency, offer.price_minor) == ("KWD", 12340)
    assert catalog.update_offer(coach, offer.pk, {"title": "Renamed"}).title == "Renamed"


def test_the_offline_gateway_takes_any_minor_unit(coach) -> None:
    offer = catalog.create_offer(coach, offer_data(currency="KWD", price_minor=12345))
    assert offer.price_minor == 12345
    assert catalog.create_offer(coach, offer_data(currency="IQD", price_minor=1)).pk


def test_the_offer_api_answers_422_naming_the_field(stripe_gateway, coach) -> None:
    from tests.clients import Api
    from tests.factories import token_for

    api = Api(token_for(coach))
    r = api.post("/offers", offer_data(currency="KWD", price_minor=12345))
    assert r.status_code == 422, r.content
    assert (r.json()["code"], r.json()["details"]) == ("invalid_input",
                                                      {"field": "price_minor"})


# --- settlement: the ledger records what Stripe takes -------------------------------------


@pytest.mark.parametrize(("currency", "price", "held", "charged", "taken"), [
    # price and charge in ISO minor units; held and taken: Stripe's amounts for them
    ("KWD", 5010, 5010, 2510, 2510),  # 2.505 KWD due → 2.510 (10 fils steps, half up)
    ("MGA", 1500, 15, 800, 8),  # 7.50 ariary due → 8 whole ariary
    ("ISK", 1001, 100100, 501, 50100),  # 500.5 kr due → 501 kr
    ("USD", 5001, 5001, 2501, 2501),  # 25.005 → 25.01, as always
])
def test_a_no_show_charges_exactly_what_the_ledger_records(
        stripe_gateway, stripe_fake, coach, student, now, django_capture_on_commit_callbacks,
        currency: str, price: int, held: int, charged: int, taken: int) -> None:
    from tests.billing.test_stripe_flow import save_card

    offer = make_offer(coach, currency=currency, price_minor=price)
    save_card(stripe_fake, student)
    with django_capture_on_commit_callbacks(execute=True):
        session = scheduling.book_session(student, offer.pk, START, now=now).session
    services.run_due(now=AUTH)
    services.mark_student_no_show(coach, session.pk, now=START + 21 * M)
    services.run_due(now=START + 21 * M)
    settled = Settlement.objects.get()
    assert settled.charge_minor == charged
    assert settled.charge_minor == settled.fee_minor + settled.payout_minor
    q = {"KWD": 10, "MGA": 100}.get(currency, 1)
    assert settled.fee_minor % q == 0 and settled.payout_minor % q == 0
    p = Payment.objects.get()
    assert (p.status, p.captured_minor) == (PaymentStatus.CAPTURED, charged)
    pi = stripe_fake.payment_intents[p.ref]
    assert (pi["amount"], pi["amount_received"]) == (held, taken)
    # The student's account: charged by settlement, paid by the capture, to the unit.
    assert ledger.balance(ledger.student_account(student.pk), currency) == 0


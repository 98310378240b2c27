"""A payment's gate run through Stripe's idempotency answers (the real gateway and SDK
against the fake, the real database): a 500 Stripe saved after it created the intent,
one saved with nothing created, and a key still in use by another run. Each ends with the
payment recorded once and money held once."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection

from coachgate.billing import services
from coachgate.billing.models import Payment, PaymentStatus
from coachgate.integrations.stripe.fake import StripeFake
from coachgate.scheduling import services as scheduling
from tests.factories import MONDAY

pytestmark = pytest.mark.django_db(transaction=True)

START = MONDAY + timedelta(hours=10)
AUTH = START - timedelta(hours=24)


def booked_payment(fake: StripeFake, student: Any, offer: Any, now: Any) -> Payment:
    view = services.start_card_setup(student)
    fake.complete_setup(view.setup_ref, "pm_card_visa")
    assert services.confirm_card_setup(student).has_card
    scheduling.book_session(student, offer.pk, START, now=now)
    return Payment.objects.get()


def creates(fake: StripeFake) -> list[tuple[str | None, int, bool]]:
    return [(r.idempotency_key, r.status, r.replayed) for r in fake.requests
            if (r.method, r.path) == ("POST", "/v1/payment_intents")]


def test_a_saved_500_after_the_intent_was_made_records_that_intent(
        stripe_gateway, stripe_fake, offer, student, now) -> None:
    payment = booked_payment(stripe_fake, student, offer, now)
    stripe_fake.fail_next(1, 500, path="POST /v1/payment_intents", stage="after")
    assert services.run_payment(payment.pk, now=AUTH, owner="w1")
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.AUTHORIZED
    assert [payment.ref] == list(stripe_fake.payment_intents)
    assert [s for _, s, _ in creates(stripe_fake)] == [500]  # no second intent asked for
    assert stripe_fake.payment_intents[payment.ref]["status"] == "requires_capture"


def test_a_saved_500_with_nothing_made_is_paid_under_a_new_key(
        stripe_gateway, stripe_fake, offer, student, now) -> None:
    payment = booked_payment(stripe_fake, student, offer, now)
    stripe_fake.fail_next(1, 500, path="POST /v1/payment_intents", stage="during")
    assert services.run_payment(payment.pk, now=AUTH, owner="w1")
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.AUTHORIZED
    assert [payment.ref] == list(stripe_fake.payment_intents)
    keys = [k for k, _, _ in creates(stripe_fake)]
    assert len(keys) == 2 and keys[1] == f"{keys[0]}:attempt-2"


def test_a_run_that_meets_a_key_in_use_waits_and_records_the_same_intent(
        stripe_gateway, stripe_fake, offer, student, now) -> None:
    """The first run's call is slow; its lease lapses and a second run plans the same
    call with the same key while the first is still executing at Stripe: 409
    idempotency_key_in_use, then (after the SDK's retries and the gateway's wait) the
    same key again, which replays the first run's intent."""
    payment = booked_payment(stripe_fake, student, offer, now)
    stripe_fake.slow_next(1, 2.5, path="POST /v1/payment_intents")

    def first_run() -> None:
        try:
            services.run_payment(payment.pk, now=AUTH, owner="slow")
        finally:
            connection.close()

    slow = threading.Thread(target=first_run)
    slow.start()
    deadline = time.monotonic() + 5
    while not creates(stripe_fake):
        assert time.monotonic() < deadline, "the first run never called Stripe"
        time.sleep(0.01)
    lapsed = AUTH + timedelta(seconds=stripe_gateway.call_budget_s + 600)
    assert services.run_payment(payment.pk, now=lapsed, owner="second")
    slow.join(15)
    assert not slow.is_alive()
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.AUTHORIZED
    assert list(stripe_fake.payment_intents) == [payment.ref]  # money held once
    answers = creates(stripe_fake)
    assert {k for k, _, _ in answers} == {answers[0][0]}  # one key throughout
    assert (409, False) in [(s, r) for _, s, r in answers]
    assert answers[-1][1:] == (200, True)

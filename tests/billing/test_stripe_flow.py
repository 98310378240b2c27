"""The Stripe path end to end through billing's services and API: the official SDK talks to
the local fake Stripe (no mocks). Card saved at booking, authorised a day before, captured
(fully or partly) or released at settlement, declines notified, webhooks verified and
stored once."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client

from coachgate.billing import services
from coachgate.billing.models import (
    BillingProfile,
    Payment,
    PaymentStatus,
    Settlement,
    WebhookEvent,
)
from coachgate.integrations.stripe.fake import StripeFake
from coachgate.kit.errors import PaymentMethodRequired
from coachgate.notify.models import Notification
from coachgate.scheduling import services as scheduling
from tests.factories import MONDAY

START = MONDAY + timedelta(hours=10)
END = START + timedelta(hours=1)
AUTH = START - timedelta(hours=24)
M = timedelta(minutes=1)


def save_card(fake: StripeFake, student: Any, card: str = "pm_card_visa") -> None:
    view = services.start_card_setup(student)
    assert view.gateway == "stripe" and view.client_secret.startswith(view.setup_ref)
    fake.complete_setup(view.setup_ref, card)  # what Stripe.js does in the browser
    assert services.confirm_card_setup(student).has_card


@pytest.fixture
def booked(stripe_gateway, stripe_fake, offer, student, now,
           django_capture_on_commit_callbacks) -> dict[str, Any]:
    save_card(stripe_fake, student)
    with django_capture_on_commit_callbacks(execute=True):
        session = scheduling.book_session(student, offer.pk, START, now=now).session
    return {"session": session, "fake": stripe_fake}


def intent(fake: StripeFake, payment: Payment) -> dict[str, Any]:
    return fake.payment_intents[payment.ref]


def test_booking_a_paid_offer_needs_a_saved_card(stripe_gateway, offer, student, now) -> None:
    with pytest.raises(PaymentMethodRequired) as exc:
        scheduling.book_session(student, offer.pk, START, now=now)
    assert exc.value.details == {"setup": "/api/v1/billing/card"}


def test_authorise_then_capture_in_full(booked) -> None:
    fake = booked["fake"]
    services.run_due(now=AUTH - M)
    assert fake.payment_intents == {}  # not yet: holds last only days
    services.run_due(now=AUTH)
    p = Payment.objects.get()
    assert p.status == PaymentStatus.AUTHORIZED
    pi = intent(fake, p)
    assert (pi["status"], pi["amount"], pi["capture_method"]) == ("requires_capture", 5000,
                                                                  "manual")
    services.run_due(now=END)  # settles, then the payment gate captures
    p.refresh_from_db()
    assert (p.status, p.captured_minor) == (PaymentStatus.CAPTURED, 5000)
    assert intent(fake, p)["amount_received"] == 5000
    keys = [r.idempotency_key for r in fake.requests if r.method == "POST"]
    assert all(keys) and len(keys) == len(set(keys))  # every call had its own key


def test_no_show_captures_half_and_coach_no_show_releases(booked, coach, student) -> None:
    fake, session = booked["fake"], booked["session"]
    services.run_due(now=AUTH)
    services.mark_student_no_show(coach, session.pk, now=START + 21 * M)
    services.run_due(now=START + 21 * M)
    p = Payment.objects.get()
    assert (p.status, p.captured_minor) == (PaymentStatus.CAPTURED, 2500)
    pi = intent(fake, p)
    assert (pi["status"], pi["amount_received"]) == ("succeeded", 2500)


def test_coach_no_show_cancels_the_hold(booked, student) -> None:
    fake, session = booked["fake"], booked["session"]
    services.run_due(now=AUTH)
    services.report_coach_no_show(student, session.pk, now=START + 25 * M)
    services.run_due(now=START + 25 * M)
    p = Payment.objects.get()
    assert p.status == PaymentStatus.CANCELLED and p.captured_minor == 0
    assert intent(fake, p)["status"] == "canceled"


def test_a_declined_card_notifies_the_student_and_a_new_card_is_tried(
        stripe_gateway, stripe_fake, offer, student, now,
        django_capture_on_commit_callbacks) -> None:
    save_card(stripe_fake, student, "pm_card_chargeDeclined")
    with django_capture_on_commit_callbacks(execute=True):
        scheduling.book_session(student, offer.pk, START, now=now)
    services.run_due(now=AUTH)
    p = Payment.objects.get()
    assert (p.status, p.decline_code) == (PaymentStatus.ACTION_NEEDED, "card_declined")
    assert p.next_due_at == AUTH + services.PAYMENT_ACTION_RETRY
    note = Notification.objects.get(template="payment_problem", channel="email")
    assert note.context["code"] == "card_declined" and not note.context["authentication"]
    save_card(stripe_fake, student, "pm_card_visa")  # the student updates the card
    p.refresh_from_db()
    assert p.next_due_at is not None and p.next_due_at <= AUTH + M
    services.run_due(now=AUTH + M)
    p.refresh_from_db()
    assert p.status == PaymentStatus.AUTHORIZED


def test_authentication_required_is_asked_of_the_student(
        stripe_gateway, stripe_fake, offer, student, now,
        django_capture_on_commit_callbacks) -> None:
    save_card(stripe_fake, student, "pm_card_authenticationRequired")
    with django_capture_on_commit_callbacks(execute=True):
        scheduling.book_session(student, offer.pk, START, now=now)
    services.run_due(now=AUTH)
    assert Payment.objects.get().decline_code == "authentication_required"
    note = Notification.objects.get(template="payment_problem", channel="email")
    assert note.context["authentication"] is True


def test_a_lapsed_hold_is_charged_at_settlement(booked) -> None:
    fake = booked["fake"]
    services.run_due(now=AUTH)
    first = Payment.objects.get().ref
    fake.expire_authorization(first)
    services.run_due(now=END)
    p = Payment.objects.get()
    assert (p.status, p.captured_minor) == (PaymentStatus.CAPTURED, 5000)
    assert p.ref != first and intent(fake, p)["amount_received"] == 5000


def test_gateway_outage_is_retried_without_moving_money_twice(booked) -> None:
    fake = booked["fake"]
    services.run_due(now=AUTH)
    fake.fail_next(20, status=503)
    services.run_due(now=END)
    p = Payment.objects.get()
    assert p.status == PaymentStatus.AUTHORIZED and p.capture_minor == 5000
    assert p.next_due_at is not None and p.next_due_at > END and p.last_error
    fake.reset_faults()
    services.run_due(now=p.next_due_at)
    services.run_due(now=p.next_due_at + M)  # a second run changes nothing
    p.refresh_from_db()
    assert (p.status, p.captured_minor) == (PaymentStatus.CAPTURED, 5000)
    assert intent(fake, p)["amount_received"] == 5000
    assert Settlement.objects.count() == 1


def _post_webhook(fake: StripeFake, event: dict[str, Any], secret: str | None = None) -> Any:
    payload = json.dumps(event).encode()
    return Client().post("/api/v1/billing/webhooks/stripe", data=payload,
                         content_type="application/json",
                         HTTP_STRIPE_SIGNATURE=fake.sign(payload, secret=secret))


def test_webhooks_are_verified_stored_once_and_processed(
        booked, django_capture_on_commit_callbacks) -> None:
    fake = booked["fake"]
    services.run_due(now=AUTH)
    p = Payment.objects.get()
    fake.expire_authorization(p.ref)
    event = next(e for e in reversed(fake.events) if e["type"] == "payment_intent.canceled")
    r = _post_webhook(fake, event, secret="whsec_wrong")
    assert r.status_code == 400 and r.json()["code"] == "invalid_signature"
    assert not WebhookEvent.objects.exists()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        r = _post_webhook(fake, event)
    assert r.status_code == 200 and r.json() == {"received": True, "duplicate": False}
    again = _post_webhook(fake, event)
    assert again.json() == {"received": True, "duplicate": True}
    assert WebhookEvent.objects.count() == 1
    row = WebhookEvent.objects.get()
    assert row.status == "received" and len(callbacks) == 1  # processed by a task
    assert services.process_webhook(row.pk) == "processed"
    p.refresh_from_db()
    assert (p.status, p.ref) == (PaymentStatus.PENDING, "")  # authorise again or charge
    assert services.process_webhook(row.pk) == "done"  # once


def test_setup_intent_webhook_saves_the_card(stripe_gateway, stripe_fake, student) -> None:
    view = services.start_card_setup(student)
    stripe_fake.complete_setup(view.setup_ref, "pm_card_visa")
    event = next(e for e in reversed(stripe_fake.events)
                 if e["type"] == "setup_intent.succeeded")
    assert _post_webhook(stripe_fake, event).status_code == 200
    row = WebhookEvent.objects.get()
    assert services.process_webhook(row.pk) == "processed"
    assert BillingProfile.objects.get(user=student).payment_method_ref.startswith("pm_")

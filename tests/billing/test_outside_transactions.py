"""Who commits (issue 9, item 12): every payment gateway call runs outside database
transactions, so a slow or hung gateway never holds a lock (on SQLite: the one write lock
every booking needs).

Every test in the suite runs with ``tests.gateway_guard`` (autouse): any gateway method
called inside a transaction fails the test. These tests are ``transaction=True``, so no
test transaction surrounds them: the code under test commits for real, on-commit wake-ups
run, and a second connection sees exactly what a second worker or request would.
"""

from __future__ import annotations

import copy
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, connections, transaction
from django.db.utils import OperationalError

from coachgate.billing import services
from coachgate.billing.gateways.base import PaymentRequest
from coachgate.billing.gateways.offline import OfflineGateway
from coachgate.billing.models import BillingProfile, JournalEntry, Payment, PaymentStatus
from coachgate.integrations.stripe.fake import StripeFake
from coachgate.packs import services as packs
from coachgate.scheduling import services as scheduling
from tests.factories import MONDAY
from tests.gateway_guard import GatewayCalledInTransaction
from tests.packs.helpers import make_pack_offer, slot

pytestmark = pytest.mark.django_db(transaction=True)

START = MONDAY + timedelta(hours=10)
END = START + timedelta(hours=1)
AUTH = START - timedelta(hours=24)
M = timedelta(minutes=1)


def save_card(fake: StripeFake, student: Any, card: str = "pm_card_visa") -> None:
    view = services.start_card_setup(student)
    fake.complete_setup(view.setup_ref, card)
    assert services.confirm_card_setup(student).has_card


def test_the_guard_fails_a_gateway_call_inside_a_transaction() -> None:
    request = PaymentRequest(key="booking:1", amount_minor=100, currency="USD",
                             customer_ref="", payment_method_ref="offline")
    with transaction.atomic(), pytest.raises(GatewayCalledInTransaction):
        OfflineGateway().authorize(request)
    assert OfflineGateway().authorize(request).status == "authorized"  # outside: fine


def test_card_setup_booking_authorise_and_capture_call_stripe_outside_transactions(
        stripe_gateway, stripe_fake, offer, student, coach, now) -> None:
    save_card(stripe_fake, student)
    assert BillingProfile.objects.get(user=student).payment_method_ref.startswith("pm_")
    session = scheduling.book_session(student, offer.pk, START, now=now).session
    services.run_due(now=AUTH)
    p = Payment.objects.get()
    assert (p.status, p.lease_owner, p.lease_until) == (PaymentStatus.AUTHORIZED, "", None)
    services.mark_student_no_show(coach, session.pk, now=START + 21 * M)
    services.run_due(now=START + 21 * M)
    p.refresh_from_db()
    assert (p.status, p.captured_minor, p.next_due_at) == (PaymentStatus.CAPTURED, 2500, None)
    assert stripe_fake.payment_intents[p.ref]["amount_received"] == 2500
    assert JournalEntry.objects.filter(key=f"capture:{p.key}").exists()


def test_a_lapsed_hold_is_charged_in_the_same_run(stripe_gateway, stripe_fake, offer,
                                                  student, now) -> None:
    save_card(stripe_fake, student)
    scheduling.book_session(student, offer.pk, START, now=now)
    services.run_due(now=AUTH)
    first = Payment.objects.get().ref
    stripe_fake.expire_authorization(first)
    services.run_due(now=END)  # settles; the capture finds the hold gone and charges
    p = Payment.objects.get()
    assert (p.status, p.captured_minor) == (PaymentStatus.CAPTURED, 5000)
    assert p.ref != first and p.declines == 0 and p.lease_owner == ""


def test_a_pack_bought_with_stripe_is_charged_and_refunded_outside_transactions(
        stripe_gateway, stripe_fake, coach, student, now) -> None:
    save_card(stripe_fake, student)
    pack = packs.buy_pack(student, make_pack_offer(coach).pk, now=now)
    services.run_due(now=now)
    p = Payment.objects.get(key=f"pack:{pack.pk}")
    assert (p.status, p.captured_minor) == (PaymentStatus.CAPTURED, 20000)
    booking = packs.book_from_pack(student, pack.pk, slot(0), now=now)
    no_show_at = booking.session.starts_at + 25 * M
    services.mark_student_no_show(coach, booking.session_id, now=no_show_at)
    services.run_due(now=no_show_at)  # half of the session's 5000 goes back to the student
    p.refresh_from_db()
    assert (p.refund_minor, p.refunded_minor, p.next_due_at) == (2500, 2500, None)
    refunds = [r for r in stripe_fake.requests if r.path == "/v1/refunds"]
    assert len(refunds) == 1 and refunds[0].status == 200


def _second_connection(lock_wait_s: float) -> Any:
    """Another connection to the test database, as another request or worker has, that
    waits at most ``lock_wait_s`` for a lock."""
    default = connections["default"]
    settings_dict = copy.deepcopy(default.settings_dict)
    if default.vendor == "sqlite":
        settings_dict["OPTIONS"]["timeout"] = lock_wait_s
    other = default.__class__(settings_dict, alias="second")
    if connection.vendor == "postgresql":
        with other.cursor() as cursor:
            cursor.execute(f"SET lock_timeout = '{int(lock_wait_s * 1000)}ms'")
    return other


def test_a_slow_stripe_call_holds_no_lock(stripe_gateway, stripe_fake, offer, student,
                                          now) -> None:
    """Measured before the fix: a 3 s Stripe delay held an unrelated write for 2.35 s."""
    save_card(stripe_fake, student)
    scheduling.book_session(student, offer.pk, START, now=now)
    payment = Payment.objects.get()
    stripe_fake.slow_next(1, 2.0, path="/v1/payment_intents")
    calls_before = len(stripe_fake.requests)

    def run_gate() -> None:
        try:
            services.run_due(now=AUTH)
        finally:
            connection.close()  # this thread's own connection

    gate = threading.Thread(target=run_gate)
    gate.start()
    other = _second_connection(lock_wait_s=0.3)
    try:
        deadline = time.monotonic() + 5
        while not any(r.path == "/v1/payment_intents"
                      for r in stripe_fake.requests[calls_before:]):
            assert time.monotonic() < deadline, "the payment gate never called Stripe"
            time.sleep(0.02)
        # Stripe is answering slowly now. Another writer gets through at once: it writes
        # the very payment row whose call is in flight.
        with other.cursor() as cursor:
            started = time.monotonic()
            try:
                if connection.vendor == "sqlite":
                    cursor.execute("BEGIN IMMEDIATE")  # takes the write lock, or waits
                cursor.execute("UPDATE billing_payment SET attempts = attempts WHERE id = %s",
                               [payment.pk])
                if connection.vendor == "sqlite":
                    cursor.execute("COMMIT")
            except OperationalError as exc:
                pytest.fail(f"a write waited for the Stripe call: {exc}")
            assert time.monotonic() - started < 0.3
        assert gate.is_alive()  # the call was still in flight throughout
    finally:
        other.close()
        gate.join(10)
    assert not gate.is_alive()
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.AUTHORIZED and payment.lease_owner == ""


def test_a_crash_between_the_call_and_its_record_replays_the_same_call(
        stripe_gateway, stripe_fake, offer, student, now) -> None:
    """The worker dies after Stripe answered and before the answer was recorded: the row
    still says what it said, so the next run (once the lease lapsed) plans the same call
    with the same idempotency key, and Stripe replays its first answer."""
    save_card(stripe_fake, student)
    scheduling.book_session(student, offer.pk, START, now=now)
    payment = Payment.objects.get()
    assert services.run_payment(payment.pk, now=AUTH, owner="dies")
    # Undo what that run recorded, to stand for a run that died right after its call:
    first = Payment.objects.get().ref
    Payment.objects.filter(pk=payment.pk).update(
        status=PaymentStatus.PENDING, ref="", lease_owner="dies",
        lease_until=AUTH + timedelta(seconds=90), next_due_at=AUTH)
    # While the dead run's lease lasts, nobody else calls.
    assert services.run_payment(payment.pk, now=AUTH + timedelta(seconds=10), owner="next")
    assert Payment.objects.get().status == PaymentStatus.PENDING
    later = AUTH + timedelta(minutes=2)
    assert services.run_payment(payment.pk, now=later, owner="next")
    p = Payment.objects.get()
    assert (p.status, p.ref, p.lease_owner) == (PaymentStatus.AUTHORIZED, first, "")
    creates = [r for r in stripe_fake.requests if r.method == "POST"
               and r.path == "/v1/payment_intents"]
    assert len(creates) == 2 and creates[1].replayed  # one PaymentIntent, answered twice
    assert len(stripe_fake.payment_intents) == 1

"""Billing's entry points open durable transactions (issue 9, item 13, billing's part): a
caller that runs one inside its own transaction is a nesting mistake (the entry point
would no longer commit what it promises, and a gateway call planned after it would run
inside the caller's transaction), and it fails at once instead of in production."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction

from coachgate.billing import services
from coachgate.billing.models import Payment
from coachgate.scheduling import services as scheduling
from tests.factories import MONDAY, coach_profile

START = MONDAY + timedelta(hours=10)
NESTED = "durable atomic block cannot be nested"


def nested(call: Callable[[], Any]) -> None:
    with transaction.atomic(), pytest.raises(RuntimeError, match=NESTED):
        call()


def test_outcome_and_evidence_entry_points_refuse_to_nest(coach, student, offer, now) -> None:
    session = scheduling.book_session(student, offer.pk, START, now=now).session
    late = START + timedelta(minutes=25)
    nested(lambda: services.complete(coach, session.pk, now=late))
    nested(lambda: services.mark_student_no_show(coach, session.pk, now=late))
    nested(lambda: services.report_coach_no_show(student, session.pk, now=late))
    nested(lambda: services.record_meeting_event(coach, session.pk, kind="started",
                                                 at=START, now=late))
    services.complete(coach, session.pk, now=late)  # on its own: fine


def test_money_entry_points_refuse_to_nest(admin, coach, student, offer, now,
                                          django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        scheduling.book_session(student, offer.pk, START, now=now)
    payment = Payment.objects.get()
    nested(lambda: services.run_payment(payment.pk, now=now, owner="test"))
    nested(lambda: services.record_payout(admin, coach_profile(coach).pk, currency="USD",
                                          amount_minor=1, reference="t-1"))
    nested(lambda: services.start_card_setup(student))
    nested(lambda: services.process_webhook(1))
    # confirm_card_setup and receive_webhook ask the gateway before their transaction:
    # nested, the gateway guard (tests/gateway_guard.py) fails them first.


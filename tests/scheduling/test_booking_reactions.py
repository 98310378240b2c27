"""A booking commits with everything it needs or not at all (issue 10): its access row, its
charge, payment and settlement gate, its confirmation, and the task rows that wake them,
all written in the booking's transaction by booking_made's receivers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tasks_db.models import DBTaskResult

from coachgate.access.models import SessionAccess
from coachgate.billing.models import BookingCharge, Payment, SessionBilling
from coachgate.kit import clock
from coachgate.kit.errors import BookingNotCompleted, SlotTaken
from coachgate.notify.models import Notification
from coachgate.scheduling import services
from coachgate.scheduling.events import booking_made
from coachgate.scheduling.models import Booking, Session, SessionEvent
from tests.clients import Api
from tests.factories import MONDAY, make_coach, make_offer, make_student, token_for

NINE = MONDAY.replace(hour=9)


def every_row() -> dict[str, int]:
    return {m.__name__: m.objects.count() for m in (
        Session, Booking, SessionEvent, SessionAccess, BookingCharge, Payment, SessionBilling,
        Notification, DBTaskResult)}


def task_paths() -> list[str]:
    return sorted(DBTaskResult.objects.values_list("task_path", flat=True))


@pytest.fixture
def failing_receiver() -> Iterator[list[Any]]:
    calls: list[Any] = []

    def explode(sender: Any, *, booking: Booking, **kwargs: Any) -> None:
        calls.append(booking.pk)
        raise RuntimeError("a reaction broke")

    booking_made.connect(explode, dispatch_uid="test.explode")
    try:
        yield calls
    finally:
        booking_made.disconnect(dispatch_uid="test.explode")


def test_a_booking_is_written_with_all_its_reactions_before_anything_commits(
        offer, student, now, django_capture_on_commit_callbacks):
    # No on-commit callback runs here (the test's transaction never commits): whatever
    # exists, the booking's own transaction wrote.
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        booking = services.book_session(student, offer.pk, NINE, now=now)
    session = booking.session
    access = SessionAccess.objects.get(pk=session.pk)
    assert (access.window_start, access.window_end) <= (NINE, NINE + timedelta(hours=2))
    assert access.next_due_at is not None and not access.discord
    charge = BookingCharge.objects.get(booking=booking)
    assert (charge.price_minor, charge.currency, charge.funded_by) == (5000, "USD", "")
    payment = Payment.objects.get(key=f"booking:{booking.pk}")
    assert (payment.amount_minor, payment.student_id) == (5000, student.pk)
    gate = SessionBilling.objects.get(session=session)
    assert gate.next_due_at == session.ends_at and gate.settled_at is None
    assert sorted(Notification.objects.filter(key=f"booked:{booking.pk}")
                  .values_list("channel", flat=True)) == ["discord_dm", "email"]
    # The tasks that wake each of them: the access gate, the outbox (one wake-up for
    # both confirmations, half a second on) and billing's wake-ups (the payment's
    # authorisation and the settlement at the end).
    assert task_paths() == sorted([
        "coachgate.access.tasks.converge_session",
        "coachgate.billing.tasks.run_due", "coachgate.billing.tasks.run_due",
        "coachgate.notify.tasks.send_due"])
    send = DBTaskResult.objects.get(task_path="coachgate.notify.tasks.send_due")
    assert send.args_kwargs == {"args": [], "kwargs": {}}
    assert timedelta(0) < send.run_after - now <= timedelta(seconds=1)
    converge = DBTaskResult.objects.get(task_path="coachgate.access.tasks.converge_session")
    assert converge.args_kwargs == {"args": [session.pk], "kwargs": {}}
    assert converge.run_after == access.next_due_at
    # What is left for after the commit: the session event for listeners, no task.
    assert len(callbacks) == 1


def test_the_reactions_add_few_statements_to_a_booking(offer, student, now):
    services.book_session(student, offer.pk, NINE, now=now)  # warm: first use of the offer
    other = make_student("b@test.example")
    with CaptureQueriesContext(connection) as q:
        services.book_session(other, offer.pk, NINE + timedelta(hours=1), now=now)
    # The booking itself (offer, sessions, session, booking, event) and one INSERT per
    # reaction row kind plus one read and one write for every task row: a repair path
    # that reads before it writes would need three times as many.
    writes = [x["sql"] for x in q.captured_queries if x["sql"].startswith("INSERT")]
    assert len(writes) == 9, writes
    assert len(q.captured_queries) <= 18, [x["sql"][:80] for x in q.captured_queries]


def test_a_failing_reaction_undoes_the_booking(offer, student, now, failing_receiver):
    before = every_row()
    with pytest.raises(BookingNotCompleted) as caught:
        services.book_session(student, offer.pk, NINE, now=now)
    assert caught.value.status == 503 and caught.value.code == "booking_not_completed"
    assert failing_receiver, "the receiver ran after the booking row existed"
    assert every_row() == before
    # The slot is still free: once the reaction works, the same booking goes through.
    booking_made.disconnect(dispatch_uid="test.explode")
    assert services.book_session(student, offer.pk, NINE, now=now).session.starts_at == NINE


def test_a_failing_reaction_answers_503_over_http(offer, student, failing_receiver):
    before = every_row()
    start = (clock.now() + timedelta(days=2)).replace(hour=10, minute=0, second=0,
                                                      microsecond=0)  # the API's real now
    r = Api(token_for(student)).post("/bookings",
                                     {"offer_id": offer.pk, "start": start.isoformat()})
    assert r.status_code == 503, r.json_body
    assert r.json_body["code"] == "booking_not_completed"
    assert "nothing was booked" in r.json_body["message"]
    assert every_row() == before


def test_a_reaction_refusing_with_a_business_error_is_passed_on(offer, student, now):
    def refuse(sender: Any, **kwargs: Any) -> None:
        raise SlotTaken("held elsewhere")

    booking_made.connect(refuse, dispatch_uid="test.refuse")
    try:
        with pytest.raises(SlotTaken, match="held elsewhere"):
            services.book_session(student, offer.pk, NINE, now=now)
    finally:
        booking_made.disconnect(dispatch_uid="test.refuse")
    assert not Booking.objects.exists()


def test_a_second_seat_of_a_group_session_updates_the_rows_of_the_first(coach, now):
    group = make_offer(coach, capacity=3)
    first = services.book_session(make_student("g1@test.example"), group.pk, NINE, now=now)
    second = services.book_session(make_student("g2@test.example"), group.pk, NINE, now=now)
    assert first.session_id == second.session_id
    assert SessionAccess.objects.filter(pk=first.session_id).count() == 1
    assert SessionBilling.objects.filter(session_id=first.session_id).count() == 1
    assert set(BookingCharge.objects.values_list("booking_id", flat=True)) == {
        first.pk, second.pk}
    assert Payment.objects.filter(key__in=[f"booking:{first.pk}",
                                           f"booking:{second.pk}"]).count() == 2
    assert Notification.objects.filter(key=f"booked:{second.pk}").count() == 2


def test_wake_ups_for_the_same_moment_are_written_once(offer, admin, now):
    # Two coaches' sessions at the same hour end at the same moment: billing needs one
    # wake-up for it (whose run settles every gate due by then), not one per session.
    other = make_offer(make_coach("second-coach@test.example", admin=admin))
    a = services.book_session(make_student("w1@test.example"), offer.pk, NINE, now=now)
    b = services.book_session(make_student("w2@test.example"), other.pk, NINE, now=now)
    assert a.session.ends_at == b.session.ends_at
    assert SessionBilling.objects.filter(next_due_at=a.session.ends_at).count() == 2
    assert DBTaskResult.objects.filter(task_path="coachgate.billing.tasks.run_due",
                                       run_after=a.session.ends_at).count() == 1
    # Access runs each session on its own: one task per session. Both confirmations of
    # the same instant share the outbox's wake-up.
    assert DBTaskResult.objects.filter(
        task_path="coachgate.access.tasks.converge_session").count() == 2
    assert DBTaskResult.objects.filter(task_path="coachgate.notify.tasks.send_due").count() == 1

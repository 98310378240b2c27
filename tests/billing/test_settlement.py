"""Settlement through the services, with the offline gateway and ``now`` passed in."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db.models import Sum

from coachgate.accounts.models import User
from coachgate.billing import ledger, services
from coachgate.billing.models import (
    BookingCharge,
    JournalEntry,
    LedgerLine,
    Payment,
    PaymentStatus,
    SessionBilling,
    Settlement,
)
from coachgate.billing.services import settlement as settlement_module
from coachgate.kit.errors import (
    AlreadySettled,
    Forbidden,
    InvalidInput,
    InvalidTransition,
    NotFound,
    OutcomeTooEarly,
    ParticipantAttended,
)
from coachgate.notify.models import Notification
from coachgate.scheduling import services as scheduling
from coachgate.scheduling.models import Session
from tests.factories import MONDAY, make_coach, make_offer, make_student

START = MONDAY + timedelta(hours=10)  # 10:00 London = 10:00 UTC in early March
END = START + timedelta(hours=1)
M = timedelta(minutes=1)


def assert_ledger_balanced() -> None:
    for entry in JournalEntry.objects.all():
        total = entry.lines.aggregate(t=Sum("amount_minor"))["t"]
        assert total == 0, f"{entry.key} does not balance"


@pytest.fixture
def book(django_capture_on_commit_callbacks: Any, now: datetime
         ) -> Callable[..., Session]:
    """Book through scheduling and let the on-commit receivers run (billing's included)."""

    def _book(student: User, offer_id: int, start: datetime = START,
              at: datetime | None = None) -> Session:
        with django_capture_on_commit_callbacks(execute=True):
            return scheduling.book_session(student, offer_id, start, now=at or now).session

    return _book


def test_booking_records_price_payment_and_gate(offer, student, book, now) -> None:
    session = book(student, offer.pk)
    booking = session.bookings.get()
    charge = BookingCharge.objects.get(booking=booking)
    assert (charge.price_minor, charge.currency, charge.funded_by) == (5000, "USD", "")
    payment = Payment.objects.get(key=f"booking:{booking.pk}")
    assert payment.status == PaymentStatus.PENDING
    assert payment.authorize_at == START - timedelta(hours=24) == payment.next_due_at
    assert SessionBilling.objects.get(session=session).next_due_at == END


def test_card_is_authorised_a_day_before_and_captured_at_the_scheduled_end(
        offer, student, coach, book) -> None:
    session = book(student, offer.pk)
    payment = Payment.objects.get()
    services.run_due(now=START - timedelta(hours=24, seconds=1))
    assert Payment.objects.get().status == PaymentStatus.PENDING  # not yet
    services.run_due(now=START - timedelta(hours=24))
    payment.refresh_from_db()
    assert (payment.status, payment.ref) == (PaymentStatus.AUTHORIZED, f"off_{payment.key}")

    assert services.run_due(now=END - timedelta(seconds=1)).sessions == 0
    assert not Settlement.objects.exists()
    report = services.run_due(now=END)
    assert report.sessions == 1
    s = Settlement.objects.get()
    assert (s.outcome, s.charge_minor, s.fee_minor, s.payout_minor) == ("completed", 5000, 500,
                                                                        4500)
    assert Session.objects.get(pk=session.pk).status == "completed"
    payment.refresh_from_db()
    assert (payment.status, payment.captured_minor) == (PaymentStatus.CAPTURED, 5000)
    coach_id = session.coach_id
    assert ledger.balance(ledger.coach_account(coach_id), "USD") == 4500
    assert ledger.balance(ledger.FEES, "USD") == 500
    assert ledger.balance(ledger.student_account(student.pk), "USD") == 0  # paid
    assert ledger.balance(ledger.gateway_account("offline"), "USD") == -5000
    assert_ledger_balanced()
    assert SessionBilling.objects.get(session=session).next_due_at is None
    receipt = Notification.objects.get(key=f"settled:{s.booking_id}")
    assert receipt.template == "settlement_receipt"


def test_settling_again_changes_nothing(offer, student, book) -> None:
    session = book(student, offer.pk)
    services.settle_session(session.pk, now=END)
    entries = JournalEntry.objects.count()
    assert services.settle_session(session.pk, now=END + M) == []
    assert services.run_due(now=END + 2 * M).sessions == 0
    assert Settlement.objects.count() == 1 and JournalEntry.objects.count() == entries
    assert LedgerLine.objects.filter(account=ledger.coach_account(session.coach_id)).count() == 1


def test_meeting_that_ended_short_is_not_charged(offer, student, coach, book) -> None:
    session = book(student, offer.pk)
    services.record_meeting_event(coach, session.pk, kind="started", at=START, now=START)
    services.record_meeting_event(coach, session.pk, kind="ended", at=START + 39 * M,
                                  now=START + 39 * M)
    services.run_due(now=END)
    s = Settlement.objects.get()
    assert (s.outcome, s.charge_minor) == ("early_end_short", 0)
    assert Session.objects.get(pk=session.pk).status == "early_end_short"
    assert Payment.objects.get().status == PaymentStatus.CANCELLED
    assert not JournalEntry.objects.filter(kind="settle").exists()  # nothing moved


def test_restarted_meeting_is_running_again(offer, student, coach, book) -> None:
    session = book(student, offer.pk)
    services.record_meeting_event(coach, session.pk, kind="ended", at=START + 10 * M,
                                  now=START + 10 * M)
    ev = services.record_meeting_event(coach, session.pk, kind="started", at=START + 12 * M,
                                       now=START + 12 * M)
    assert ev.ended_at is None
    services.run_due(now=END)
    assert Settlement.objects.get().outcome == "completed"


def test_only_the_coach_marks_a_no_show_and_only_after_the_wait(offer, student, coach, admin,
                                                                 book) -> None:
    session = book(student, offer.pk)
    with pytest.raises(OutcomeTooEarly) as too_early:
        services.mark_student_no_show(coach, session.pk, now=START + 20 * M - timedelta(
            seconds=1))
    assert too_early.value.details["allowed_from"] == (START + 20 * M).isoformat()
    with pytest.raises(Forbidden):
        services.mark_student_no_show(admin, session.pk, now=START + 30 * M)
    with pytest.raises(Forbidden):
        services.mark_student_no_show(student, session.pk, now=START + 30 * M)
    other_coach = make_coach("other-coach@test.example")
    with pytest.raises(NotFound):
        services.mark_student_no_show(other_coach, session.pk, now=START + 30 * M)
    assert not Settlement.objects.exists()

    result = services.mark_student_no_show(coach, session.pk, now=START + 20 * M)
    assert result.session.status == "no_show_student"
    s = result.settlements[0]
    assert (s.outcome, s.charge_minor, s.payout_minor, s.fee_minor) == ("no_show_student", 2500,
                                                                        2250, 250)
    payment = Payment.objects.get()
    assert (payment.status, payment.captured_minor) == (PaymentStatus.CAPTURED, 2500)
    assert Notification.objects.filter(key=f"no_show:{s.booking_id}").exists()
    with pytest.raises(AlreadySettled):
        services.mark_student_no_show(coach, session.pk, now=START + 21 * M)
    services.run_due(now=END)  # the end gate finds it settled
    assert Settlement.objects.count() == 1
    assert_ledger_balanced()


def test_a_student_who_joined_in_time_cannot_be_marked_absent(offer, student, coach,
                                                              book) -> None:
    session = book(student, offer.pk)
    services.record_meeting_event(coach, session.pk, kind="joined", user_id=student.pk,
                                  at=START + 5 * M, now=START + 5 * M)
    with pytest.raises(ParticipantAttended):
        services.mark_student_no_show(coach, session.pk, now=START + 25 * M)
    assert Session.objects.get(pk=session.pk).status == "scheduled"


def test_student_reports_the_coach_absent(offer, student, coach, book) -> None:
    session = book(student, offer.pk)
    stranger = make_student("stranger@test.example")
    with pytest.raises(NotFound):
        services.report_coach_no_show(stranger, session.pk, now=START + 30 * M)
    with pytest.raises(Forbidden):
        services.report_coach_no_show(coach, session.pk, now=START + 30 * M)
    with pytest.raises(OutcomeTooEarly):
        services.report_coach_no_show(student, session.pk, now=START + 19 * M)
    result = services.report_coach_no_show(student, session.pk, now=START + 20 * M)
    assert result.session.status == "no_show_coach"
    assert (result.settlements[0].outcome, result.settlements[0].charge_minor) == (
        "no_show_coach", 0)
    assert Payment.objects.get().status == PaymentStatus.CANCELLED
    assert Notification.objects.filter(key=f"coach_no_show:{session.pk}",
                                       user=coach).exists()


def test_a_coach_who_joined_cannot_be_reported_absent(offer, student, coach, book) -> None:
    session = book(student, offer.pk)
    services.record_meeting_event(coach, session.pk, kind="joined", user_id=coach.pk,
                                  at=START - 2 * M, now=START)
    with pytest.raises(ParticipantAttended):
        services.report_coach_no_show(student, session.pk, now=START + 30 * M)


@pytest.mark.parametrize(("ended_after", "outcome", "charge"), [
    (39, "early_end_short", 0), (40, "completed", 5000), (59, "completed", 5000)])
def test_coach_ends_the_session(offer, student, coach, book, ended_after: int, outcome: str,
                                charge: int) -> None:
    session = book(student, offer.pk)
    result = services.complete(coach, session.pk, now=START + ended_after * M)
    assert result.session.status == outcome
    assert result.settlements[0].charge_minor == charge


def test_a_session_cannot_end_before_it_starts(offer, student, coach, book) -> None:
    session = book(student, offer.pk)
    with pytest.raises(InvalidTransition):
        services.complete(coach, session.pk, now=START - M)
    with pytest.raises(Forbidden):
        services.complete(student, session.pk, now=START + 50 * M)
    assert not Settlement.objects.exists()


def test_late_student_cancellation_is_charged_as_a_no_show(offer, student, book,
                                                           committed) -> None:
    session = book(student, offer.pk)
    late = START - timedelta(hours=3)
    committed(scheduling.cancel_booking, student, session.pk, now=late)
    assert SessionBilling.objects.get(session=session).next_due_at is not None
    services.run_due(now=late)  # the gate is due at once
    s = Settlement.objects.get()
    assert (s.outcome, s.charge_minor, s.payout_minor) == ("late_cancellation", 2500, 2250)
    assert Payment.objects.get().captured_minor == 2500


@pytest.mark.parametrize("who", ["student-early", "coach"])
def test_free_and_coach_cancellations_are_never_charged(offer, student, coach, book, committed,
                                                        now, who: str) -> None:
    session = book(student, offer.pk)
    actor = student if who == "student-early" else coach
    committed(scheduling.cancel_booking, actor, session.pk, now=now)
    services.run_due(now=now)
    s = Settlement.objects.get()
    assert s.outcome == ("free_cancellation" if who == "student-early" else "cancelled_by_coach")
    assert s.charge_minor == 0
    assert Payment.objects.get().status == PaymentStatus.CANCELLED
    assert ledger.balance(ledger.student_account(student.pk), "USD") == 0


def test_group_session_no_show_of_one_student(coach, book, now) -> None:
    offer = make_offer(coach, capacity=3)
    a, b = make_student("a@test.example"), make_student("b@test.example")
    session = book(a, offer.pk)
    book(b, offer.pk)
    with pytest.raises(InvalidInput):  # which student?
        services.mark_student_no_show(coach, session.pk, now=START + 25 * M)
    with pytest.raises(InvalidInput):
        services.mark_student_no_show(coach, session.pk, student_id=coach.pk,
                                      now=START + 25 * M)
    result = services.mark_student_no_show(coach, session.pk, student_id=a.pk,
                                           now=START + 25 * M)
    assert result.session.status == "scheduled"  # b is still in the session
    event = session.events.get(kind="student_marked_absent")
    assert (event.actor, event.booking.student, event.after["student_id"]) == (coach, a, a.pk)
    services.run_due(now=END)
    by_student = {s.student_id: (s.outcome, s.charge_minor) for s in Settlement.objects.all()}
    assert by_student == {a.pk: ("no_show_student", 2500), b.pk: ("completed", 5000)}
    assert Session.objects.get(pk=session.pk).status == "completed"
    assert ledger.balance(ledger.coach_account(session.coach_id), "USD") == 2250 + 4500


def test_every_student_absent_makes_the_group_session_a_no_show(coach, book) -> None:
    offer = make_offer(coach, capacity=3)
    a, b = make_student("a@test.example"), make_student("b@test.example")
    session = book(a, offer.pk)
    book(b, offer.pk)
    services.mark_student_no_show(coach, session.pk, student_id=a.pk, now=START + 25 * M)
    result = services.mark_student_no_show(coach, session.pk, student_id=b.pk,
                                           now=START + 26 * M)
    assert result.session.status == "no_show_student"
    assert Settlement.objects.filter(outcome="no_show_student").count() == 2


def test_percentages_come_from_settings(offer, student, book, settings) -> None:
    settings.COACHGATE = {**settings.COACHGATE, "PLATFORM_FEE_PERCENT": "12.5",
                          "NO_SHOW_CHARGE_PERCENT": "1/3"}
    session = book(student, offer.pk)
    services.settle_session(session.pk, now=END)
    s = Settlement.objects.get()
    assert (s.charge_minor, s.fee_minor, s.payout_minor) == (5000, 625, 4375)


def test_meeting_evidence_is_checked(offer, student, coach, admin, book) -> None:
    session = book(student, offer.pk)
    with pytest.raises(Forbidden):
        services.record_meeting_event(student, session.pk, kind="ended", at=START, now=START)
    with pytest.raises(InvalidInput):
        services.record_meeting_event(coach, session.pk, kind="ended", at=START + 5 * M,
                                      now=START)  # in the future
    with pytest.raises(InvalidInput):
        services.record_meeting_event(coach, session.pk, kind="started",
                                      at=START - timedelta(hours=3), now=START)
    with pytest.raises(InvalidInput):
        services.record_meeting_event(admin, session.pk, kind="joined", user_id=admin.pk,
                                      at=START, now=START)
    services.settle_session(session.pk, now=END)
    with pytest.raises(AlreadySettled):
        services.record_meeting_event(admin, session.pk, kind="ended", at=END, now=END)


def test_reschedule_moves_the_authorisation(offer, student, book, committed, now) -> None:
    session = book(student, offer.pk)
    new_start = START + timedelta(days=2)
    committed(scheduling.reschedule_session, student, session.pk, new_start, now=now)
    payment = Payment.objects.get()
    assert payment.authorize_at == new_start - timedelta(hours=24) == payment.next_due_at
    gate = SessionBilling.objects.get(session=session)
    assert gate.settle_at == new_start + timedelta(hours=1) == gate.next_due_at
    assert services.run_due(now=END).sessions == 0  # the old end is not a gate any more


def test_sweep_repairs_a_booking_without_its_billing_rows(offer, student, now) -> None:
    # A booking made before billing wrote its rows with the booking (or rows lost to a bug).
    session = scheduling.book_session(student, offer.pk, START, now=now).session
    for model in (BookingCharge, Payment, SessionBilling):
        model.objects.all().delete()
    services.sweep(now=now)
    assert BookingCharge.objects.filter(session=session).exists()
    services.sweep(now=END)
    assert Settlement.objects.get().charge_minor == 5000


def test_payouts_and_statements(offer, student, coach, admin, book) -> None:
    session = book(student, offer.pk)
    services.settle_session(session.pk, now=END)
    coach_id = session.coach_id
    assert services.coach_balances(coach, coach_id) == {"USD": 4500}
    with pytest.raises(Forbidden):
        services.record_payout(coach, coach_id, currency="USD", amount_minor=100,
                               reference="x", now=END)
    with pytest.raises(InvalidInput):
        services.record_payout(admin, coach_id, currency="USD", amount_minor=4501,
                               reference="tr-1", now=END)
    services.record_payout(admin, coach_id, currency="USD", amount_minor=4000,
                           reference="tr-1", now=END + M)
    with pytest.raises(AlreadySettled):
        services.record_payout(admin, coach_id, currency="USD", amount_minor=100,
                               reference="tr-1", now=END + M)
    assert services.coach_balances(coach, coach_id) == {"USD": 500}
    with pytest.raises(NotFound):
        services.coach_balances(student, coach_id)
    st = services.coach_statement(coach, coach_id, start=START, end=END + timedelta(days=1),
                                  currency="USD")
    assert (st.opening_minor, st.earned_minor, st.paid_out_minor, st.closing_minor) == (
        0, 4500, 4000, 500)
    csv_text = ledger.statement_csv(st)
    assert csv_text.splitlines()[0].startswith("at,kind,key")
    assert ",settle,settle:" in csv_text and ",-4000,USD" in csv_text
    later = services.coach_statement(coach, coach_id, start=END + timedelta(days=1),
                                     end=END + timedelta(days=2), currency="USD")
    assert (later.opening_minor, later.lines) == (500, [])
    assert_ledger_balanced()


def test_a_burst_settles_together_and_one_bad_session_delays_nobody(
        coach, book, monkeypatch) -> None:
    offer = make_offer(coach, duration_minutes=30)
    students = [make_student(f"s{i}@test.example") for i in range(4)]
    sessions = [book(st, offer.pk, START + i * 30 * M) for i, st in enumerate(students)]
    bad = sessions[1].pk
    real = services.thresholds_of

    def broken(session: Session) -> Any:
        if session.pk == bad:
            raise RuntimeError("injected: this session's policy cannot be read")
        return real(session)

    monkeypatch.setattr(settlement_module, "thresholds_of", broken)
    after = START + 3 * timedelta(hours=1)
    report = services.run_due(now=after)
    assert (report.sessions, report.errors) == (4, 1)
    settled = {s.session_id for s in Settlement.objects.all()}
    assert settled == {s.pk for s in sessions} - {bad}
    gate = SessionBilling.objects.get(session_id=bad)
    assert gate.attempts == 1 and "injected" in gate.last_error and gate.next_due_at > after
    assert gate.lease_owner == "" and gate.settled_at is None
    events = list(Session.objects.get(pk=sessions[0].pk).events.values_list("kind", "actor"))
    assert events[-1] == ("completed", None)
    monkeypatch.setattr(settlement_module, "thresholds_of", real)
    services.run_due(now=gate.next_due_at)
    assert Settlement.objects.count() == 4
    assert Payment.objects.filter(status=PaymentStatus.CAPTURED, captured_minor=5000).count() == 4
    assert_ledger_balanced()

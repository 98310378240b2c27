"""Settlement: each booking's outcome, its Settlement row, ledger entry and capture."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.db import transaction

from coachgate.accounts.models import User
from coachgate.kit import clock, metrics, money
from coachgate.scheduling import services as scheduling
from coachgate.scheduling.lifecycle import TERMINAL, CancellationOutcome, SessionStatus
from coachgate.scheduling.models import Booking, BookingStatus, Session

from .. import ledger, rules
from ..events import booking_settled
from ..models import (
    BookingCharge,
    MeetingEvidence,
    Payment,
    SessionBilling,
    Settlement,
)
from ..rules import Outcome
from ._common import _wake_on_commit, gateway_name, percentages, thresholds_of
from .bookings import _charge_for
from .payments import _PAYMENT_STEP_FIELDS, _payment_step, request_refund

log = logging.getLogger(__name__)

_CANCELLATION_OUTCOMES = {
    CancellationOutcome.FREE: Outcome.FREE_CANCELLATION,
    CancellationOutcome.LATE_STUDENT: Outcome.LATE_CANCELLATION,
    CancellationOutcome.BY_COACH: Outcome.CANCELLED_BY_COACH,
    CancellationOutcome.BY_ADMIN: Outcome.CANCELLED_BY_COACH,
}
_SESSION_OUTCOMES = {
    SessionStatus.COMPLETED: Outcome.COMPLETED,
    SessionStatus.NO_SHOW_STUDENT: Outcome.NO_SHOW_STUDENT,
    SessionStatus.NO_SHOW_COACH: Outcome.NO_SHOW_COACH,
    SessionStatus.EARLY_END_SHORT: Outcome.EARLY_END_SHORT,
}


def _booking_outcome(booking: Booking, session: Session) -> Outcome | None:
    if booking.status == BookingStatus.CANCELLED:
        return _CANCELLATION_OUTCOMES.get(CancellationOutcome(booking.cancellation_outcome),
                                          Outcome.FREE_CANCELLATION) \
            if booking.cancellation_outcome else Outcome.FREE_CANCELLATION
    return _SESSION_OUTCOMES.get(SessionStatus(session.status))


def settle_session(session_id: int, *, now: datetime, actor: User | None = None,
                   owner: str = "") -> list[Settlement]:
    """Settle whatever of the session is ready: cancelled bookings, and every booking once
    the session has an outcome. At or after the scheduled end a session without an outcome
    gets one (COMPLETED, or EARLY_END_SHORT by the meeting's evidence). Idempotent; runs in
    the caller's transaction or its own."""
    return settle_sessions([session_id], now=now, actor=actor, owner=owner)


def settle_sessions(session_ids: list[int], *, now: datetime, actor: User | None = None,
                    owner: str = "") -> list[Settlement]:
    """``settle_session`` for many sessions in one transaction and a handful of statements
    (a burst of sessions ending together). One code path for one session or many.

    ``owner``: the gate run that claimed these sessions' gates; their claim ends with the
    same update that records the settlement."""
    with transaction.atomic():
        sessions = list(Session.objects.select_for_update().select_related("offer", "coach")
                        .filter(pk__in=session_ids).order_by("pk"))  # one lock order
        if not sessions:
            return []
        _end_sessions_due(sessions, now)
        by_pk = {s.pk: s for s in sessions}
        plan: list[tuple[Booking, Outcome]] = []
        waiting: set[int] = set()
        for booking in (Booking.objects.filter(session__in=sessions, settlement__isnull=True)
                        .select_related("student", "charge").order_by("pk")):
            booking.session = by_pk[booking.session_id]
            outcome = _booking_outcome(booking, booking.session)
            if outcome is None:
                waiting.add(booking.session_id)
            else:
                plan.append((booking, outcome))
        done = _settle_bookings(plan, now=now, actor=actor)
        _close_gates(sessions, waiting, now=now, owner=owner)
        return done


def _end_sessions_due(sessions: list[Session], now: datetime) -> None:
    """Sessions at or past their scheduled end with no outcome get one, from the evidence."""
    ending = [s for s in sessions if s.status not in TERMINAL and now >= s.ends_at]
    if not ending:
        return
    found = {e.session_id: e for e in MeetingEvidence.objects.filter(session__in=ending)}
    outcomes: dict[int, SessionStatus] = {}
    for s in ending:
        ev = found.get(s.pk)
        evidence = rules.Evidence(ev.started_at, ev.ended_at) if ev else rules.Evidence()
        outcome = rules.end_outcome(starts_at=s.starts_at, ends_at=s.ends_at,
                                    t=thresholds_of(s), evidence=evidence)
        outcomes[s.pk] = (SessionStatus.COMPLETED if outcome == Outcome.COMPLETED
                          else SessionStatus.EARLY_END_SHORT)
    scheduling.end_sessions(ending, outcomes, now=now)


def _close_gates(sessions: list[Session], waiting: set[int], *, now: datetime,
                 owner: str) -> None:
    release: dict[str, Any] = {}
    if owner:  # the gate's own run: end its claim in the same statement
        release = {"lease_until": None, "lease_owner": "", "attempts": 0, "last_error": ""}
    finished = [s for s in sessions if s.status in TERMINAL and s.pk not in waiting]
    if finished:
        n = SessionBilling.objects.filter(session__in=finished).update(
            settled_at=now, next_due_at=None, updated_at=clock.now(), **release)
        if n < len(finished):  # gates that a lost event never created
            for s in finished:
                SessionBilling.objects.get_or_create(session=s, defaults={
                    "settle_at": s.ends_at, "settled_at": now, "next_due_at": None})
    for s in sessions:
        if s in finished:
            continue
        updated = SessionBilling.objects.filter(session=s).update(
            settle_at=s.ends_at, settled_at=None, next_due_at=s.ends_at,
            updated_at=clock.now(), **release)
        if not updated:
            SessionBilling.objects.create(session=s, settle_at=s.ends_at,
                                          next_due_at=s.ends_at)
        _wake_on_commit(s.ends_at)


def _settle_booking(booking: Booking, outcome: Outcome, *, now: datetime, actor: User | None,
                    pct: rules.Percentages | None = None) -> Settlement | None:
    done = _settle_bookings([(booking, outcome)], now=now, actor=actor, pct=pct)
    return done[0] if done else None


def _settle_bookings(plan: list[tuple[Booking, Outcome]], *, now: datetime,
                     actor: User | None, pct: rules.Percentages | None = None
                     ) -> list[Settlement]:
    """Settle each (booking, outcome) once. Callers hold the bookings' session row locks,
    so the check for earlier settlements and the inserts cannot interleave with another
    settlement of the same booking; the unique booking column is the guarantee (a
    duplicate fails the whole transaction, whose retry then finds it settled)."""
    if not plan:
        return []
    pct = pct or percentages()
    settled_before = set(Settlement.objects.filter(
        booking__in=[b for b, _ in plan]).values_list("booking_id", flat=True))
    made: list[tuple[Settlement, Booking, bool]] = []
    entries: list[ledger.Entry] = []
    captures: list[tuple[Booking, BookingCharge, int]] = []
    refunds: list[tuple[str, int]] = []
    for booking, outcome in plan:
        if booking.pk in settled_before:
            metrics.SETTLEMENTS.labels(outcome=outcome.value, result="duplicate").inc()
            continue  # settled before: never twice
        charge = _charge_for(booking, now)
        # Rounded to what the gateway can move (KWD: 10 fils at Stripe), so the ledger
        # records exactly what it takes.
        split = rules.settle(outcome, charge.price_minor, pct,
                             money.quantum(charge.currency, gateway_name()))
        consumes = outcome in rules.CONSUMING
        made.append((Settlement(
            booking=booking, session_id=booking.session_id, student_id=booking.student_id,
            coach_id=charge.coach_id, outcome=outcome, currency=charge.currency,
            price_minor=charge.price_minor, charge_minor=split.charge, fee_minor=split.fee,
            payout_minor=split.payout, funded_by=charge.funded_by, actor=actor,
            settled_at=now), booking, consumes))
        student = ledger.student_account(booking.student_id)
        coach = ledger.coach_account(charge.coach_id)
        memo = f"session {booking.session_id}: {outcome.value.replace('_', ' ')}"
        if charge.funded_by:
            # Prepaid: a used session's value leaves the deferred account; what the outcome
            # does not charge goes back to the student. An unused one stays in the pack.
            if consumes:
                entries.append(ledger.Entry(
                    f"settle:{booking.pk}", "settle", charge.currency,
                    ((ledger.DEFERRED, -charge.price_minor), (coach, split.payout),
                     (ledger.FEES, split.fee), (student, split.uncharged)),
                    memo, booking.session_id, booking.pk))
                if split.uncharged:
                    refunds.append((charge.funded_by, split.uncharged))
        else:
            entries.append(ledger.Entry(
                f"settle:{booking.pk}", "settle", charge.currency,
                ((student, -split.charge), (coach, split.payout), (ledger.FEES, split.fee)),
                memo, booking.session_id, booking.pk))
            captures.append((booking, charge, split.charge))
    if not made:
        return []
    Settlement.objects.bulk_create([s for s, _, _ in made])
    ledger.record_many(entries, at=now)
    _set_captures(captures, now)
    for key, amount in refunds:
        request_refund(key, amount, now=now)
    for settlement, booking, consumes in made:
        booking_settled.send(sender=None, settlement=settlement, consumes=consumes, now=now)
        _notify_settled(settlement, booking, now)
        metrics.SETTLEMENTS.labels(outcome=settlement.outcome, result="settled").inc()
    return [s for s, _, _ in made]


def _set_captures(captures: list[tuple[Booking, BookingCharge, int]], now: datetime) -> None:
    """Tell each booking's payment what to take (0 = release the hold)."""
    if not captures:
        return
    found = {p.key: p for p in Payment.objects.select_for_update().filter(
        key__in=[f"booking:{b.pk}" for b, _, _ in captures])}
    changed: list[Payment] = []
    entries: list[ledger.Entry] = []
    for booking, charge, amount in captures:
        key = f"booking:{booking.pk}"
        payment = found.get(key)
        if payment is None:
            if amount == 0:
                continue
            payment = Payment.objects.create(
                key=key, student_id=booking.student_id, gateway=gateway_name(),
                currency=charge.currency, amount_minor=charge.price_minor, authorize_at=now,
                created_at=now)
        if payment.capture_minor is not None:
            continue
        payment.capture_minor, payment.next_due_at = amount, now
        if payment.gateway == "offline":
            # The offline gateway answers at once and moves nothing: its step is applied
            # here, in the same transaction, under the payment's row lock.
            _payment_step(payment, now, collect=entries)
        payment.updated_at = clock.now()  # bulk_update does not touch auto_now fields
        changed.append(payment)
    Payment.objects.bulk_update(changed, _PAYMENT_STEP_FIELDS)
    ledger.record_many(entries, at=now)
    if any(p.gateway != "offline" for p in changed):
        _wake_on_commit(now)  # the payment gate calls the gateway, outside this transaction


_OUTCOME_TEXT = {
    Outcome.COMPLETED: "completed",
    Outcome.NO_SHOW_STUDENT: "student no-show",
    Outcome.NO_SHOW_COACH: "the coach did not come (not charged)",
    Outcome.EARLY_END_SHORT: "ended early, before the minimum payable time (not charged)",
    Outcome.LATE_CANCELLATION: "late cancellation (charged as a no-show)",
    Outcome.CANCELLED_BY_COACH: "cancelled by the coach (not charged)",
    Outcome.FREE_CANCELLATION: "cancelled in time (not charged)",
}


def _notify_settled(s: Settlement, booking: Booking, now: datetime) -> None:
    from coachgate.notify.services import notify

    session = booking.session
    context = {
        "session_id": s.session_id, "offer_title": session.offer.title,
        "starts_at": session.starts_at.isoformat(), "outcome": s.outcome,
        "charge_minor": s.charge_minor, "price_minor": s.price_minor, "currency": s.currency,
        "prepaid": bool(s.funded_by), "outcome_text": _OUTCOME_TEXT[Outcome(s.outcome)],
        "used": Outcome(s.outcome) in rules.CONSUMING,
        "refund_minor": s.price_minor - s.charge_minor,
    }
    notify(booking.student, "settlement_receipt", context, key=f"settled:{s.booking_id}",
           channels=("email",), now=now)
    if s.outcome == Outcome.NO_SHOW_STUDENT:
        notify(booking.student, "no_show_notice", context, key=f"no_show:{s.booking_id}",
               now=now)

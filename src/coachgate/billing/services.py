"""Billing use cases: outcomes, settlement, payments, the ledger. The only code that writes
billing rows.

How money moves for a booking charged per session:

1. Booked: a ``BookingCharge`` (the price agreed), the session's settlement gate (due at the
   scheduled end) and a ``Payment`` whose gate authorises the card close to the start.
2. An outcome (the coach marks a no-show, the student reports the coach absent, the coach
   ends the session, a cancellation) or the scheduled end: ``settle_session`` decides each
   booking's outcome, writes one ``Settlement`` per booking (unique: never twice), its
   ledger entry (unique key) and the amount the payment must capture (0 = release).
3. The payment gate captures (fully or partly) or cancels at the gateway, outside any
   transaction, with idempotency keys; the capture is recorded in the ledger.

Bookings funded by a pack (packs app) were paid up front: their settlement moves the
session's value from ``platform:deferred`` to the coach and the platform, and refunds what
the outcome does not charge when the session is used (a student no-show).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

from coachgate.accounts.models import User
from coachgate.catalog.models import CoachProfile, Offer
from coachgate.catalog.rules import parse_money_policy
from coachgate.kit import clock, due, metrics, money
from coachgate.kit.errors import (
    AlreadySettled,
    Forbidden,
    GatewayNotConfigured,
    InvalidInput,
    InvalidWebhookSignature,
    NotFound,
    OutcomeTooEarly,
    ParticipantAttended,
    PaymentMethodRequired,
)
from coachgate.scheduling import services as scheduling
from coachgate.scheduling.events import SessionEventKind
from coachgate.scheduling.lifecycle import TERMINAL, CancellationOutcome, SessionStatus
from coachgate.scheduling.models import Booking, BookingStatus, Session

from . import ledger, rules
from .events import booking_settled
from .gateways import get_gateway, offline
from .gateways.base import (
    GatewayUnavailable,
    InvalidSignature,
    PaymentDeclined,
    PaymentGateway,
    PaymentRequest,
    PaymentResult,
)
from .models import (
    Attendance,
    BillingProfile,
    BookingCharge,
    JournalEntry,
    MeetingEvidence,
    Payment,
    PaymentStatus,
    SessionBilling,
    Settlement,
    WebhookEvent,
    WebhookStatus,
)
from .rules import Outcome

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=60)
BATCH = 100
PAYMENT_ACTION_RETRY = timedelta(hours=6)  # a declined card: try again (or when it changes)


def percentages() -> rules.Percentages:
    c = settings.COACHGATE
    return rules.Percentages(fee=rules.exact(str(c.get("PLATFORM_FEE_PERCENT", "10"))),
                             no_show_charge=rules.exact(str(c.get("NO_SHOW_CHARGE_PERCENT",
                                                                  "50"))))


def _authorize_before_hours() -> int:
    return int(str(settings.COACHGATE.get("AUTHORIZE_BEFORE_HOURS", 24)))


def gateway_name() -> str:
    return money.configured_gateway()


def thresholds_of(session: Session) -> rules.Thresholds:
    # The policy the session was booked under, not the offer's current one.
    policy = parse_money_policy(session.money_policy)
    minutes = int((session.ends_at - session.starts_at).total_seconds() // 60)
    return rules.thresholds(minutes, policy.no_show_wait_ratio, policy.min_payable_ratio)


def _wake_on_commit(at: datetime | None) -> None:
    from .tasks import run_due

    due.wake_on_commit(run_due, at)


# --- bookings ---------------------------------------------------------------------------


def check_booking(student: User, offer: Offer) -> None:
    """Before a booking is written: a gateway that charges cards needs a saved card."""
    if gateway_name() == "offline" or offer.price_minor == 0 or offer.pack_size > 1:
        return
    profile = BillingProfile.objects.filter(user=student).first()
    if profile is None or not profile.payment_method_ref:
        raise PaymentMethodRequired(details={"setup": "/api/v1/billing/card"})


def _charge_for(booking: Booking, now: datetime) -> BookingCharge:
    try:
        return booking.charge  # loaded with the booking (select_related), or fetched
    except BookingCharge.DoesNotExist:
        pass  # the booking's event was lost: its price is the offer's
    session = booking.session
    charge, _ = BookingCharge.objects.get_or_create(booking=booking, defaults={
        "session": session, "student_id": booking.student_id, "coach_id": session.coach_id,
        "price_minor": session.offer.price_minor, "currency": session.offer.currency,
        "created_at": now})
    return charge


def record_booking(booking_id: int, *, now: datetime) -> None:
    """A booking was made: its price, the session's settlement gate, and its payment."""
    booking = (Booking.objects.select_related("session__offer").filter(pk=booking_id).first())
    if booking is None:
        return
    charge = _charge_for(booking, now)
    if not charge.funded_by and charge.price_minor > 0:
        _payment_for_booking(charge, booking, now)
    sync_session_gate(booking.session, now=now)


def _payment_for_booking(charge: BookingCharge, booking: Booking, now: datetime) -> Payment:
    before = timedelta(hours=_authorize_before_hours())
    at = rules.authorize_at(booked_at=booking.booked_at, starts_at=booking.session.starts_at,
                            before=before)
    payment, created = Payment.objects.get_or_create(key=f"booking:{booking.pk}", defaults={
        "student_id": booking.student_id, "gateway": gateway_name(),
        "currency": charge.currency, "amount_minor": charge.price_minor, "authorize_at": at,
        "next_due_at": at, "created_at": now})
    if created:
        _wake_on_commit(at)
    return payment


def fund_booking(booking: Booking, *, source: str, value_minor: int, now: datetime) -> None:
    """A booking paid for by a prepaid source (``"pack:<id>"``): nothing is charged for it;
    its settlement earns ``value_minor`` from the deferred account. In the booking's
    transaction."""
    session = booking.session
    BookingCharge.objects.update_or_create(booking=booking, defaults={
        "session": session, "student_id": booking.student_id, "coach_id": session.coach_id,
        "price_minor": value_minor, "currency": session.offer.currency, "funded_by": source,
        "created_at": now})


def sync_session_gate(session: Session, *, now: datetime) -> SessionBilling:
    """Keep the settlement gate in step with the session: due at the scheduled end, or at
    once when something is waiting to be settled (an outcome, a cancellation)."""
    gate, _ = SessionBilling.objects.get_or_create(
        session=session, defaults={"settle_at": session.ends_at, "next_due_at": session.ends_at})
    if gate.settled_at is not None:
        return gate
    waiting = session.status in TERMINAL or Booking.objects.filter(
        session=session, status=BookingStatus.CANCELLED, settlement__isnull=True).exists()
    gate.settle_at = session.ends_at
    gate.next_due_at = now if waiting else session.ends_at
    gate.save(update_fields=["settle_at", "next_due_at", "updated_at"])
    _wake_on_commit(gate.next_due_at)
    _follow_reschedule(session, now)
    return gate


def _follow_reschedule(session: Session, now: datetime) -> None:
    """Pending authorisations move with the session's start."""
    before = timedelta(hours=_authorize_before_hours())
    keys = [f"booking:{pk}" for pk in session.bookings.filter(
        status=BookingStatus.ACTIVE).values_list("pk", flat=True)]
    for p in Payment.objects.filter(key__in=keys, status=PaymentStatus.PENDING,
                                    capture_minor__isnull=True):
        at = max(now, session.starts_at - before)
        if p.authorize_at != at:
            Payment.objects.filter(pk=p.pk).update(authorize_at=at, next_due_at=at)
            _wake_on_commit(at)


def record_prepayment(student: User, *, key: str, amount_minor: int, currency: str,
                      now: datetime, memo: str = "") -> Payment:
    """A purchase paid up front (a pack): the student owes ``amount_minor`` now, held as
    deferred (not yet earned) until sessions are used. In the caller's transaction;
    idempotent per ``key`` (e.g. "pack:7"). The payment's gate charges it right after the
    caller commits, outside any transaction (offline: recorded here, nothing to call)."""
    if amount_minor > 0 and gateway_name() != "offline":
        profile = BillingProfile.objects.filter(user=student).first()
        if profile is None or not profile.payment_method_ref:
            raise PaymentMethodRequired(details={"setup": "/api/v1/billing/card"})
    payment, created = Payment.objects.get_or_create(key=key, defaults={
        "student_id": student.pk, "gateway": gateway_name(), "currency": currency,
        "amount_minor": amount_minor, "capture_minor": amount_minor, "authorize_at": now,
        "next_due_at": now, "created_at": now})
    if created:
        ledger.record(f"purchase:{key}", "purchase", currency, [
            (ledger.student_account(student.pk), -amount_minor),
            (ledger.DEFERRED, amount_minor)], at=now, memo=memo or key)
        _after_payment_change(payment, now)
    return payment


def forfeit_prepaid(*, key: str, coach_id: int, amount_minor: int, currency: str,
                    now: datetime, memo: str = "") -> None:
    """Prepaid value that will never be used (a pack's sessions left when it expired) is
    earned as if completed: the coach's payout and the platform's fee. Once per ``key``."""
    split = rules.settle(Outcome.COMPLETED, amount_minor, percentages(),
                         money.quantum(currency, gateway_name()))
    ledger.record(f"forfeit:{key}", "forfeit", currency, [
        (ledger.DEFERRED, -amount_minor), (ledger.coach_account(coach_id), split.payout),
        (ledger.FEES, split.fee)], at=now, memo=memo or key)


# --- settlement -------------------------------------------------------------------------

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


_PAYMENT_STEP_FIELDS = ["capture_minor", "status", "captured_minor", "refunded_minor", "ref",
                        "decline_code", "last_error", "attempts", "next_due_at", "updated_at"]


def request_refund(payment_key: str, amount_minor: int, *, now: datetime) -> None:
    """Give ``amount_minor`` of a captured payment back (its gate calls the gateway)."""
    payment = Payment.objects.select_for_update().filter(key=payment_key).first()
    if payment is None:
        raise NotFound(f"No payment {payment_key}.")
    payment.refund_minor += amount_minor
    payment.next_due_at = now
    payment.save(update_fields=["refund_minor", "next_due_at", "updated_at"])
    _after_payment_change(payment, now)


def _after_payment_change(payment: Payment, now: datetime) -> None:
    """The offline gateway answers at once and moves nothing: apply its step right here, in
    the same transaction (a settlement burst then needs no second run per session). Real
    gateways are called by the payment gate, outside any transaction."""
    if payment.gateway == "offline":
        _payment_step(payment, now)
        payment.save()
    else:
        _wake_on_commit(payment.next_due_at)


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


# --- outcome actions ----------------------------------------------------------------------


@dataclass
class OutcomeResult:
    session: Session
    settlements: list[Settlement] = field(default_factory=list)


def _is_coach(actor: User, session: Session) -> bool:
    return session.coach.user_id == actor.pk


def _wait_passed(session: Session, now: datetime, who_may: str) -> datetime:
    """When no-shows may be recorded (start + no-show wait); OutcomeTooEarly before."""
    allowed_from = rules.no_show_allowed_from(session.starts_at, thresholds_of(session))
    if now < allowed_from:
        raise OutcomeTooEarly(
            f"{who_may} from {allowed_from:%H:%M} UTC, once the no-show wait has passed.",
            details={"allowed_from": allowed_from.isoformat()})
    return allowed_from


def _joined_by(session: Session, user_id: int, deadline: datetime) -> bool:
    return Attendance.objects.filter(session=session, user_id=user_id,
                                     joined_at__lte=deadline).exists()


def mark_student_no_show(actor: User, session_id: int, *, student_id: int | None = None,
                         now: datetime | None = None) -> OutcomeResult:
    """The session's coach (only) marks a student absent, once the no-show wait has passed.
    In a group session ``student_id`` names the student; the session becomes a no-show when
    every student was marked, and the others settle at the end as usual."""
    now = now or clock.now()
    session = scheduling.get_session(actor, session_id)  # 404 for strangers
    if not _is_coach(actor, session):
        raise Forbidden("Only the session's coach can mark a student as a no-show.")
    allowed_from = _wait_passed(session, now, "A student can be marked absent")
    with transaction.atomic(durable=True):
        session = scheduling.lock_session(session_id)
        if session.status in TERMINAL:
            raise AlreadySettled(f"This session is already {session.status.replace('_', ' ')}.")
        active = list(session.bookings.filter(status=BookingStatus.ACTIVE).order_by("pk"))
        unmarked = [b for b in active if not Settlement.objects.filter(booking=b).exists()]
        if student_id is None:
            if len(unmarked) != 1:
                raise InvalidInput("Name the absent student (student_id) in a group session.",
                                   details={"field": "student_id"})
            target = unmarked[0]
        else:
            found = [b for b in unmarked if b.student_id == student_id]
            if not found:
                raise InvalidInput("That student holds no unsettled seat in this session.",
                                   details={"field": "student_id"})
            target = found[0]
        if _joined_by(session, target.student_id, allowed_from):
            raise ParticipantAttended("The meeting shows the student joined within the wait.")
        if len(unmarked) == 1:  # the last (or only) student: the whole session is a no-show
            scheduling.end_as_student_no_show(actor, session_id, now=now)
            return OutcomeResult(scheduling.lock_session(session_id),
                                 settle_session(session_id, now=now, actor=actor))
        target.session = session
        target.student = User.objects.get(pk=target.student_id)
        scheduling.record_event(session, SessionEventKind.STUDENT_MARKED_ABSENT, actor, now,
                                booking=target, details={"student_id": target.student_id})
        settled = _settle_booking(target, Outcome.NO_SHOW_STUDENT, now=now, actor=actor,
                                  pct=percentages())
        return OutcomeResult(session, [settled] if settled else [])


def report_coach_no_show(actor: User, session_id: int, *,
                         now: datetime | None = None) -> OutcomeResult:
    """A student of the session reports that the coach never came, after the wait."""
    now = now or clock.now()
    session = scheduling.get_session(actor, session_id)
    if not session.bookings.filter(student=actor, status=BookingStatus.ACTIVE).exists():
        raise Forbidden("Only a student of this session can report the coach absent.")
    allowed_from = _wait_passed(session, now, "The coach can be reported absent")
    if _joined_by(session, session.coach.user_id, allowed_from):
        raise ParticipantAttended("The meeting shows the coach joined within the wait.")
    with transaction.atomic(durable=True):
        session = scheduling.lock_session(session_id)
        if session.status in TERMINAL:
            raise AlreadySettled(f"This session is already {session.status.replace('_', ' ')}.")
        scheduling.end_as_coach_no_show(actor, session_id, now=now)
        result = OutcomeResult(scheduling.lock_session(session_id),
                               settle_session(session_id, now=now, actor=actor))
        _notify_coach_no_show(result.session, now)
        return result


def _notify_coach_no_show(session: Session, now: datetime) -> None:
    from coachgate.notify.services import notify

    notify(session.coach.user, "coach_no_show_notice",
           {"session_id": session.pk, "offer_title": session.offer.title,
            "starts_at": session.starts_at.isoformat()},
           key=f"coach_no_show:{session.pk}", now=now)


def complete(actor: User, session_id: int, *, now: datetime | None = None) -> OutcomeResult:
    """The coach (or an admin) ends the session now. Ending is evidence: before the minimum
    payable time it is an early end (nothing charged), after it a completion."""
    now = now or clock.now()
    session = scheduling.get_session(actor, session_id)
    if not (actor.is_admin or _is_coach(actor, session)):
        raise Forbidden("Only the session's coach can end it.")
    with transaction.atomic(durable=True):
        session = scheduling.lock_session(session_id)
        if session.status in TERMINAL:
            raise AlreadySettled(f"This session is already {session.status.replace('_', ' ')}.")
        if now < session.starts_at:
            scheduling.complete_session(actor, session_id, now=now)  # raises: not started
        ev = MeetingEvidence.objects.filter(session=session).first()
        evidence = rules.Evidence(ev.started_at if ev else None,
                                  (ev.ended_at if ev and ev.ended_at else None) or now)
        outcome = rules.end_outcome(starts_at=session.starts_at, ends_at=session.ends_at,
                                    t=thresholds_of(session), evidence=evidence)
        if outcome == Outcome.COMPLETED:
            scheduling.complete_session(actor, session_id, now=now)
        else:
            scheduling.end_session_short(actor, session_id, now=now)
        return OutcomeResult(scheduling.lock_session(session_id),
                             settle_session(session_id, now=now, actor=actor))


MEETING_EVENTS = ("started", "ended", "joined")


def record_meeting_event(actor: User | None, session_id: int, *, kind: str, at: datetime,
                         user_id: int | None = None, now: datetime | None = None
                         ) -> MeetingEvidence:
    """Meeting evidence: the meeting started or ended, or a participant joined. Admins and
    the session's coach (and, later, provider webhooks with ``actor=None``) report it."""
    now = now or clock.now()
    at = clock.require_aware(at, "at")
    if actor is not None:
        session = scheduling.get_session(actor, session_id)
        if not (actor.is_admin or _is_coach(actor, session)):
            raise Forbidden("Only the session's coach or an admin reports meeting events.")
    if kind not in MEETING_EVENTS:
        raise InvalidInput(f"kind is one of {', '.join(MEETING_EVENTS)}.",
                           details={"field": "kind"})
    with transaction.atomic(durable=True):
        session = scheduling.lock_session(session_id)
        if at > now + timedelta(minutes=1):
            raise InvalidInput("A meeting event cannot be in the future.",
                               details={"field": "at"})
        if not session.starts_at - timedelta(hours=1) <= at <= session.ends_at + timedelta(
                hours=6):
            raise InvalidInput("The event's time is not within the session.",
                               details={"field": "at"})
        if SessionBilling.objects.filter(session=session, settled_at__isnull=False).exists():
            raise AlreadySettled("This session is settled; its meeting evidence is closed.")
        ev, _ = MeetingEvidence.objects.get_or_create(session=session)
        if kind == "started":
            ev.started_at = min(ev.started_at, at) if ev.started_at else at
            if ev.ended_at and ev.ended_at < at:
                ev.ended_at = None  # restarted after an end: it is running again
        elif kind == "ended":
            ev.ended_at = max(ev.ended_at, at) if ev.ended_at else at
        else:
            participants = {session.coach.user_id, *session.bookings.filter(
                status=BookingStatus.ACTIVE).values_list("student_id", flat=True)}
            if user_id not in participants:
                raise InvalidInput("user_id must be the coach or a student of the session.",
                                   details={"field": "user_id"})
            row, created = Attendance.objects.get_or_create(
                session=session, user_id=user_id, defaults={"joined_at": at})
            if not created and at < row.joined_at:
                row.joined_at = at
                row.save(update_fields=["joined_at"])
        ev.save()
        return ev


# --- the gates ----------------------------------------------------------------------------


@dataclass
class DueReport:
    sessions: int = 0
    payments: int = 0
    errors: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"sessions": self.sessions, "payments": self.payments, "errors": self.errors}


def run_due(*, now: datetime | None = None, owner: str = "", max_batches: int = 1000
            ) -> DueReport:
    """Run every settlement gate and payment step that is due, in batches, until none is
    left. Several workers share the work: each claims rows with a lease."""
    now = now or clock.now()
    owner = owner or due.worker_identity()
    report = DueReport()
    for _ in range(max_batches):
        claimed = due.claim_due_rows(SessionBilling, now=now, owner=owner, lease=LEASE,
                                     limit=BATCH, fields=("next_due_at", "attempts"))
        gates = [(pk, at if not attempts else None) for pk, at, attempts in claimed]
        if len(gates) == BATCH:
            # More is due than one batch: wake another worker to share the burst (one
            # wake-up per half second at most: the others find it already waiting).
            from .tasks import run_due as run_due_task

            due.wake(run_due_task, clock.now())
        for i in range(0, len(gates), SETTLE_CHUNK):
            report.errors += _run_gates(gates[i:i + SETTLE_CHUNK], now=now, owner=owner)
        report.sessions += len(gates)
        if len(gates) < BATCH:
            break
    from .tasks import run_due as run_due_task

    # A payment that raises (bad data, a bug) is recorded on its row and retried with
    # backoff by kit.due; the others carry on.
    report.payments, failed = due.drain(
        Payment, lambda pk: run_payment(pk, now=now, owner=owner, claimed=True), now=now,
        owner=owner, lease=LEASE, batch=BATCH, max_batches=max_batches,
        wake_task=run_due_task)
    report.errors += failed
    return report


# Gates settled per transaction: a burst pays one commit per chunk, not per session. A
# failure rolls the chunk back and its sessions are then run one by one, so one bad row
# delays nobody else.
SETTLE_CHUNK = 20


def _run_gates(gates: list[tuple[int, datetime | None]], *, now: datetime, owner: str
               ) -> int:
    """Settle claimed gates ((session id, due time) pairs) in one transaction; on any
    failure, one by one. Returns the number that failed."""
    if len(gates) > 1:
        try:
            _observe_lateness(gates)
            settle_sessions([pk for pk, _ in gates], now=now, owner=owner)
            return 0
        except Exception:  # run them one by one: the failing one is retried on its own
            log.warning("settling %d sessions together failed; one by one now",
                        len(gates), exc_info=True)
        gates = [(pk, None) for pk, _ in gates]  # their lateness is counted already
    return sum(not _run_gate(pk, now=now, owner=owner, due_at=due_at) for pk, due_at in gates)


def _observe_lateness(gates: list[tuple[int, datetime | None]]) -> None:
    started = clock.now()
    for _, due_at in gates:
        if due_at is not None:  # claimed at its due time (not a retry): how late it runs
            metrics.GATE_LATENESS.labels(kind="settle").observe(
                max(0.0, (started - due_at).total_seconds()))


def _run_gate(session_id: int, *, now: datetime, owner: str,
              due_at: datetime | None = None) -> bool:
    try:
        _observe_lateness([(session_id, due_at)])
        settle_session(session_id, now=now, owner=owner)
        return True
    except Exception as exc:  # a bug, bad data or the database: retry with backoff
        from .tasks import run_due as run_due_task

        log.exception("settlement of session %s failed", session_id)
        due.record_failure(SessionBilling, session_id, owner=owner, now=now, exc=exc,
                           wake_task=run_due_task)
        return False


def _request(payment: Payment, amount: int) -> PaymentRequest:
    profile = BillingProfile.objects.filter(user_id=payment.student_id).first()
    return PaymentRequest(
        key=f"{payment.key}:{payment.declines}" if payment.declines else payment.key,
        amount_minor=amount, currency=payment.currency,
        customer_ref=profile.customer_ref if profile else "",
        payment_method_ref=profile.payment_method_ref if profile else "",
        description=f"coachgate {payment.key}", metadata={"coachgate_key": payment.key})


# --- the payment gate: plan, call, record -------------------------------------------------
#
# Like access.converge: the next gateway call is planned in a short transaction (under the
# payment's lease), the gateway is called with no transaction open, and its answer is
# recorded in another short transaction. A slow or hung gateway then holds only the
# payment's lease, never a database lock (on SQLite: the one write lock every booking
# needs). A crash between the call and the record is safe: the lease expires, the row
# still says what it said, so the same call is planned again with the same idempotency
# key and the gateway replays its first answer.
#
# The offline gateway moves nothing and answers every call at once, as a pure function of
# the call (``offline.answer``): its steps are applied in the caller's transaction without
# calling any gateway, so a settlement burst needs no second run per payment.


@dataclass(frozen=True)
class _Step:
    """The next gateway call of one payment, decided from its row."""

    kind: str  # authorize | charge | capture | cancel | refund | release (no call)
    amount: int  # ISO minor units of the payment's currency
    ref: str
    key: str  # the gateway's idempotency base for this call
    request: PaymentRequest | None = None
    # The row as planned: the answer is recorded only onto a row still in this state.
    state: tuple[str, str, int, int] = ("", "", 0, 0)


def _state(p: Payment) -> tuple[str, str, int, int]:
    return (str(p.status), p.ref, p.captured_minor, p.refunded_minor)


def _plan_step(p: Payment, now: datetime) -> _Step | None:
    """What to ask the gateway next (None: nothing to do now). Pure but for the saved card
    read by ``_request``."""
    state = _state(p)
    if p.capture_minor is not None and p.status in (
            PaymentStatus.PENDING, PaymentStatus.ACTION_NEEDED, PaymentStatus.AUTHORIZED):
        amount = p.capture_minor
        if p.status == PaymentStatus.AUTHORIZED:
            if amount > 0:
                return _Step("capture", amount, p.ref, p.key, state=state)
            return _Step("cancel", 0, p.ref, p.key, state=state)
        if amount > 0:  # never authorised (booked late, declined, hold lapsed): charge now
            request = _request(p, amount)
            return _Step("charge", amount, p.ref, request.key, request, state)
        # Nothing held, nothing to take.
        return _Step("release", 0, p.ref, p.key, state=state)
    if (p.capture_minor is None and now >= p.authorize_at
            and p.status in (PaymentStatus.PENDING, PaymentStatus.ACTION_NEEDED)):
        request = _request(p, p.amount_minor)
        return _Step("authorize", p.amount_minor, p.ref, request.key, request, state)
    wanted = min(p.refund_minor, p.captured_minor)
    if p.status == PaymentStatus.CAPTURED and wanted > p.refunded_minor:
        return _Step("refund", wanted - p.refunded_minor, p.ref,
                     f"{p.key}:refund:{p.refunded_minor}", state=state)
    return None


def _call(gw: PaymentGateway, step: _Step, currency: str) -> PaymentResult:
    """The one gateway call of a step. Never inside a transaction (tests assert it)."""
    if step.kind == "authorize" and step.request is not None:
        return gw.authorize(step.request)
    if step.kind == "charge" and step.request is not None:
        return gw.charge(step.request)
    if step.kind == "capture":
        return gw.capture(ref=step.ref, amount_minor=step.amount, currency=currency,
                          key=step.key)
    if step.kind == "cancel":
        return gw.cancel(ref=step.ref, key=step.key)
    if step.kind == "refund":
        return gw.refund(ref=step.ref, amount_minor=step.amount, currency=currency,
                         key=step.key)
    return PaymentResult(ref=step.ref, status="cancelled", amount_minor=0)  # release


def _record_step(p: Payment, step: _Step, res: PaymentResult, now: datetime, *,
                 collect: list[ledger.Entry] | None = None) -> None:
    """Apply a step's answer to the payment (the caller saves it) and the ledger."""
    if step.kind == "authorize":
        p.ref, p.status = res.ref, PaymentStatus.AUTHORIZED
    elif step.kind in ("capture", "charge"):
        p.ref, p.status, p.captured_minor = res.ref, PaymentStatus.CAPTURED, res.amount_minor
        entry = ledger.Entry(f"capture:{p.key}", "capture", p.currency, (
            (ledger.gateway_account(p.gateway), -p.captured_minor),
            (_payer_account(p), p.captured_minor)), f"{p.key} captured")
        if collect is not None:  # the caller records it (with others, under its lock)
            collect.append(entry)
        else:
            ledger.record(entry.key, entry.kind, entry.currency, entry.lines, at=now,
                          memo=entry.memo)
    elif step.kind in ("cancel", "release"):
        p.status = PaymentStatus.CANCELLED
    elif step.kind == "refund":
        ledger.record(f"refund:{p.key}:{p.refunded_minor}", "refund", p.currency, [
            (_payer_account(p), -step.amount), (ledger.gateway_account(p.gateway),
                                                step.amount)],
            at=now, memo=f"{p.key} refund")
        p.refunded_minor += step.amount
    p.decline_code, p.last_error, p.attempts = "", "", 0
    p.next_due_at = _payment_next_due(p, now)


_MAX_STEPS = 4  # authorise, capture (or charge after a lapsed hold), refund: then done


def _payment_step(p: Payment, now: datetime, *,
                  collect: list[ledger.Entry] | None = None) -> None:
    """Move an offline payment as far as it can go now, in the caller's transaction (under
    the payment's row lock). Mutates ``p``; the caller saves it. No gateway is called: the
    offline gateway's answers are ``offline.answer``."""
    if p.gateway != "offline":
        raise ValueError(f"{p.gateway} payments move through their gate (run_payment)")
    for _ in range(_MAX_STEPS):
        step = _plan_step(p, now)
        if step is None:
            break
        _record_step(p, step, offline.answer(step.kind, key=step.key, ref=step.ref,
                                             amount_minor=step.amount), now, collect=collect)
    p.decline_code, p.last_error, p.attempts = "", "", 0
    p.next_due_at = _payment_next_due(p, now)


def _payer_account(p: Payment) -> str:
    return ledger.student_account(p.student_id)


def _payment_next_due(p: Payment, now: datetime) -> datetime | None:
    """When the payment's gate must run next (None: nothing left to do)."""
    if p.capture_minor is None and p.status in (PaymentStatus.PENDING,
                                                PaymentStatus.ACTION_NEEDED):
        return max(p.authorize_at, now)
    if p.capture_minor is not None and p.status in (
            PaymentStatus.PENDING, PaymentStatus.ACTION_NEEDED, PaymentStatus.AUTHORIZED):
        return now
    if p.status == PaymentStatus.CAPTURED and min(p.refund_minor,
                                                   p.captured_minor) > p.refunded_minor:
        return now
    return None


def _payment_lease(gateway: str) -> timedelta:
    """How long a payment's claim lasts from the plan of a call: longer than the slowest
    call can take (the gateway's ``call_budget_s``: its timeout and retries), so no other
    worker takes the payment over mid-call."""
    budget = get_gateway(gateway).call_budget_s
    return max(LEASE, timedelta(seconds=budget + 30))


def run_payment(payment_id: int, *, now: datetime, owner: str, claimed: bool = False) -> bool:
    """One payment's gate: plan the next call in a short transaction, call the gateway with
    the lease held and no transaction open, record the answer in another short transaction;
    until nothing is left to do now. Returns False when the gateway refused or was away
    (the payment is due again later)."""
    if not claimed and not due.claim_one(Payment, payment_id, now=now, owner=owner,
                                         lease=LEASE):
        return True  # another run holds it
    started = clock.now()
    gw: PaymentGateway | None = None
    for _ in range(_MAX_STEPS + 1):
        planned = _plan_payment(payment_id, now=now, owner=owner, started=started)
        if planned is None:
            return True
        p, step = planned
        gw = gw or get_gateway(p.gateway)
        try:
            res = _call(gw, step, p.currency)
        except PaymentDeclined as exc:
            _record_decline(payment_id, step, exc, now=now, owner=owner)
            if exc.code == "authorization_expired":
                continue  # the hold is gone: the next step charges instead
            metrics.PAYMENT_CALLS.labels(gateway=p.gateway, result="declined").inc()
            return False
        except GatewayUnavailable as exc:
            _record_unavailable(payment_id, exc, now=now, owner=owner)
            metrics.PAYMENT_CALLS.labels(gateway=p.gateway, result="retry").inc()
            return False
        _record_answer(payment_id, step, res, now=now, owner=owner)
        metrics.PAYMENT_CALLS.labels(gateway=p.gateway, result="ok").inc()
    # More steps than a payment has: something keeps changing it. Look again shortly.
    with transaction.atomic(durable=True):
        due.release(Payment, payment_id, owner=owner, next_due_at=now + timedelta(seconds=1))
        _wake_on_commit(now + timedelta(seconds=1))
    return True


def _plan_payment(payment_id: int, *, now: datetime, owner: str, started: datetime
                  ) -> tuple[Payment, _Step] | None:
    """The plan transaction: the next step, with our lease renewed; or, with nothing left
    to do now (or the lease lost), None after ending the claim."""
    with transaction.atomic(durable=True):
        p = Payment.objects.select_for_update().filter(pk=payment_id).first()
        if p is None or p.lease_owner != owner:
            return None  # gone, or another run took it over (our lease had expired)
        step = _plan_step(p, now) if p.gateway != "offline" else None
        if step is None:
            if p.gateway == "offline":
                _payment_step(p, now)  # answered at once: no call, no second transaction
            else:
                p.decline_code, p.last_error, p.attempts = "", "", 0
                p.next_due_at = _payment_next_due(p, now)
            p.lease_until, p.lease_owner = None, ""
            p.save()
            _wake_on_commit(p.next_due_at if p.next_due_at and p.next_due_at > now else None)
            return None
        # The lease is renewed for each call. ``now`` is the run's instant (the one its claim
        # used), advanced by the time the run has taken so far.
        lease_until = now + (clock.now() - started) + _payment_lease(p.gateway)
        Payment.objects.filter(pk=p.pk).update(lease_until=lease_until)
        return p, step


def _locked_if_ours(payment_id: int, owner: str) -> Payment | None:
    p = Payment.objects.select_for_update().filter(pk=payment_id).first()
    if p is None or p.lease_owner != owner:
        log.warning("payment %s: the lease was lost during a gateway call; the next run "
                    "replays it with the same idempotency key", payment_id)
        return None
    return p


def _record_answer(payment_id: int, step: _Step, res: PaymentResult, *, now: datetime,
                   owner: str) -> None:
    with transaction.atomic(durable=True):
        p = _locked_if_ours(payment_id, owner)
        if p is None:
            return
        if _state(p) != step.state:
            # Changed while the gateway was called (a webhook): plan again from what the
            # row says now; a repeated call replays its first answer (same key).
            log.warning("payment %s changed during its %s call; planning again", p.key,
                        step.kind)
            Payment.objects.filter(pk=p.pk).update(next_due_at=now)
            return
        _record_step(p, step, res, now)
        p.save()  # keeps the lease: the run plans its next step (or ends the claim) next


def _record_decline(payment_id: int, step: _Step, exc: PaymentDeclined, *, now: datetime,
                    owner: str) -> None:
    with transaction.atomic(durable=True):
        p = _locked_if_ours(payment_id, owner)
        if p is None:
            return
        if exc.code == "authorization_expired" and step.kind == "capture":
            # The hold lapsed (card holds last 5-7 days) or was released at the gateway:
            # the amount is charged instead, at once (the run's next step).
            if p.status == PaymentStatus.AUTHORIZED and p.ref == step.ref:
                p.status, p.ref = PaymentStatus.PENDING, ""
            p.save(update_fields=["status", "ref", "updated_at"])
            return
        p.status = PaymentStatus.ACTION_NEEDED if p.status in (
            PaymentStatus.PENDING, PaymentStatus.ACTION_NEEDED) else p.status
        p.decline_code, p.last_error = exc.code[:40], exc.message[:2000]
        p.attempts += 1
        p.declines += 1
        p.next_due_at = now + PAYMENT_ACTION_RETRY
        p.lease_until, p.lease_owner = None, ""
        p.save()
        _notify_payment_problem(p, now)
        _wake_on_commit(p.next_due_at)


def _record_unavailable(payment_id: int, exc: GatewayUnavailable, *, now: datetime,
                        owner: str) -> None:
    with transaction.atomic(durable=True):
        p = _locked_if_ours(payment_id, owner)
        if p is None:
            return
        p.attempts += 1
        delay = timedelta(seconds=min(600, 2 ** min(p.attempts, 9)))
        if exc.retry_after:
            delay = max(delay, timedelta(seconds=exc.retry_after))
        p.last_error = str(exc)[:2000]
        p.next_due_at = now + delay
        p.lease_until, p.lease_owner = None, ""
        p.save()
        _wake_on_commit(p.next_due_at)


def _notify_payment_problem(p: Payment, now: datetime) -> None:
    from coachgate.notify.services import notify

    public = settings.COACHGATE.get("PUBLIC_URL", "")
    notify(p.student, "payment_problem",
           {"payment_key": p.key, "code": p.decline_code, "amount_minor": p.amount_minor,
            "currency": p.currency, "card_url": f"{public}/api/v1/billing/card",
            "authentication": p.decline_code == "authentication_required"},
           key=f"payment_problem:{p.key}:{p.attempts}", now=now)


# --- cards ----------------------------------------------------------------------------------


@dataclass
class CardSetupView:
    gateway: str
    status: str
    setup_ref: str
    client_secret: str
    publishable_key: str
    has_card: bool


def start_card_setup(user: User) -> CardSetupView:
    """Begin saving a card. The gateway is called between two short transactions, never
    inside one. Two setups racing for one student use the same idempotency keys (the
    customer's, and the setup's from the profile as read), so they get the same objects."""
    gw = get_gateway()
    with transaction.atomic(durable=True):
        profile, _ = BillingProfile.objects.get_or_create(user=user,
                                                          defaults={"gateway": gw.name})
    customer = gw.ensure_customer(user_id=user.pk, email=user.email,
                                  existing_ref=profile.customer_ref)
    setup = gw.start_card_setup(customer_ref=customer.ref,
                                key=f"setup:{user.pk}:{profile.updated_at.timestamp()}")
    with transaction.atomic(durable=True):
        profile = BillingProfile.objects.select_for_update().get(pk=profile.pk)
        profile.gateway, profile.customer_ref, profile.setup_ref = gw.name, customer.ref, setup.ref
        fields = ["gateway", "customer_ref", "setup_ref", "updated_at"]
        if setup.payment_method_ref:
            profile.payment_method_ref = setup.payment_method_ref
            fields.append("payment_method_ref")
        profile.save(update_fields=fields)  # a card saved meanwhile (a webhook) stays
    return CardSetupView(gw.name, setup.status, setup.ref, setup.client_secret,
                         str(settings.COACHGATE.get("STRIPE_PUBLISHABLE_KEY", "")),
                         bool(profile.payment_method_ref))


def confirm_card_setup(user: User, *, now: datetime | None = None) -> CardSetupView:
    """After the browser finished the setup: store the saved card, retry held payments.
    The gateway is asked outside any transaction."""
    now = now or clock.now()
    profile = BillingProfile.objects.filter(user=user).first()
    if profile is None or not profile.setup_ref:
        raise NotFound("Start a card setup first.")
    setup = get_gateway(profile.gateway).card_setup(profile.setup_ref)
    if setup.status == "succeeded" and setup.payment_method_ref:
        with transaction.atomic(durable=True):
            _card_saved(profile, setup.payment_method_ref, now)
    return CardSetupView(profile.gateway, setup.status, setup.ref, "",
                         str(settings.COACHGATE.get("STRIPE_PUBLISHABLE_KEY", "")),
                         bool(profile.payment_method_ref))


def _card_saved(profile: BillingProfile, payment_method_ref: str, now: datetime) -> None:
    with transaction.atomic():
        profile.payment_method_ref = payment_method_ref
        profile.save(update_fields=["payment_method_ref", "updated_at"])
        # Payments refused with the old card try the new one now.
        n = Payment.objects.filter(student_id=profile.user_id,
                                   status=PaymentStatus.ACTION_NEEDED).update(next_due_at=now)
        if n:
            _wake_on_commit(now)


# --- webhooks -------------------------------------------------------------------------------


def receive_webhook(gateway: str, payload: bytes, headers: dict[str, str], *,
                    now: datetime | None = None) -> tuple[WebhookEvent, bool]:
    """Verify, then store once by the provider's event id; processing is a task."""
    now = now or clock.now()
    try:
        gw = get_gateway(gateway)
    except (ImproperlyConfigured, ValueError):
        raise GatewayNotConfigured() from None
    try:
        event = gw.parse_webhook(payload, headers)
    except InvalidSignature as exc:
        raise InvalidWebhookSignature(str(exc) or None) from None
    with transaction.atomic(durable=True):
        row, created = WebhookEvent.objects.get_or_create(
            gateway=gateway, event_id=event.id,
            defaults={"type": event.type, "payload": event.data, "received_at": now})
        if created:
            from .tasks import process_webhook

            transaction.on_commit(lambda: process_webhook.enqueue(row.pk))
    return row, created


def process_webhook(event_pk: int, *, now: datetime | None = None) -> str:
    now = now or clock.now()
    with transaction.atomic(durable=True):
        row = WebhookEvent.objects.select_for_update().filter(pk=event_pk).first()
        if row is None or row.status != WebhookStatus.RECEIVED:
            return "done"
        obj = row.payload or {}
        status = WebhookStatus.IGNORED
        if row.type == "setup_intent.succeeded":
            profile = BillingProfile.objects.filter(setup_ref=obj.get("id", "")).first()
            pm = obj.get("payment_method") or ""
            if profile is not None and pm:
                _card_saved(profile, str(pm), now)
                status = WebhookStatus.PROCESSED
        elif row.type.startswith("payment_intent."):
            payment = Payment.objects.select_for_update().filter(
                ref=obj.get("id", "")).first() if obj.get("id") else None
            if payment is not None:
                _apply_payment_event(payment, row.type, obj, now)
                status = WebhookStatus.PROCESSED
        row.status, row.processed_at = status, now
        row.save(update_fields=["status", "processed_at"])
        return str(status)


def _apply_payment_event(p: Payment, kind: str, obj: dict[str, Any], now: datetime) -> None:
    """The gateway tells us what happened outside our own calls (an authorisation that
    expired, a payment that failed later): put the payment where its gate can act."""
    if kind == "payment_intent.canceled" and p.status == PaymentStatus.AUTHORIZED:
        # The hold expired or was released at the gateway: authorise again or charge.
        p.status, p.ref, p.next_due_at = PaymentStatus.PENDING, "", now
        p.save(update_fields=["status", "ref", "next_due_at", "updated_at"])
        _wake_on_commit(now)
    elif kind == "payment_intent.payment_failed" and p.status in (
            PaymentStatus.PENDING, PaymentStatus.AUTHORIZED):
        err = obj.get("last_payment_error") or {}
        p.status = PaymentStatus.ACTION_NEEDED
        # As the gateway reports it: "generic_decline" says less than the code.
        specific = err.get("decline_code")
        p.decline_code = str((specific if specific and specific != "generic_decline" else None)
                             or err.get("code") or "payment_failed")[:40]
        p.attempts += 1
        p.declines += 1
        p.save(update_fields=["status", "decline_code", "attempts", "declines", "updated_at"])
        _notify_payment_problem(p, now)


# --- reading --------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutcomeState:
    """What billing says about one session for one viewer: the viewer's own settlement as
    words (students only), and when the no-show wait ends (None once it is settled or
    before it started). The sessions page turns it into buttons (web.outcomes)."""
    settled: str = ""
    no_show_from: datetime | None = None


def outcome_states(actor: User, sessions: list[Session], now: datetime
                   ) -> dict[int, OutcomeState]:
    from coachgate.kit.money import format_amount

    settled = {s.session_id: s for s in Settlement.objects.filter(
        session__in=sessions).filter(student=actor)} if not actor.is_coach else {}
    out: dict[int, OutcomeState] = {}
    for session in sessions:
        mine = settled.get(session.pk)
        text = (f"{_OUTCOME_TEXT[Outcome(mine.outcome)]}: charged "
                f"{format_amount(mine.charge_minor, mine.currency)}") if mine else ""
        open_ = session.status not in TERMINAL and now >= session.starts_at
        out[session.pk] = OutcomeState(
            settled=text,
            no_show_from=(rules.no_show_allowed_from(session.starts_at, thresholds_of(session))
                          if open_ else None))
    return out


def settlements_of(actor: User, session_id: int) -> list[Settlement]:
    session = scheduling.get_session(actor, session_id)
    qs = Settlement.objects.filter(session=session).order_by("pk")
    if not (actor.is_admin or _is_coach(actor, session)):
        qs = qs.filter(student=actor)
    return list(qs)


def sweep(*, now: datetime | None = None, owner: str = "", limit: int = 500) -> DueReport:
    """Repair what a lost event missed (bookings without their billing rows), then run
    every gate that is due. Safe at any time, from any number of workers."""
    now = now or clock.now()
    missing = list(Booking.objects.filter(charge__isnull=True,
                                          session__ends_at__gte=now - timedelta(days=7))
                   .values_list("pk", flat=True)[:limit])
    # Each repair on its own (kit.due.isolated): one that raises is logged and counted,
    # and the next sweep tries it again; the others and the gates still run.
    repair_failed = 0
    for booking_id in missing:
        repair_failed += not due.isolated(
            "booking_repair", f"recording booking {booking_id}",
            record_booking, booking_id, now=now, atomic=True)
    gateless = list(Session.objects.filter(billing__isnull=True, bookings__isnull=False,
                                           ends_at__gte=now - timedelta(days=7))
                    .select_related("offer").distinct()[:limit])
    for session in gateless:
        repair_failed += not due.isolated(
            "settle_repair", f"the settlement gate of session {session.pk}",
            sync_session_gate, session, now=now, atomic=True)
    unprocessed = list(WebhookEvent.objects.filter(
        status=WebhookStatus.RECEIVED, received_at__lte=now - timedelta(seconds=30))
        .values_list("pk", flat=True)[:limit])
    for pk in unprocessed:
        def record(exc: Exception, pk: int = pk) -> None:  # kept "received": retried
            WebhookEvent.objects.filter(pk=pk).update(error=due.describe(exc))

        repair_failed += not due.isolated(
            "webhook", f"webhook event {pk}", process_webhook, pk, now=now, on_error=record)
    report = run_due(now=now, owner=owner)
    report.errors += repair_failed
    return report


# --- balances, statements, payouts ------------------------------------------------------------


def _coach_for(actor: User, coach_id: int) -> CoachProfile:
    coach = CoachProfile.objects.filter(pk=coach_id).first()
    if coach is None or not (actor.is_admin or coach.user_id == actor.pk):
        raise NotFound("No such coach.")
    return coach


def coach_balances(actor: User, coach_id: int) -> dict[str, int]:
    """What the platform owes the coach, per currency (earned and not yet paid out)."""
    coach = _coach_for(actor, coach_id)
    account = ledger.coach_account(coach.pk)
    return {cur: total for (acc, cur), total in ledger.balances(account).items()
            if acc == account}


def coach_statement(actor: User, coach_id: int, *, start: datetime, end: datetime,
                    currency: str) -> ledger.Statement:
    coach = _coach_for(actor, coach_id)
    start, end = clock.require_aware(start, "from"), clock.require_aware(end, "to")
    if end <= start:
        raise InvalidInput("'to' must be after 'from'.", details={"field": "to"})
    if end - start > timedelta(days=366):
        raise InvalidInput("A statement covers at most 366 days.", details={"field": "to"})
    return ledger.statement(ledger.coach_account(coach.pk), currency, start, end)


def record_payout(actor: User, coach_id: int, *, currency: str, amount_minor: int,
                  reference: str, now: datetime | None = None) -> JournalEntry:
    """An admin records money paid out to a coach (outside coachgate, or by the gateway's
    payouts). Never more than the coach's balance; once per reference."""
    now = now or clock.now()
    if not actor.is_admin:
        raise Forbidden("Only admins record payouts.")
    coach = _coach_for(actor, coach_id)
    if amount_minor <= 0:
        raise InvalidInput("A payout is a positive amount.", details={"field": "amount_minor"})
    reference = reference.strip()
    if not reference:
        raise InvalidInput("Give the payout's reference (bank transfer id, ...).",
                           details={"field": "reference"})
    account = ledger.coach_account(coach.pk)
    with transaction.atomic(durable=True):
        # One payout at a time per coach: the balance check and the entry are one step.
        CoachProfile.objects.select_for_update().filter(pk=coach.pk).first()
        if JournalEntry.objects.filter(key=f"payout:{coach.pk}:{reference}"[:80]).exists():
            raise AlreadySettled("A payout with this reference is already recorded.")
        owed = ledger.balance(account, currency)
        if amount_minor > owed:
            raise InvalidInput(f"The coach is owed {owed} in {currency}; a payout cannot be "
                               "larger.", details={"field": "amount_minor", "owed_minor": owed})
        entry = ledger.record(f"payout:{coach.pk}:{reference}"[:80], "payout", currency, [
            (account, -amount_minor), (ledger.gateway_account("payouts"), amount_minor)],
            at=now, memo=f"payout {reference}"[:200])
        if entry is None:  # unreachable: the key was checked above, under the coach's lock
            raise AlreadySettled("A payout with this reference is already recorded.")
        return entry

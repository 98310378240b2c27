"""A booking's billing: the charge agreed, its payment and session gates, prepayments."""

from __future__ import annotations

import contextlib
import logging
from datetime import datetime, timedelta

from coachgate.accounts.models import User
from coachgate.catalog.models import Offer
from coachgate.kit import money
from coachgate.kit.errors import (
    PaymentMethodRequired,
)
from coachgate.kit.rows import insert as insert_rows
from coachgate.scheduling.lifecycle import TERMINAL
from coachgate.scheduling.models import Booking, BookingStatus, Session

from .. import ledger, rules
from ..models import (
    BillingProfile,
    BookingCharge,
    Payment,
    PaymentStatus,
    SessionBilling,
)
from ..rules import Outcome
from ._common import _authorize_before_hours, _wake_on_commit, gateway_name, percentages
from .payments import _after_payment_change

log = logging.getLogger(__name__)


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
    charge, _ = BookingCharge.objects.get_or_create(booking=booking,
                                                    defaults=_offer_price(booking, now))
    return charge


def _offer_price(booking: Booking, now: datetime) -> dict[str, object]:
    """The charge of a booking nothing prepaid: the offer's price."""
    session = booking.session
    return {"session": session, "student_id": booking.student_id,
            "coach_id": session.coach_id, "price_minor": session.offer.price_minor,
            "currency": session.offer.currency, "created_at": now}


def record_booking(booking_id: int, *, now: datetime) -> None:
    """A booking was made: its price, the session's settlement gate, and its payment; each
    only if missing (the sweep's repair of a booking recorded before billing wrote its rows
    with the booking)."""
    booking = (Booking.objects.select_related("session__offer").filter(pk=booking_id).first())
    if booking is None:
        return
    charge = _charge_for(booking, now)
    if not charge.funded_by and charge.price_minor > 0:
        _payment_for_booking(charge, booking, now)
    sync_session_gate(booking.session, now=now)


def record_new_booking(booking: Booking, *, new_session: bool, now: datetime) -> None:
    """``record_booking`` for a booking made in this transaction (``new_session``: and its
    session with it). Nothing of it can exist yet except a charge something funded in this
    transaction (a pack, on the same booking object), so the rows are inserted without
    reading first: three INSERTs where a repair needs a dozen statements."""
    session = booking.session
    charge = None
    if Booking.charge.is_cached(booking):  # funded by a prepaid source (fund_booking)
        with contextlib.suppress(BookingCharge.DoesNotExist):  # a cached "none"
            charge = booking.charge
    if charge is None:
        charge = BookingCharge(booking=booking, **_offer_price(booking, now))
        insert_rows(charge)
    if not charge.funded_by and charge.price_minor > 0:
        _payment_for_booking(charge, booking, now, new=True)
    if not new_session:  # another seat of a group session: its gate exists
        sync_session_gate(session, now=now)
        return
    insert_rows(SessionBilling(session=session, settle_at=session.ends_at,
                               next_due_at=session.ends_at))
    _wake_on_commit(session.ends_at)


def _payment_for_booking(charge: BookingCharge, booking: Booking, now: datetime, *,
                         new: bool = False) -> Payment:
    """The booking's payment (``new``: the booking was made in this transaction, so it has
    none yet and is inserted without a read)."""
    before = timedelta(hours=_authorize_before_hours())
    at = rules.authorize_at(booked_at=booking.booked_at, starts_at=booking.session.starts_at,
                            before=before)
    fields = {"student_id": booking.student_id, "gateway": gateway_name(),
              "currency": charge.currency, "amount_minor": charge.price_minor,
              "authorize_at": at, "next_due_at": at, "created_at": now}
    if new:
        payment, created = Payment(key=f"booking:{booking.pk}", **fields), True
        insert_rows(payment)
    else:
        payment, created = Payment.objects.get_or_create(key=f"booking:{booking.pk}",
                                                         defaults=fields)
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

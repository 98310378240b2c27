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

The code lives in one module per concern, all re-exported here (callers keep importing
from ``coachgate.billing.services``): ``bookings`` (the charge, payment and gates of a
booking), ``settlement`` (outcomes into settlements and ledger entries), ``outcomes`` (the
outcome actions), ``gates`` (what the worker runs as it falls due, and the sweep),
``payments`` (the payment gate: plan, call, record), ``cards``, ``webhooks`` and
``reading`` (outcome states, settlements, balances, statements, payouts).
"""

from __future__ import annotations

from ._common import (
    BATCH,
    LEASE,
    PAYMENT_ACTION_RETRY,
    gateway_name,
    percentages,
    thresholds_of,
)
from .bookings import (
    check_booking,
    forfeit_prepaid,
    fund_booking,
    record_booking,
    record_new_booking,
    record_prepayment,
    sync_session_gate,
)
from .cards import (
    CardSetupView,
    confirm_card_setup,
    start_card_setup,
)
from .gates import (
    SETTLE_CHUNK,
    DueReport,
    run_due,
    sweep,
)
from .outcomes import (
    MEETING_EVENTS,
    OutcomeResult,
    complete,
    mark_student_no_show,
    record_meeting_event,
    report_coach_no_show,
)
from .payments import (
    request_refund,
    run_payment,
)
from .reading import (
    OutcomeState,
    PayoutLine,
    PeriodEarnings,
    coach_balances,
    coach_currencies,
    coach_payouts,
    coach_settlements,
    coach_statement,
    describe_outcome,
    earnings_by_month,
    outcome_states,
    record_payout,
    settlements_of,
    statement_document,
)
from .settlement import (
    settle_session,
    settle_sessions,
)
from .webhooks import (
    process_webhook,
    receive_webhook,
)

__all__ = [
    "BATCH",
    "LEASE",
    "MEETING_EVENTS",
    "PAYMENT_ACTION_RETRY",
    "SETTLE_CHUNK",
    "CardSetupView",
    "DueReport",
    "OutcomeResult",
    "OutcomeState",
    "PayoutLine",
    "PeriodEarnings",
    "check_booking",
    "coach_balances",
    "coach_currencies",
    "coach_payouts",
    "coach_settlements",
    "coach_statement",
    "complete",
    "confirm_card_setup",
    "describe_outcome",
    "earnings_by_month",
    "forfeit_prepaid",
    "fund_booking",
    "gateway_name",
    "mark_student_no_show",
    "outcome_states",
    "percentages",
    "process_webhook",
    "receive_webhook",
    "record_booking",
    "record_meeting_event",
    "record_new_booking",
    "record_payout",
    "record_prepayment",
    "report_coach_no_show",
    "request_refund",
    "run_due",
    "run_payment",
    "settle_session",
    "settle_sessions",
    "settlements_of",
    "start_card_setup",
    "statement_document",
    "sweep",
    "sync_session_gate",
    "thresholds_of",
]

"""Billing's gates: the settlement and payment gates the worker runs as they fall due,
and the sweep that repairs what a lost wake-up left behind."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from coachgate.kit import clock, due, metrics
from coachgate.scheduling.models import Booking, Session

from ..models import (
    Payment,
    SessionBilling,
    WebhookEvent,
    WebhookStatus,
)
from ._common import BATCH, LEASE
from .bookings import record_booking, sync_session_gate
from .payments import run_payment
from .settlement import settle_session, settle_sessions
from .webhooks import process_webhook

log = logging.getLogger(__name__)


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
            from ..tasks import run_due as run_due_task

            due.wake(run_due_task, clock.now())
        for i in range(0, len(gates), SETTLE_CHUNK):
            report.errors += _run_gates(gates[i:i + SETTLE_CHUNK], now=now, owner=owner)
        report.sessions += len(gates)
        if len(gates) < BATCH:
            break
    from ..tasks import run_due as run_due_task

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
        from ..tasks import run_due as run_due_task

        log.exception("settlement of session %s failed", session_id)
        due.record_failure(SessionBilling, session_id, owner=owner, now=now, exc=exc,
                           wake_task=run_due_task)
        return False


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

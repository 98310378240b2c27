"""Session events for the domains above scheduling (access, billing, packs, notify).

Scheduling knows nothing of them: its services emit an event, and the event is sent only
once the transaction that caused it has committed (dropped on rollback).
"""

from __future__ import annotations

from django.db import transaction
from django.dispatch import Signal

# Sent with: kind (str), session_id (int), booking_id (int | None)
session_changed = Signal()

# Sent synchronously before a booking is written, with: student, offer, start, end, now.
# A receiver refuses the booking by raising a CoachgateError (its 4xx reaches the caller).
booking_requested = Signal()


def emit_on_commit(kind: str, session_id: int, booking_id: int | None = None) -> None:
    # robust: the change has committed; a failing receiver is logged, never turned into an
    # error for the caller whose booking succeeded (the access sweep repairs what a lost
    # event missed).
    transaction.on_commit(
        lambda: session_changed.send(
            sender=None, kind=kind, session_id=session_id, booking_id=booking_id
        ),
        robust=True,
    )

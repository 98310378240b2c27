"""Session events for the domains above scheduling (access, billing, packs, notify).

Scheduling knows nothing of them: its services emit an event, and the event is sent only
once the transaction that caused it has committed (dropped on rollback).
"""

from __future__ import annotations

from enum import StrEnum

from django.db import transaction
from django.dispatch import Signal


class SessionEventKind(StrEnum):
    """Every kind of entry in a session's audit trail. The first ten change the session and
    are sent as ``session_changed``; the rest are facts recorded beside it."""

    BOOKED = "booked"  # a new session with its first booking
    SEAT_TAKEN = "seat_taken"  # another student joined a group session
    SEAT_FREED = "seat_freed"  # a student of a group session cancelled their seat
    CANCELLED = "cancelled"
    RESCHEDULED = "rescheduled"
    STARTED = "started"
    COMPLETED = "completed"
    NO_SHOW_STUDENT = "no_show_student"
    NO_SHOW_COACH = "no_show_coach"
    EARLY_END_SHORT = "early_end_short"
    STUDENT_MARKED_ABSENT = "student_marked_absent"  # one seat of a group session


# A new booking exists (the booking id comes with the event). booking_made has reached
# every receiver already, in the booking's transaction.
BOOKING_MADE = frozenset({SessionEventKind.BOOKED, SessionEventKind.SEAT_TAKEN})

# Sent with: kind (SessionEventKind), session_id (int), booking_id (int | None)
session_changed = Signal()

# Sent inside the booking's transaction once the booking row exists, with: booking (its
# session, offer and coach loaded), new_session (bool: this booking created the session) and
# now. Receivers write what a booking needs (its access row, its charge and gates, its
# confirmation and their task rows, kit.enqueue) in that transaction, so a booking never
# commits without them. Whatever a receiver raises undoes the booking: a CoachgateError
# reaches the caller as it is, anything else as 503 booking_not_completed.
booking_made = Signal()

# Sent synchronously before a booking is written, with: student, offer, start, end, now.
# A receiver refuses the booking by raising a CoachgateError (its 4xx reaches the caller).
booking_requested = Signal()


def send_session_changed(kind: SessionEventKind, session_id: int,
                         booking_id: int | None = None) -> None:
    """Send the event to every receiver, each on its own: a receiver that raises is logged
    (send_robust logs it with its traceback) and the others still run (access failing must
    not keep billing from recording the booking's charge). Each domain's sweep repairs what
    a failed receiver missed."""
    session_changed.send_robust(sender=None, kind=kind, session_id=session_id,
                                booking_id=booking_id)


def emit_on_commit(kind: SessionEventKind, session_id: int,
                   booking_id: int | None = None) -> None:
    # robust: the change has committed; a failing receiver is logged, never turned into an
    # error for the caller whose booking succeeded.
    transaction.on_commit(lambda: send_session_changed(kind, session_id, booking_id),
                          robust=True)

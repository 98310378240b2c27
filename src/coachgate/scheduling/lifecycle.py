"""Pure session lifecycle rules: the state machine and the cancellation policy.

Slot rules live in rules.py; these are the rules for what happens to a booked session.
No I/O and no clock: ``now`` is always passed in.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum


class SessionStatus(StrEnum):
    SCHEDULED = "scheduled"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    NO_SHOW_STUDENT = "no_show_student"
    NO_SHOW_COACH = "no_show_coach"
    EARLY_END_SHORT = "early_end_short"
    CANCELLED = "cancelled"


S = SessionStatus
TERMINAL: frozenset[SessionStatus] = frozenset(
    {S.COMPLETED, S.NO_SHOW_STUDENT, S.NO_SHOW_COACH, S.EARLY_END_SHORT, S.CANCELLED}
)
# Outcomes may be recorded from SCHEDULED too: a session nobody marked as started still
# completes at its scheduled end, and a student who never came never "started" it.
TRANSITIONS: dict[SessionStatus, frozenset[SessionStatus]] = {
    S.SCHEDULED: frozenset(
        {S.IN_PROGRESS, S.COMPLETED, S.NO_SHOW_STUDENT, S.NO_SHOW_COACH, S.EARLY_END_SHORT,
         S.CANCELLED}
    ),
    S.IN_PROGRESS: frozenset({S.COMPLETED, S.NO_SHOW_STUDENT, S.NO_SHOW_COACH,
                              S.EARLY_END_SHORT}),
    **{t: frozenset() for t in TERMINAL},
}
# Sessions in these states hold the coach's time: the overlap guarantee covers them.
LIVE: frozenset[SessionStatus] = frozenset(set(SessionStatus) - {S.CANCELLED})


def can_transition(current: str, target: str) -> bool:
    return SessionStatus(target) in TRANSITIONS[SessionStatus(current)]


class CancellationOutcome(StrEnum):
    FREE = "free"  # inside the free window: nothing is charged
    LATE_STUDENT = "late_student"  # settled as a student no-show
    BY_COACH = "by_coach"  # never charged; a pack session is given back
    BY_ADMIN = "by_admin"  # never charged


def decide_cancellation(
    *, by: str, starts_at: datetime, now: datetime, free_cancellation_hours: int
) -> CancellationOutcome:
    """What the offer's cancellation policy decides for a cancellation made ``now``."""
    if by == "coach":
        return CancellationOutcome.BY_COACH
    if by == "admin":
        return CancellationOutcome.BY_ADMIN
    if now <= starts_at - timedelta(hours=free_cancellation_hours):
        return CancellationOutcome.FREE
    return CancellationOutcome.LATE_STUDENT


def student_may_reschedule(
    *, starts_at: datetime, now: datetime, free_cancellation_hours: int
) -> bool:
    """Students move a session only while they could still cancel it for free."""
    return now <= starts_at - timedelta(hours=free_cancellation_hours)

"""Pure outbox rules: when to try again, when a send is stuck. ``now`` is passed in."""

from __future__ import annotations

from datetime import datetime, timedelta

# Delay before attempt n+1 after attempt n failed with a retry-able error.
BACKOFF: tuple[timedelta, ...] = (
    timedelta(seconds=30), timedelta(minutes=2), timedelta(minutes=10), timedelta(hours=1),
    timedelta(hours=1),
)
MAX_ATTEMPTS = len(BACKOFF) + 1  # 6: the sixth failure is final

# A send normally takes seconds (SMTP and Discord time out after 10 s). A row still
# "sending" after this long belongs to a worker that died.
STUCK_AFTER = timedelta(minutes=5)

# A pending row this late is a lost wake-up (its task was dropped), not a busy queue.
LOST_AFTER = timedelta(minutes=2)

DISCORD_MESSAGE_LIMIT = 2000


def next_attempt_at(attempts: int, now: datetime) -> datetime | None:
    """When to try again after ``attempts`` failed tries, or None when they are exhausted."""
    if attempts >= MAX_ATTEMPTS:
        return None
    return now + BACKOFF[min(max(attempts, 1), len(BACKOFF)) - 1]


def fit_discord_message(text: str) -> str:
    text = text.strip()
    if len(text) <= DISCORD_MESSAGE_LIMIT:
        return text
    return text[: DISCORD_MESSAGE_LIMIT - 1].rstrip() + "…"

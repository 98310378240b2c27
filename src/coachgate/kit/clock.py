"""The one place services read the clock.

Rules never call this: they take ``now`` as an argument. Services call ``now()`` when the
caller did not pass one, and tests move time with time-machine.
"""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC)


# Instants a user may send: anything else is a typo (year 9999 also overflows the
# arithmetic that follows: an end an hour later, a shift into a time zone).
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def require_aware(value: datetime, name: str = "datetime") -> datetime:
    """``value`` in UTC. Naive values are a programming error (ValueError); instants out
    of range are the caller's invalid input (InvalidInput, 422)."""
    from .errors import InvalidInput

    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
    problem = InvalidInput(f"'{name}' must be between the years 1900 and 9000.",
                           details={"field": name})
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        raise problem from None
    if not EARLIEST <= utc < LATEST:
        raise problem
    return utc

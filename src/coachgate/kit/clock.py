"""The one place services read the clock.

Rules never call this: they take ``now`` as an argument. Services call ``now()`` when the
caller did not pass one, and tests move time with time-machine.
"""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC)


def require_aware(value: datetime, name: str = "datetime") -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
    return value.astimezone(UTC)

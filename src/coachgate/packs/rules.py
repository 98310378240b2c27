"""Pack and seat rules. Pure: no I/O, no clock (``now`` is always passed in).

A pack of N prepaid sessions is ACTIVE from its purchase until it is DEPLETED (its N-th
session used) or EXPIRED (valid days after the purchase, sessions left unused). A renewal
is a newer pack of the same coach bought while the seat is still held; the old pack keeps
its own state and links to its renewal.

A seat is what a coach has a limited number of. It is ACTIVE while one of the student's
packs with that coach is active, in GRACE once none is (from the depletion or expiry, for
``grace`` hours), and RELEASED at the end of the grace, but never while a session booked
from its packs is still to come: then right after the last one ends. A final warning goes
out ``final_warning`` hours before the grace ends.

Timeline of a seat whose pack is depleted at D (defaults 72 h and 12 h):

    D ─────────────── D+60h (final warning) ──── D+72h (release, or after the last
                                                        scheduled session ends)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class PackStatus(StrEnum):
    ACTIVE = "active"
    DEPLETED = "depleted"
    EXPIRED = "expired"


class SeatStatus(StrEnum):
    ACTIVE = "active"
    GRACE = "grace"
    RELEASED = "released"


# A seat in these states counts against the coach's capacity.
HOLDING: frozenset[SeatStatus] = frozenset({SeatStatus.ACTIVE, SeatStatus.GRACE})

# An expired pack whose booked sessions have not all settled yet is looked at again this
# long after the last of them ends (settlement normally closes it before that).
CLOSE_RECHECK = timedelta(hours=1)


@dataclass(frozen=True)
class PackTimes:
    """Settings PACK_VALID_DAYS, PACK_GRACE_HOURS and PACK_FINAL_WARNING_HOURS."""

    valid: timedelta = timedelta(days=90)
    grace: timedelta = timedelta(hours=72)
    final_warning: timedelta = timedelta(hours=12)

    def __post_init__(self) -> None:
        if self.valid <= timedelta(0) or self.grace <= timedelta(0):
            raise ValueError("a pack's validity and grace must be positive")
        if not timedelta(0) < self.final_warning <= self.grace:
            raise ValueError("the final warning must come within the grace period")


# --- packs --------------------------------------------------------------------------------


def expires_at(purchased_at: datetime, times: PackTimes) -> datetime:
    return purchased_at + times.valid


def bookable_count(*, remaining: int, held: int) -> int:
    """Sessions still free to book: not used, and not booked and waiting for their outcome."""
    return max(0, remaining - held)


class Refusal(StrEnum):
    """Why a session cannot be booked from a pack (None: it can)."""

    NOT_ACTIVE = "not_active"
    EXPIRED = "expired"
    EMPTY = "empty"


def booking_refusal(*, status: PackStatus, remaining: int, held: int, expires_at: datetime,
                    now: datetime) -> Refusal | None:
    """Sessions are booked while the pack is active (before its expiry); the session itself
    may take place later, within the offer's horizon (003: "scheduled sessions can complete
    even if the pack expires"), and its seat waits for it."""
    if status == PackStatus.EXPIRED or (status == PackStatus.ACTIVE and now >= expires_at):
        return Refusal.EXPIRED
    if status != PackStatus.ACTIVE:
        return Refusal.NOT_ACTIVE
    if bookable_count(remaining=remaining, held=held) == 0:
        return Refusal.EMPTY
    return None


def first_free_number(size: int, taken: Iterable[int]) -> int:
    """The number (1-based) a new booking gets in its pack: the lowest not held by a live
    use. A session given back (coach cancellation) frees its number, so the pack's session
    values always add up to its price however bookings come and go."""
    used = set(taken)
    for k in range(1, size + 1):
        if k not in used:
            return k
    raise ValueError("every session of the pack is taken")


class AfterUse(StrEnum):
    """What using one session leads to (by the remaining count it leaves)."""

    NOTHING = "nothing"
    ONE_LEFT = "one_left"  # after session N-1: the renewal reminder
    DEPLETED = "depleted"  # after session N: the pack is complete, its seat enters grace


def after_use(remaining_after: int) -> AfterUse:
    if remaining_after == 0:
        return AfterUse.DEPLETED
    if remaining_after == 1:
        return AfterUse.ONE_LEFT
    return AfterUse.NOTHING


def pack_next_due(*, status: PackStatus, expires_at: datetime, closed: bool,
                  held_ends: Iterable[datetime], now: datetime) -> datetime | None:
    """When the pack's gate must run next.

    * active: at its expiry;
    * expired and not closed (its unused value not yet forfeited): at once when nothing
      booked from it is waiting for an outcome, else a while after the last such session;
    * otherwise never.
    """
    if status == PackStatus.ACTIVE:
        return expires_at
    if status == PackStatus.EXPIRED and not closed:
        ends = list(held_ends)
        return max([*ends, now]) + CLOSE_RECHECK if ends else now
    return None


def unused_value(price_minor: int, consumed_values: Iterable[int]) -> int:
    """What an expired pack's unused sessions were worth: the price less what was used."""
    value = price_minor - sum(consumed_values)
    if value < 0:
        raise ValueError("a pack cannot use more than its price")
    return value


# --- seats --------------------------------------------------------------------------------


def seat_status_for(*, current: SeatStatus, active_packs: int) -> SeatStatus:
    """A held seat is active while one of its packs is active, in grace otherwise. A
    released seat stays released (a purchase afterwards takes a new seat)."""
    if current == SeatStatus.RELEASED:
        return SeatStatus.RELEASED
    return SeatStatus.ACTIVE if active_packs > 0 else SeatStatus.GRACE


def grace_ends_at(lapsed_at: datetime, times: PackTimes) -> datetime:
    """The end of the grace that starts when the seat's last active pack lapsed (depleted
    or expired)."""
    return lapsed_at + times.grace


def final_warning_at(grace_end: datetime, times: PackTimes) -> datetime:
    return grace_end - times.final_warning


def release_at(grace_end: datetime, blocking_ends: Iterable[datetime]) -> datetime:
    """The grace end, or the end of the last session still to come if that is later."""
    return max([grace_end, *blocking_ends])


def may_release(*, status: SeatStatus, grace_end: datetime | None,
                blocking_ends: Iterable[datetime], now: datetime) -> bool:
    """Only a seat in grace, once the grace is over and no session booked from its packs
    ends after ``now``. ``blocking_ends`` are the scheduled ends of its sessions that are
    scheduled or in progress."""
    if status != SeatStatus.GRACE or grace_end is None:
        return False
    return now >= release_at(grace_end, blocking_ends)


def should_warn(*, status: SeatStatus, grace_end: datetime | None, warned: bool,
                now: datetime, times: PackTimes) -> bool:
    """The final warning, once, from its time until the grace ends (a gate that runs
    after the grace end does not tell the student "12 hours" any more)."""
    if status != SeatStatus.GRACE or grace_end is None or warned:
        return False
    return final_warning_at(grace_end, times) <= now < grace_end


def seat_next_due(*, status: SeatStatus, grace_end: datetime | None, warned: bool,
                  blocking_ends: Iterable[datetime], now: datetime,
                  times: PackTimes) -> datetime | None:
    """When the seat's gate must run next: the final warning, then the release."""
    if status != SeatStatus.GRACE or grace_end is None:
        return None
    if not warned and now < grace_end:
        return final_warning_at(grace_end, times)  # in the past when the warning is due now
    return release_at(grace_end, blocking_ends)

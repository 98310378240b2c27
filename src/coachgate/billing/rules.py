"""Outcome and money rules. Pure: no I/O, no clock (``now`` is always passed in).

Every amount is an integer count of the currency's minor unit. Ratios and percentages are
exact (``Fraction`` from strings such as "1/3", "10", "12.5"), never floats, so a person can
check each figure by hand:

    charge = price × charge% rounded half-up to the minor unit
    fee    = charge × fee%   rounded half-up
    payout = charge − fee                      (so charge = payout + fee, always)

The minor unit is what an integer amount counts, so the same rounding serves JPY (no minor
digits), USD (two) and KWD (three): only formatting differs (kit.money.format_amount).

A gateway may move only multiples of a *quantum* of minor units (Stripe: 10 fils of KWD,
100 of MGA's 1/100 ariary; kit.money.quantum). Settlement then rounds to the quantum, so
the ledger records exactly what the gateway takes, to the unit:

    charge = q × round_half_up(price × charge% / q), never above the price
    fee    = q × round_half_up(charge × fee% / q)
    payout = charge − fee

With q = 1 (the offline gateway, and most currencies at Stripe) this is the rule above.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction


class Outcome(StrEnum):
    """What a booking settles as. The first four are session outcomes (SPEC's table)."""

    COMPLETED = "completed"
    NO_SHOW_STUDENT = "no_show_student"
    NO_SHOW_COACH = "no_show_coach"
    EARLY_END_SHORT = "early_end_short"
    LATE_CANCELLATION = "late_cancellation"  # settled as a student no-show
    CANCELLED_BY_COACH = "cancelled_by_coach"  # never charged (also: by an admin)
    FREE_CANCELLATION = "free_cancellation"


# A consuming outcome uses one session of a pack (SPEC: completion and student no-show do;
# a coach no-show, a coach cancellation and anything not charged do not).
CONSUMING: frozenset[Outcome] = frozenset(
    {Outcome.COMPLETED, Outcome.NO_SHOW_STUDENT, Outcome.LATE_CANCELLATION})


def exact(value: str | int | Decimal | Fraction) -> Fraction:
    """An exact rational from a setting: "10", "12.5", "1/3", Decimal("0.5")."""
    if isinstance(value, Fraction):
        return value
    if isinstance(value, Decimal | int):
        return Fraction(value)
    text = str(value).strip()
    return Fraction(text)  # Fraction parses "1/3", "0.5", "12.5" exactly


def round_half_up(value: Fraction) -> int:
    """To the nearest integer, halves away from zero (all our amounts are >= 0)."""
    if value < 0:
        return -round_half_up(-value)
    return math.floor(value + Fraction(1, 2))


@dataclass(frozen=True)
class Percentages:
    """Platform settings (COACHGATE PLATFORM_FEE_PERCENT, NO_SHOW_CHARGE_PERCENT)."""

    fee: Fraction = Fraction(10)
    no_show_charge: Fraction = Fraction(50)

    def __post_init__(self) -> None:
        for name in ("fee", "no_show_charge"):
            v = getattr(self, name)
            if not 0 <= v <= 100:
                raise ValueError(f"{name} percentage must be between 0 and 100, not {v}")


def charge_percent(outcome: Outcome, pct: Percentages) -> Fraction:
    if outcome == Outcome.COMPLETED:
        return Fraction(100)
    if outcome in (Outcome.NO_SHOW_STUDENT, Outcome.LATE_CANCELLATION):
        return pct.no_show_charge
    return Fraction(0)


@dataclass(frozen=True)
class Split:
    price: int
    charge: int
    fee: int
    payout: int

    @property
    def uncharged(self) -> int:
        return self.price - self.charge


def split(price_minor: int, charge_pct: Fraction, fee_pct: Fraction, quantum: int = 1
          ) -> Split:
    """Charge, fee and payout of a price, each a multiple of ``quantum`` (the smallest
    amount the payment gateway moves exactly) when the price is one.

    A price off the quantum cannot be charged whole: offers refuse such prices, so only a
    row older than the gateway switch has one, and its charge is capped at the price
    rounded down to the quantum (the student is never charged more than the price)."""
    if price_minor < 0:
        raise ValueError("a price cannot be negative")
    if quantum < 1:
        raise ValueError("a quantum is a positive number of minor units")
    q = quantum
    charge = q * round_half_up(Fraction(price_minor) * charge_pct / (100 * q))
    charge = min(charge, price_minor - price_minor % q)
    fee = q * round_half_up(Fraction(charge) * fee_pct / (100 * q))
    return Split(price=price_minor, charge=charge, fee=fee, payout=charge - fee)


def settle(outcome: Outcome, price_minor: int, pct: Percentages, quantum: int = 1) -> Split:
    """SPEC's settlement table for one booking, rounded to the gateway's ``quantum``."""
    return split(price_minor, charge_percent(outcome, pct), pct.fee, quantum)


# --- time rules ----------------------------------------------------------------------------


def ratio_minutes(duration_minutes: int, ratio: str | Fraction) -> int:
    """floor(duration × ratio) minutes, exactly: 60 × 1/3 = 20, 100 × 2/3 = 66."""
    return math.floor(Fraction(duration_minutes) * exact(ratio))


@dataclass(frozen=True)
class Thresholds:
    no_show_wait_minutes: int
    min_payable_minutes: int


def thresholds(duration_minutes: int, wait_ratio: str, payable_ratio: str) -> Thresholds:
    """Defaults (thirds): 60 → 20/40, 90 → 30/60, 100 → 33/66."""
    return Thresholds(ratio_minutes(duration_minutes, wait_ratio),
                      ratio_minutes(duration_minutes, payable_ratio))


def no_show_allowed_from(starts_at: datetime, t: Thresholds) -> datetime:
    return starts_at + timedelta(minutes=t.no_show_wait_minutes)


@dataclass(frozen=True)
class Evidence:
    """What the meeting itself reported (an API now, provider webhooks later)."""

    started_at: datetime | None = None
    ended_at: datetime | None = None


def end_outcome(*, starts_at: datetime, ends_at: datetime, t: Thresholds,
                evidence: Evidence) -> Outcome:
    """The outcome of a session that reached its end (or was ended) with nobody marked
    absent: COMPLETED unless the meeting ended before the minimum payable time.

    * No end reported, or the meeting ran to the scheduled end: COMPLETED.
    * Otherwise the meeting lasted from its start (never counted before the scheduled
      start; the scheduled start when no start was reported) to its end: COMPLETED if that
      is at least min_payable, EARLY_END_SHORT if not.
    """
    if evidence.ended_at is None or evidence.ended_at >= ends_at:
        return Outcome.COMPLETED
    began = max(evidence.started_at or starts_at, starts_at)
    lasted = evidence.ended_at - began
    if lasted >= timedelta(minutes=t.min_payable_minutes):
        return Outcome.COMPLETED
    return Outcome.EARLY_END_SHORT


def authorize_at(*, booked_at: datetime, starts_at: datetime, before: timedelta) -> datetime:
    """When a session's card is authorised: ``before`` its start (card holds last 5–7
    days), or at once when it was booked later than that."""
    return max(booked_at, starts_at - before)


def pack_session_values(price_minor: int, size: int, quantum: int = 1) -> list[int]:
    """A pack's price split over its sessions, exactly: the values sum to the price and
    differ by at most one ``quantum`` (session k is worth q·(floor(P'·k/N) −
    floor(P'·(k−1)/N)) with P' = P / q), so what settlement charges or gives back of a
    session is a multiple of the quantum too. A price off the quantum (a row older than
    a gateway switch) leaves its remainder on the last session."""
    if size < 1:
        raise ValueError("a pack has at least one session")
    if quantum < 1:
        raise ValueError("a quantum is a positive number of minor units")
    units, rest = divmod(price_minor, quantum)
    values = [quantum * (units * k // size - units * (k - 1) // size)
              for k in range(1, size + 1)]
    values[-1] += rest
    return values

"""Pure slot engine: availability rules -> bookable UTC slots.

No Django, no I/O, and the clock is never read: ``now`` is always passed in.

Model (see SPEC "Availability and slots"):

* Availability is defined per *local date* in the coach's IANA timezone as wall-time ranges:
  the weekly rules of that weekday plus "extra" overrides, minus "blocked" overrides, merged
  when they overlap or touch.
* Candidate starts step through each merged range in *local wall time* (so a 09:00 rule is
  09:00 local on both sides of a DST change). Nonexistent wall times (spring-forward gap) are
  skipped; ambiguous ones (fall-back fold) are taken once, at their first occurrence (fold=0).
* A slot lasts ``duration`` of absolute time and must end no later than the UTC instant of the
  range's wall end.
* Buffers keep time free between sessions whatever the booking order: between an earlier
  session and a later one there must be earlier.buffer_after + later.buffer_before. Each
  busy interval carries its own session's buffers; the candidate uses the rules' buffers.
* Minimum notice, horizon, an optional window and the per-day cap then remove candidates.

All instants handed in must be timezone-aware; all instants handed out are aware UTC.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import islice
from typing import Literal
from zoneinfo import ZoneInfo

__all__ = [
    "PRESETS",
    "BookingRules",
    "DateOverride",
    "Interval",
    "Slot",
    "WeeklyRule",
    "compute_slots",
    "local_date",
    "preset_rules",
    "validate_booking_rules",
    "validate_override",
    "validate_weekly_rule",
    "wall_intervals_for_date",
    "wall_to_utc",
]

PRESETS: dict[str, tuple[time, time]] = {
    "morning": (time(9), time(12)),
    "afternoon": (time(13), time(17)),
    "evening": (time(18), time(21)),
}

_ONE_DAY = timedelta(days=1)
_ONE_SECOND = timedelta(seconds=1)


# --------------------------------------------------------------------------- data types


@dataclass(frozen=True)
class WeeklyRule:
    weekday: int  # 0=Monday .. 6=Sunday
    start: time  # local wall time in the coach's zone
    end: time  # local wall time, strictly after start (same day)

    def __post_init__(self) -> None:
        validate_weekly_rule(self)


@dataclass(frozen=True)
class DateOverride:
    day: date
    kind: Literal["blocked", "extra"]
    start: time | None = None  # blocked with start=end=None blocks the whole local day
    end: time | None = None

    def __post_init__(self) -> None:
        validate_override(self)


@dataclass(frozen=True)
class BookingRules:
    duration: timedelta
    step: timedelta | None = None  # None = duration
    buffer_before: timedelta = timedelta(0)
    buffer_after: timedelta = timedelta(0)
    min_notice: timedelta = timedelta(hours=2)
    horizon: timedelta = timedelta(days=60)
    max_per_day: int | None = None

    def __post_init__(self) -> None:
        validate_booking_rules(self)

    @property
    def effective_step(self) -> timedelta:
        return self.duration if self.step is None else self.step


@dataclass(frozen=True, order=True)
class Interval:
    start: datetime  # aware, UTC
    end: datetime
    # The busy session's own buffers (from its offer): time it needs free around it.
    buffer_before: timedelta = timedelta(0)
    buffer_after: timedelta = timedelta(0)


@dataclass(frozen=True, order=True)
class Slot:
    start: datetime  # aware UTC
    end: datetime  # start + duration (absolute time)


# --------------------------------------------------------------------------- validation


def _check_wall_time(value: object, what: str) -> None:
    if not isinstance(value, time):
        raise ValueError(f"{what} must be a datetime.time, got {type(value).__name__}")
    if value.tzinfo is not None:
        raise ValueError(f"{what} must be a local wall time without a UTC offset "
                         f"(09:00, not 09:00Z)")


def _check_wall_range(start: time, end: time, what: str) -> None:
    _check_wall_time(start, "start")
    _check_wall_time(end, "end")
    if end <= start:
        raise ValueError(
            f"{what} end {end.isoformat()} must be after start {start.isoformat()} (same day)"
        )


def validate_weekly_rule(rule: WeeklyRule) -> None:
    """Raise ValueError if the weekday is out of range or the range is empty/inverted."""
    if isinstance(rule.weekday, bool) or not isinstance(rule.weekday, int):
        raise ValueError(f"weekday must be an int 0..6 (0=Monday), got {rule.weekday!r}")
    if not 0 <= rule.weekday <= 6:
        raise ValueError(f"weekday must be in 0..6 (0=Monday), got {rule.weekday}")
    _check_wall_range(rule.start, rule.end, "weekly rule")


def validate_override(override: DateOverride) -> None:
    """Raise ValueError for an unknown kind or an inconsistent/inverted time range."""
    if not isinstance(override.day, date) or isinstance(override.day, datetime):
        raise ValueError("override day must be a datetime.date")
    if override.kind not in ("blocked", "extra"):
        raise ValueError(f"override kind must be 'blocked' or 'extra', got {override.kind!r}")
    if override.start is None and override.end is None:
        if override.kind == "extra":
            raise ValueError("an 'extra' override needs both start and end")
        return
    if override.start is None or override.end is None:
        raise ValueError("override start and end must both be set or both be None")
    _check_wall_range(override.start, override.end, "override")


def validate_booking_rules(rules: BookingRules) -> None:
    """Raise ValueError for non-positive duration/step, negative buffers or a bad cap."""
    if rules.duration <= timedelta(0):
        raise ValueError("duration must be positive")
    if rules.step is not None and rules.step <= timedelta(0):
        raise ValueError("step must be positive (or None for step = duration)")
    if rules.buffer_before < timedelta(0) or rules.buffer_after < timedelta(0):
        raise ValueError("buffers must not be negative")
    if rules.min_notice < timedelta(0):
        raise ValueError("min_notice must not be negative")
    if rules.horizon < timedelta(0):
        raise ValueError("horizon must not be negative")
    if rules.max_per_day is not None and (
        isinstance(rules.max_per_day, bool)
        or not isinstance(rules.max_per_day, int)
        or rules.max_per_day < 0
    ):
        raise ValueError("max_per_day must be None or an int >= 0")


def _require_aware(value: datetime, what: str) -> datetime:
    if not isinstance(value, datetime):
        raise ValueError(f"{what} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware (got naive {value.isoformat()})")
    return value.astimezone(UTC)


# --------------------------------------------------------------------------- helpers


def preset_rules(preset: str, weekdays: Iterable[int]) -> list[WeeklyRule]:
    """Weekly rules for a named preset ("morning", "afternoon", "evening") on given weekdays."""
    try:
        start, end = PRESETS[preset]
    except KeyError:
        raise ValueError(
            f"unknown preset {preset!r}; expected one of {', '.join(sorted(PRESETS))}"
        ) from None
    return [WeeklyRule(weekday=wd, start=start, end=end) for wd in sorted(set(weekdays))]


def local_date(instant: datetime, tz: ZoneInfo) -> date:
    """The local calendar date of an aware instant in ``tz``."""
    return _require_aware(instant, "instant").astimezone(tz).date()


def _naive_wall_to_naive_utc(wall: datetime, tz: ZoneInfo) -> datetime | None:
    """Naive local wall datetime -> naive UTC datetime, or None if it does not exist.

    Uses PEP 495: for a wall time in a gap, fold=0 gives the offset before the transition and
    fold=1 the (larger) offset after it; in a fold, fold=0 gives the (larger) earlier offset.
    """
    aware = wall.replace(tzinfo=tz, fold=0)
    off0 = aware.utcoffset()
    off1 = aware.replace(fold=1).utcoffset()
    assert off0 is not None and off1 is not None  # noqa: S101 - ZoneInfo always answers
    if off1 > off0:  # spring-forward gap: this wall time never happens
        return None
    return wall - off0  # unambiguous, or first occurrence of an ambiguous time


def wall_to_utc(day: date, t: time, tz: ZoneInfo) -> datetime | None:
    """UTC instant of local wall time ``t`` on ``day`` in ``tz``.

    None if the wall time does not exist (DST gap); the first occurrence (fold=0) if ambiguous.
    """
    naive = _naive_wall_to_naive_utc(datetime.combine(day, t.replace(tzinfo=None, fold=0)), tz)
    return None if naive is None else naive.replace(tzinfo=UTC)


def _offset_at(naive_utc: datetime, tz: ZoneInfo) -> timedelta:
    off = naive_utc.replace(tzinfo=UTC).astimezone(tz).utcoffset()
    assert off is not None  # noqa: S101 - ZoneInfo always answers
    return off


def _wall_end_to_naive_utc(wall: datetime, tz: ZoneInfo) -> datetime:
    """Like _naive_wall_to_naive_utc, but a nonexistent wall time maps to the transition
    instant (the instant of the first existing wall time after the gap)."""
    exact = _naive_wall_to_naive_utc(wall, tz)
    if exact is not None:
        return exact
    aware = wall.replace(tzinfo=tz, fold=0)
    off_before = aware.utcoffset()
    off_after = aware.replace(fold=1).utcoffset()
    assert off_before is not None and off_after is not None  # noqa: S101
    # The transition T satisfies wall - off_after < T <= wall - off_before; bisect on seconds.
    lo = wall - off_after  # offset here is still off_before
    hi = wall - off_before  # offset here is already off_after
    while hi - lo > _ONE_SECOND:
        mid = lo + (hi - lo) // 2
        mid = mid.replace(microsecond=0)
        if mid <= lo:
            mid = lo + _ONE_SECOND
        if _offset_at(mid, tz) == off_after:
            hi = mid
        else:
            lo = mid
    return hi


def _subtract(ranges: list[tuple[time, time]], cut: tuple[time, time]) -> list[tuple[time, time]]:
    cut_start, cut_end = cut
    out: list[tuple[time, time]] = []
    for start, end in ranges:
        if cut_end <= start or cut_start >= end:
            out.append((start, end))
            continue
        if start < cut_start:
            out.append((start, cut_start))
        if cut_end < end:
            out.append((cut_end, end))
    return out


def _merge(ranges: Iterable[tuple[time, time]]) -> list[tuple[time, time]]:
    merged: list[tuple[time, time]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def _index_weekly(weekly: Sequence[WeeklyRule]) -> dict[int, list[tuple[time, time]]]:
    by_weekday: dict[int, list[tuple[time, time]]] = {}
    for rule in weekly:
        validate_weekly_rule(rule)
        by_weekday.setdefault(rule.weekday, []).append((rule.start, rule.end))
    return by_weekday


def _index_overrides(
    overrides: Sequence[DateOverride],
) -> tuple[dict[date, list[tuple[time, time]]], dict[date, list[tuple[time, time]]], set[date]]:
    extra: dict[date, list[tuple[time, time]]] = {}
    blocked: dict[date, list[tuple[time, time]]] = {}
    blocked_days: set[date] = set()
    for ov in overrides:
        validate_override(ov)
        if ov.kind == "blocked" and ov.start is None:
            blocked_days.add(ov.day)
            continue
        assert ov.start is not None and ov.end is not None  # noqa: S101 - validated above
        target = extra if ov.kind == "extra" else blocked
        target.setdefault(ov.day, []).append((ov.start, ov.end))
    return extra, blocked, blocked_days


def _wall_ranges(
    day: date,
    weekly_idx: dict[int, list[tuple[time, time]]],
    extra: dict[date, list[tuple[time, time]]],
    blocked: dict[date, list[tuple[time, time]]],
    blocked_days: set[date],
) -> list[tuple[time, time]]:
    if day in blocked_days:
        return []
    ranges = _merge([*weekly_idx.get(day.weekday(), ()), *extra.get(day, ())])
    for cut in blocked.get(day, ()):
        ranges = _subtract(ranges, cut)
    return ranges


def wall_intervals_for_date(
    day: date, weekly: Sequence[WeeklyRule], overrides: Sequence[DateOverride]
) -> list[tuple[time, time]]:
    """Merged availability of one local date as sorted, disjoint (start, end) wall ranges."""
    extra, blocked, blocked_days = _index_overrides(overrides)
    return _wall_ranges(day, _index_weekly(weekly), extra, blocked, blocked_days)


def _merged_busy(
    busy: Sequence[Interval], before: timedelta, after: timedelta
) -> tuple[list[datetime], list[datetime]]:
    """Busy intervals widened so that a candidate [s, e) conflicts iff it overlaps one:
    on the left by the busy session's buffer_before plus the candidate's buffer ``after``,
    on the right by its buffer_after plus the candidate's ``before``. As naive-UTC, sorted,
    disjoint starts/ends."""
    widened: list[tuple[datetime, datetime]] = []
    for item in busy:
        b_start = _require_aware(item.start, "busy start").replace(tzinfo=None)
        b_end = _require_aware(item.end, "busy end").replace(tzinfo=None)
        if b_end < b_start:
            raise ValueError(f"busy interval ends before it starts: {item!r}")
        if item.buffer_before < timedelta(0) or item.buffer_after < timedelta(0):
            raise ValueError(f"busy buffers must not be negative: {item!r}")
        widened.append((b_start - item.buffer_before - after, b_end + item.buffer_after + before))
    widened.sort()
    starts: list[datetime] = []
    ends: list[datetime] = []
    for start, end in widened:
        if starts and start <= ends[-1]:
            if end > ends[-1]:
                ends[-1] = end
        else:
            starts.append(start)
            ends.append(end)
    return starts, ends


# --------------------------------------------------------------------------- engine


def compute_slots(
    *,
    tz: ZoneInfo,
    weekly: Sequence[WeeklyRule],
    overrides: Sequence[DateOverride],
    rules: BookingRules,
    busy: Sequence[Interval],
    now: datetime,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
    limit: int | None = None,
) -> list[Slot]:
    """Bookable slots (aware UTC, sorted by start, unique starts) for one coach and offer.

    A slot [s, e) is offered iff its start is a wall-time step of a merged availability range
    that exists in ``tz``, e <= the range's wall end instant, it keeps the buffers with every
    busy interval (conflict iff s - rules.buffer_before < busy.end + busy.buffer_after and
    e + rules.buffer_after > busy.start - busy.buffer_before),
    now + min_notice <= s <= now + horizon, window_start <= s < window_end (when given), and
    its local date has fewer than ``max_per_day`` busy intervals starting on it.

    With ``limit``, only the first ``limit`` slots: the engine stops as soon as it has them.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                              or limit < 0):
        raise ValueError("limit must be None or an int >= 0")
    starts = list(islice(_slot_starts(tz, weekly, overrides, rules, busy, now, window_start,
                                      window_end), limit))
    duration = rules.duration
    return [
        Slot(start=s.replace(tzinfo=UTC), end=(s + duration).replace(tzinfo=UTC)) for s in starts
    ]


def _slot_starts(
    tz: ZoneInfo,
    weekly: Sequence[WeeklyRule],
    overrides: Sequence[DateOverride],
    rules: BookingRules,
    busy: Sequence[Interval],
    now: datetime,
    window_start: datetime | None,
    window_end: datetime | None,
) -> Iterator[datetime]:
    """The naive-UTC starts of compute_slots, earliest first, computed lazily.

    Starts come out strictly increasing by construction: local days in order, each day's
    merged ranges sorted and disjoint, wall times stepping forward, and a wall time maps to
    its first occurrence (so a later wall time is never an earlier instant). A caller may
    therefore stop after the first n.
    """
    validate_booking_rules(rules)
    now_utc = _require_aware(now, "now").replace(tzinfo=None)
    earliest = now_utc + rules.min_notice
    latest = now_utc + rules.horizon  # inclusive
    window_end_utc: datetime | None = None
    if window_start is not None:
        earliest = max(earliest, _require_aware(window_start, "window_start").replace(tzinfo=None))
    if window_end is not None:
        window_end_utc = _require_aware(window_end, "window_end").replace(tzinfo=None)
    busy_starts, busy_ends = _merged_busy(busy, rules.buffer_before, rules.buffer_after)
    if latest < earliest or (window_end_utc is not None and window_end_utc <= earliest):
        return
    if rules.max_per_day == 0:
        return  # a cap of zero sessions per day leaves nothing bookable

    weekly_idx = _index_weekly(weekly)
    extra, blocked, blocked_days = _index_overrides(overrides)

    full_days: set[date] = set()
    if rules.max_per_day is not None:
        per_day = Counter(item.start.astimezone(tz).date() for item in busy)
        full_days = {day for day, count in per_day.items() if count >= rules.max_per_day}

    duration = rules.duration
    step = rules.effective_step
    first_day = earliest.replace(tzinfo=UTC).astimezone(tz).date() - _ONE_DAY
    last_day = latest.replace(tzinfo=UTC).astimezone(tz).date() + _ONE_DAY
    if window_end_utc is not None:
        window_last = window_end_utc.replace(tzinfo=UTC).astimezone(tz).date()
        last_day = min(last_day, window_last + _ONE_DAY)

    previous: datetime | None = None
    n_busy = len(busy_starts)
    day = first_day
    while day <= last_day:
        if day in full_days:
            day += _ONE_DAY
            continue
        for wall_start, wall_end in _wall_ranges(day, weekly_idx, extra, blocked, blocked_days):
            wall = datetime.combine(day, wall_start)
            wall_stop = datetime.combine(day, wall_end)
            end_limit = _wall_end_to_naive_utc(wall_stop, tz)
            while wall < wall_stop:
                start = _naive_wall_to_naive_utc(wall, tz)
                wall += step
                if start is None:
                    continue  # nonexistent local time (DST gap)
                end = start + duration
                if end > end_limit or start > latest:
                    break  # instants grow with wall time: nothing later can fit
                if start < earliest:
                    continue
                if window_end_utc is not None and start >= window_end_utc:
                    break
                if n_busy:
                    # Busy blocks are disjoint and sorted: the last one starting before `end`
                    # has the largest end among all that could overlap.
                    idx = bisect_left(busy_starts, end)
                    if idx and busy_ends[idx - 1] > start:
                        continue
                # The guarantee callers rely on to stop early; cheap to keep explicit.
                if previous is not None and start <= previous:
                    raise AssertionError(f"slot starts out of order: {start} after {previous}")
                previous = start
                yield start
        day += _ONE_DAY

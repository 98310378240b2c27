"""Tests for the pure slot engine (coachgate.scheduling.rules).

No database: only coachgate.scheduling.rules is imported. Expected values are written as local
wall times and converted here, so a UTC/local mix-up in the engine fails loudly.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coachgate.scheduling.rules import (
    PRESETS,
    BookingRules,
    DateOverride,
    Interval,
    Slot,
    WeeklyRule,
    compute_slots,
    local_date,
    preset_rules,
    wall_intervals_for_date,
    wall_to_utc,
)

NY = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")
SANTIAGO = ZoneInfo("America/Santiago")
MIN = timedelta(minutes=1)


# --------------------------------------------------------------------------- helpers


def loc(tz: ZoneInfo, text: str, fold: int = 0) -> datetime:
    """Aware local datetime from 'YYYY-MM-DD HH:MM' in tz."""
    return datetime.fromisoformat(text).replace(tzinfo=tz, fold=fold)


def walls(slots: list[Slot], tz: ZoneInfo) -> list[str]:
    return [s.start.astimezone(tz).strftime("%Y-%m-%d %H:%M") for s in slots]


def hhmm(slots: list[Slot], tz: ZoneInfo) -> list[str]:
    return [s.start.astimezone(tz).strftime("%H:%M") for s in slots]


def every_day(start: time, end: time) -> list[WeeklyRule]:
    return [WeeklyRule(weekday=wd, start=start, end=end) for wd in range(7)]


def one_day(
    tz: ZoneInfo,
    day: date,
    weekly: list[WeeklyRule],
    rules: BookingRules,
    overrides: list[DateOverride] | None = None,
    busy: list[Interval] | None = None,
) -> list[Slot]:
    """Slots whose start falls on local `day`, computed with `now` well before it."""
    slots = compute_slots(
        tz=tz,
        weekly=weekly,
        overrides=overrides or [],
        rules=rules,
        busy=busy or [],
        now=datetime.combine(day, time(0), tzinfo=tz) - timedelta(days=3),
    )
    return [s for s in slots if local_date(s.start, tz) == day]


def offset_change(tz: ZoneInfo, day: date) -> timedelta:
    """UTC offset at local noon of `day` minus the one at local noon of the day before."""
    before = datetime.combine(day - timedelta(days=1), time(12), tzinfo=tz).utcoffset()
    after = datetime.combine(day, time(12), tzinfo=tz).utcoffset()
    assert before is not None and after is not None
    return after - before


H1 = BookingRules(duration=timedelta(hours=1))
# Sunday 2026-01-04 12:00 New York (UTC-5), far from any DST change.
SUNDAY = loc(NY, "2026-01-04 12:00")


# --------------------------------------------------------------------------- unit tests


def test_presets() -> None:
    assert {
        "morning": (time(9), time(12)),
        "afternoon": (time(13), time(17)),
        "evening": (time(18), time(21)),
    } == PRESETS
    rules = preset_rules("evening", [2, 0, 2])
    assert rules == [
        WeeklyRule(weekday=0, start=time(18), end=time(21)),
        WeeklyRule(weekday=2, start=time(18), end=time(21)),
    ]
    with pytest.raises(ValueError, match="unknown preset"):
        preset_rules("night", [0])


def test_simple_weekly_rule() -> None:
    weekly = [WeeklyRule(weekday=0, start=time(9), end=time(12))]  # Mondays 09-12
    slots = compute_slots(
        tz=NY,
        weekly=weekly,
        overrides=[],
        rules=H1,
        busy=[],
        now=SUNDAY,
        window_end=loc(NY, "2026-01-13 00:00"),
    )
    assert walls(slots, NY) == [
        "2026-01-05 09:00",
        "2026-01-05 10:00",
        "2026-01-05 11:00",
        "2026-01-12 09:00",
        "2026-01-12 10:00",
        "2026-01-12 11:00",
    ]
    first = slots[0]
    assert first.start == datetime(2026, 1, 5, 14, 0, tzinfo=UTC)  # 09:00 EST
    assert first.start.utcoffset() == timedelta(0)
    assert all(s.end - s.start == timedelta(hours=1) for s in slots)
    # Whole default 60-day horizon: Mondays Jan 5 .. Mar 2 (9 of them), 3 slots each.
    everything = compute_slots(tz=NY, weekly=weekly, overrides=[], rules=H1, busy=[], now=SUNDAY)
    assert len(everything) == 27
    assert walls(everything, NY)[-1] == "2026-03-02 11:00"


def test_late_evening_west_of_utc() -> None:
    # 20:00 in New York is already the next day in UTC; tonight's slots must still be found.
    slots = compute_slots(
        tz=NY, weekly=every_day(time(22), time(23, 30)), overrides=[], rules=H1, busy=[],
        now=loc(NY, "2026-01-05 20:00"), window_end=loc(NY, "2026-01-07 00:00"),
    )  # fmt: skip
    assert walls(slots, NY) == ["2026-01-05 22:00", "2026-01-06 22:00"]
    assert slots[0].start == datetime(2026, 1, 6, 3, 0, tzinfo=UTC)


def test_step_smaller_than_duration() -> None:
    rules = BookingRules(duration=timedelta(hours=1), step=timedelta(minutes=15))
    slots = one_day(NY, date(2026, 1, 5), [WeeklyRule(0, time(9), time(12))], rules)
    assert hhmm(slots, NY) == [
        "09:00", "09:15", "09:30", "09:45", "10:00", "10:15", "10:30", "10:45", "11:00",
    ]  # fmt: skip


def test_step_defaults_to_duration() -> None:
    rules = BookingRules(duration=timedelta(minutes=45))
    slots = one_day(NY, date(2026, 1, 5), [WeeklyRule(0, time(9), time(12))], rules)
    assert hhmm(slots, NY) == ["09:00", "09:45", "10:30", "11:15"]


def test_buffers_around_busy_session() -> None:
    day = date(2026, 1, 5)
    weekly = [WeeklyRule(0, time(9), time(13))]
    busy = [Interval(loc(NY, "2026-01-05 10:00"), loc(NY, "2026-01-05 11:00"))]
    no_buffer = BookingRules(duration=timedelta(hours=1), step=timedelta(minutes=30))
    assert hhmm(one_day(NY, day, weekly, no_buffer, busy=busy), NY) == [
        "09:00",  # ends exactly when the session starts: allowed
        "11:00",  # starts exactly when it ends: allowed
        "11:30",
        "12:00",
    ]
    buffered = BookingRules(
        duration=timedelta(hours=1),
        step=timedelta(minutes=30),
        buffer_before=timedelta(minutes=15),
        buffer_after=timedelta(minutes=15),
    )
    assert hhmm(one_day(NY, day, weekly, buffered, busy=busy), NY) == ["11:30", "12:00"]
    only_before = BookingRules(
        duration=timedelta(hours=1),
        step=timedelta(minutes=30),
        buffer_before=timedelta(minutes=1),
    )
    # The new session needs a free minute before it: not right after the busy one; ending
    # right when the busy one starts is fine (the busy session has no buffers of its own).
    assert hhmm(one_day(NY, day, weekly, only_before, busy=busy), NY) == [
        "09:00",
        "11:30",
        "12:00",
    ]
    # The busy session's own buffers count too, whichever was booked first.
    own = [Interval(busy[0].start, busy[0].end, buffer_after=timedelta(minutes=15))]
    assert hhmm(one_day(NY, day, weekly, no_buffer, busy=own), NY) == ["09:00", "11:30", "12:00"]


def test_busy_unsorted_and_overlapping_is_fine() -> None:
    day = date(2026, 1, 5)
    weekly = [WeeklyRule(0, time(9), time(17))]
    busy = [
        Interval(loc(NY, "2026-01-05 15:00"), loc(NY, "2026-01-05 16:00")),
        Interval(loc(NY, "2026-01-05 09:00"), loc(NY, "2026-01-05 12:00")),
        Interval(loc(NY, "2026-01-05 10:00"), loc(NY, "2026-01-05 11:00")),  # inside the other
    ]
    assert hhmm(one_day(NY, day, weekly, H1, busy=busy), NY) == ["12:00", "13:00", "14:00", "16:00"]


def test_minimum_notice() -> None:
    weekly = every_day(time(9), time(12))
    end = loc(NY, "2026-01-06 00:00")
    rules = BookingRules(duration=timedelta(hours=1), min_notice=timedelta(hours=2))
    at_7 = compute_slots(
        tz=NY, weekly=weekly, overrides=[], rules=rules, busy=[],
        now=loc(NY, "2026-01-05 07:00"), window_end=end,
    )  # fmt: skip
    assert hhmm(at_7, NY) == ["09:00", "10:00", "11:00"]  # 09:00 == now + notice: allowed
    at_701 = compute_slots(
        tz=NY, weekly=weekly, overrides=[], rules=rules, busy=[],
        now=loc(NY, "2026-01-05 07:01"), window_end=end,
    )  # fmt: skip
    assert hhmm(at_701, NY) == ["10:00", "11:00"]
    # The default notice is 2 hours.
    default = compute_slots(
        tz=NY, weekly=weekly, overrides=[], rules=H1, busy=[],
        now=loc(NY, "2026-01-05 08:30"), window_end=end,
    )  # fmt: skip
    assert hhmm(default, NY) == ["11:00"]


def test_horizon() -> None:
    rules = BookingRules(
        duration=timedelta(hours=1), min_notice=timedelta(0), horizon=timedelta(hours=25)
    )
    slots = compute_slots(
        tz=NY, weekly=every_day(time(9), time(12)), overrides=[], rules=rules, busy=[],
        now=loc(NY, "2026-01-05 08:00"),
    )  # fmt: skip
    # now + horizon = Tue 09:00: inclusive.
    assert walls(slots, NY) == [
        "2026-01-05 09:00",
        "2026-01-05 10:00",
        "2026-01-05 11:00",
        "2026-01-06 09:00",
    ]
    default = compute_slots(
        tz=NY, weekly=every_day(time(9), time(10)), overrides=[], rules=H1, busy=[],
        now=loc(NY, "2026-01-01 09:00"),
    )  # fmt: skip
    # 60 days from Jan 1 09:00 is Mar 2 09:00 (inclusive); Jan 1 09:00 fails the notice.
    assert walls(default, NY)[0] == "2026-01-02 09:00"
    assert walls(default, NY)[-1] == "2026-03-02 09:00"
    assert len(default) == 60


def test_window() -> None:
    def run(start: str | None, end: str | None) -> list[str]:
        return walls(
            compute_slots(
                tz=NY,
                weekly=every_day(time(9), time(12)),
                overrides=[],
                rules=H1,
                busy=[],
                now=SUNDAY,
                window_start=None if start is None else loc(NY, start),
                window_end=None if end is None else loc(NY, end),
            ),
            NY,
        )

    assert run("2026-01-05 10:00", "2026-01-05 11:00") == ["2026-01-05 10:00"]
    assert run("2026-01-05 09:01", "2026-01-05 11:01") == ["2026-01-05 10:00", "2026-01-05 11:00"]
    assert run("2026-01-05 12:00", "2026-01-06 09:00") == []
    assert run(None, "2026-01-05 10:00") == ["2026-01-05 09:00"]
    # No window end: the horizon (Mar 5 12:00, 60 days after now) closes the list.
    assert run("2026-03-05 10:00", None) == ["2026-03-05 10:00", "2026-03-05 11:00"]
    # A window in another zone's notation means the same instants.
    utc_window = compute_slots(
        tz=NY, weekly=every_day(time(9), time(12)), overrides=[], rules=H1, busy=[], now=SUNDAY,
        window_start=datetime(2026, 1, 5, 15, 0, tzinfo=UTC),
        window_end=datetime(2026, 1, 5, 16, 0, tzinfo=UTC),
    )  # fmt: skip
    assert walls(utc_window, NY) == ["2026-01-05 10:00"]


def test_max_per_day_counts_busy_by_local_date() -> None:
    weekly = every_day(time(9), time(12))
    busy = [
        Interval(loc(NY, "2026-01-05 07:00"), loc(NY, "2026-01-05 08:00")),
        # 02:00 UTC on Tuesday is 21:00 Monday in New York: counts for Monday.
        Interval(datetime(2026, 1, 6, 2, 0, tzinfo=UTC), datetime(2026, 1, 6, 3, 0, tzinfo=UTC)),
    ]

    def days(cap: int | None) -> list[str]:
        rules = BookingRules(duration=timedelta(hours=1), max_per_day=cap)
        slots = compute_slots(
            tz=NY, weekly=weekly, overrides=[], rules=rules, busy=busy, now=SUNDAY,
            window_end=loc(NY, "2026-01-07 00:00"),
        )  # fmt: skip
        return sorted({local_date(s.start, NY).isoformat() for s in slots})

    assert days(None) == ["2026-01-05", "2026-01-06"]
    assert days(3) == ["2026-01-05", "2026-01-06"]
    assert days(2) == ["2026-01-06"]
    assert days(1) == ["2026-01-06"]
    assert days(0) == []


def test_blocked_whole_day() -> None:
    weekly = every_day(time(9), time(11))
    overrides = [
        DateOverride(day=date(2026, 1, 5), kind="blocked"),
        DateOverride(day=date(2026, 1, 5), kind="extra", start=time(14), end=time(15)),
    ]
    slots = compute_slots(
        tz=NY, weekly=weekly, overrides=overrides, rules=H1, busy=[], now=SUNDAY,
        window_end=loc(NY, "2026-01-07 00:00"),
    )  # fmt: skip
    assert walls(slots, NY) == ["2026-01-06 09:00", "2026-01-06 10:00"]


def test_blocked_partial_restarts_the_grid() -> None:
    day = date(2026, 1, 5)
    weekly = [WeeklyRule(0, time(9), time(17))]
    lunch = [DateOverride(day=day, kind="blocked", start=time(12), end=time(13))]
    assert hhmm(one_day(NY, day, weekly, H1, overrides=lunch), NY) == [
        "09:00", "10:00", "11:00", "13:00", "14:00", "15:00", "16:00",
    ]  # fmt: skip
    late_start = [DateOverride(day=day, kind="blocked", start=time(8), end=time(9, 20))]
    assert hhmm(one_day(NY, day, weekly, H1, overrides=late_start), NY) == [
        "09:20", "10:20", "11:20", "12:20", "13:20", "14:20", "15:20",
    ]  # fmt: skip
    # Only that date is affected.
    assert hhmm(one_day(NY, date(2026, 1, 12), weekly, H1, overrides=lunch), NY)[3] == "12:00"


def test_extra_hours_merge_with_weekly_rule() -> None:
    day = date(2026, 1, 5)
    weekly = [WeeklyRule(0, time(9), time(11))]
    extra = [DateOverride(day=day, kind="extra", start=time(11), end=time(13))]
    rules = BookingRules(duration=timedelta(minutes=90))
    # Merged 09:00-13:00 grid: 09:00, 10:30 (ends 12:00); separate ranges would give 11:00.
    assert hhmm(one_day(NY, day, weekly, rules, overrides=extra), NY) == ["09:00", "10:30"]
    # Extra hours on a day without weekly rules.
    tuesday = [DateOverride(day=date(2026, 1, 6), kind="extra", start=time(7), end=time(9))]
    assert hhmm(one_day(NY, date(2026, 1, 6), weekly, H1, overrides=tuesday), NY) == [
        "07:00",
        "08:00",
    ]
    # Overlapping duplicate rules give each start once.
    twice = [WeeklyRule(0, time(9), time(11)), WeeklyRule(0, time(9), time(10))]
    assert hhmm(one_day(NY, day, twice, H1), NY) == ["09:00", "10:00"]
    assert wall_intervals_for_date(day, twice, extra) == [(time(9), time(13))]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"now": datetime(2026, 1, 4, 12)},  # noqa: DTZ001 - naive on purpose
        {"now": SUNDAY, "window_start": datetime(2026, 1, 5)},  # noqa: DTZ001
        {"now": SUNDAY, "window_end": datetime(2026, 1, 6)},  # noqa: DTZ001
        {
            "now": SUNDAY,
            "busy": [Interval(datetime(2026, 1, 5, 9), datetime(2026, 1, 5, 10))],  # noqa: DTZ001
        },
    ],
)
def test_naive_datetimes_rejected(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {
        "tz": NY,
        "weekly": every_day(time(9), time(12)),
        "overrides": [],
        "rules": H1,
        "busy": [],
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match="timezone-aware"):
        compute_slots(**args)  # type: ignore[arg-type]


def test_invalid_rules_rejected() -> None:
    with pytest.raises(ValueError, match="after start"):
        WeeklyRule(weekday=0, start=time(12), end=time(12))
    with pytest.raises(ValueError, match=r"0\.\.6"):
        WeeklyRule(weekday=7, start=time(9), end=time(12))
    with pytest.raises(ValueError, match="after start"):
        DateOverride(day=date(2026, 1, 5), kind="extra", start=time(13), end=time(12))
    with pytest.raises(ValueError, match="both"):
        DateOverride(day=date(2026, 1, 5), kind="extra")
    with pytest.raises(ValueError, match="both"):
        DateOverride(day=date(2026, 1, 5), kind="blocked", start=time(9))
    with pytest.raises(ValueError, match="duration"):
        BookingRules(duration=timedelta(0))
    with pytest.raises(ValueError, match="step"):
        BookingRules(duration=timedelta(hours=1), step=timedelta(0))
    with pytest.raises(ValueError, match="ends before"):
        compute_slots(
            tz=NY, weekly=[], overrides=[], rules=H1, now=SUNDAY,
            busy=[Interval(loc(NY, "2026-01-05 10:00"), loc(NY, "2026-01-05 09:00"))],
        )  # fmt: skip


def test_wall_to_utc_and_local_date() -> None:
    assert wall_to_utc(date(2026, 1, 5), time(9), NY) == datetime(2026, 1, 5, 14, tzinfo=UTC)
    assert wall_to_utc(date(2026, 3, 8), time(2, 30), NY) is None  # gap
    # Ambiguous 01:30 on the fall-back day: the first (EDT, UTC-4) occurrence.
    assert wall_to_utc(date(2026, 11, 1), time(1, 30), NY) == datetime(
        2026, 11, 1, 5, 30, tzinfo=UTC
    )
    assert wall_to_utc(date(2026, 10, 4), time(2, 15), LORD_HOWE) is None
    assert wall_to_utc(date(2026, 9, 6), time(0), SANTIAGO) is None  # midnight gap
    assert local_date(datetime(2026, 1, 6, 2, tzinfo=UTC), NY) == date(2026, 1, 5)
    assert local_date(datetime(2026, 1, 5, 14, tzinfo=UTC), LORD_HOWE) == date(2026, 1, 6)


# --------------------------------------------------------------------------- DST, explicit

# (zone, spring-forward date, fall-back date) in 2026.
DST_DAYS = [
    ("Europe/London", date(2026, 3, 29), date(2026, 10, 25)),
    ("America/New_York", date(2026, 3, 8), date(2026, 11, 1)),
    ("Australia/Lord_Howe", date(2026, 10, 4), date(2026, 4, 5)),
]


@pytest.mark.parametrize(("zone", "spring", "fall"), DST_DAYS)
def test_dst_dates_are_real_changes(zone: str, spring: date, fall: date) -> None:
    tz = ZoneInfo(zone)
    expected = timedelta(minutes=30) if zone == "Australia/Lord_Howe" else timedelta(hours=1)
    assert offset_change(tz, spring) == expected
    assert offset_change(tz, fall) == -expected


@pytest.mark.parametrize(("zone", "spring", "fall"), DST_DAYS)
def test_nine_oclock_stays_nine_oclock(zone: str, spring: date, fall: date) -> None:
    tz = ZoneInfo(zone)
    for change in (spring, fall):
        start = datetime.combine(change - timedelta(days=2), time(0), tzinfo=tz)
        slots = compute_slots(
            tz=tz,
            weekly=every_day(time(9), time(10)),
            overrides=[],
            rules=H1,
            busy=[],
            now=start - timedelta(days=1),
            window_start=start,
            window_end=start + timedelta(days=5),
        )
        assert [s.start.astimezone(tz).strftime("%H:%M") for s in slots] == ["09:00"] * 5
        assert [local_date(s.start, tz) for s in slots] == [
            change + timedelta(days=k) for k in range(-2, 3)
        ]
        # The UTC instant moves by the offset change between the day before and after.
        before, after = slots[1].start, slots[3].start
        assert after - before == timedelta(days=2) - offset_change(tz, change)


# Rule 00:00-04:00, 30-min step and duration, on the fall-back day: (local wall, UTC offset).
FALL_BACK_EXPECTED = {
    "Europe/London": [
        ("00:00", "+0100"), ("00:30", "+0100"), ("01:00", "+0100"), ("01:30", "+0100"),
        ("02:00", "+0000"), ("02:30", "+0000"), ("03:00", "+0000"), ("03:30", "+0000"),
    ],
    "America/New_York": [
        ("00:00", "-0400"), ("00:30", "-0400"), ("01:00", "-0400"), ("01:30", "-0400"),
        ("02:00", "-0500"), ("02:30", "-0500"), ("03:00", "-0500"), ("03:30", "-0500"),
    ],
    "Australia/Lord_Howe": [
        ("00:00", "+1100"), ("00:30", "+1100"), ("01:00", "+1100"), ("01:30", "+1100"),
        ("02:00", "+1030"), ("02:30", "+1030"), ("03:00", "+1030"), ("03:30", "+1030"),
    ],
}  # fmt: skip
SPRING_FORWARD_EXPECTED = {
    "Europe/London": ["00:00", "00:30", "02:00", "02:30", "03:00", "03:30"],
    "America/New_York": ["00:00", "00:30", "01:00", "01:30", "03:00", "03:30"],
    "Australia/Lord_Howe": ["00:00", "00:30", "01:00", "01:30", "02:30", "03:00", "03:30"],
}
HALF_HOUR = BookingRules(duration=timedelta(minutes=30))


@pytest.mark.parametrize(("zone", "spring", "fall"), DST_DAYS)
def test_fall_back_takes_ambiguous_times_once(zone: str, spring: date, fall: date) -> None:
    tz = ZoneInfo(zone)
    slots = one_day(tz, fall, every_day(time(0), time(4)), HALF_HOUR)
    got = [
        (s.start.astimezone(tz).strftime("%H:%M"), s.start.astimezone(tz).strftime("%z"))
        for s in slots
    ]
    assert got == FALL_BACK_EXPECTED[zone]
    # Each ambiguous wall time is the first occurrence.
    for s in slots:
        wall = s.start.astimezone(tz).replace(tzinfo=None)
        assert s.start == wall.replace(tzinfo=tz, fold=0).astimezone(UTC)


@pytest.mark.parametrize(("zone", "spring", "fall"), DST_DAYS)
def test_spring_forward_skips_nonexistent_times(zone: str, spring: date, fall: date) -> None:
    tz = ZoneInfo(zone)
    slots = one_day(tz, spring, every_day(time(0), time(4)), HALF_HOUR)
    assert hhmm(slots, tz) == SPRING_FORWARD_EXPECTED[zone]
    for s in slots:
        assert wall_to_utc(spring, s.start.astimezone(tz).time(), tz) == s.start


@pytest.mark.parametrize(("zone", "spring", "fall"), DST_DAYS)
def test_slot_counts_around_changes(zone: str, spring: date, fall: date) -> None:
    tz = ZoneInfo(zone)
    hourly_night = every_day(time(0), time(4))
    daytime = every_day(time(8), time(20))
    gap_minutes = 30 if zone == "Australia/Lord_Howe" else 60
    for change in (spring, fall):
        for day in (change - timedelta(days=1), change, change + timedelta(days=1)):
            assert len(one_day(tz, day, daytime, H1)) == 12
            night = one_day(tz, day, hourly_night, H1)
            if day == spring and gap_minutes == 60:
                assert len(night) == 3  # one whole hour of wall time does not exist
            elif day == spring:
                # Lord Howe: 02:00 is skipped (in the gap), 00/01/03 remain.
                assert hhmm(night, tz) == ["00:00", "01:00", "03:00"]
            else:
                assert len(night) == 4


def test_interval_end_in_gap_uses_transition_instant() -> None:
    day = date(2026, 3, 29)  # London: 01:00 GMT -> 02:00 BST
    # 00:00-01:30 ends in the gap: the range really ends at the transition (01:00 UTC).
    short = one_day(LONDON, day, every_day(time(0), time(1, 30)), HALF_HOUR)
    assert [s.start for s in short] == [
        datetime(2026, 3, 29, 0, 0, tzinfo=UTC),
        datetime(2026, 3, 29, 0, 30, tzinfo=UTC),
    ]
    stepped = BookingRules(duration=timedelta(hours=1), step=timedelta(minutes=30))
    # A 60-min slot at 00:30 would end at 01:30 UTC, after the transition: not offered.
    assert hhmm(one_day(LONDON, day, every_day(time(0), time(1, 30)), stepped), LONDON) == ["00:00"]
    # 00:00-02:00 lasts one absolute hour: one 60-min slot, 00:30 would end at 02:30 BST.
    assert hhmm(one_day(LONDON, day, every_day(time(0), time(2)), stepped), LONDON) == ["00:00"]


def test_fall_back_interval_is_longer_in_absolute_time() -> None:
    day = date(2026, 10, 25)  # London: 02:00 BST -> 01:00 GMT
    # Wall 00:00-02:00 is three real hours (23:00Z-02:00Z): a 150-min slot fits.
    long = BookingRules(duration=timedelta(minutes=150), step=timedelta(minutes=30))
    slots = one_day(LONDON, day, every_day(time(0), time(2)), long)
    assert [s.start for s in slots] == [
        datetime(2026, 10, 24, 23, 0, tzinfo=UTC),
        datetime(2026, 10, 24, 23, 30, tzinfo=UTC),
    ]
    # A wall end inside the fold is its first occurrence (01:30 BST = 00:30Z).
    stepped = BookingRules(duration=timedelta(hours=1), step=timedelta(minutes=30))
    assert hhmm(one_day(LONDON, day, every_day(time(0), time(1, 30)), stepped), LONDON) == [
        "00:00",
        "00:30",
    ]


def test_fold_attribute_on_rule_times_is_ignored() -> None:
    day = date(2026, 10, 25)  # London fall-back: 01:00-02:00 happens twice
    rule = [WeeklyRule(day.weekday(), time(1, 0, fold=1), time(2, 0, fold=1))]
    slots = one_day(LONDON, day, rule, HALF_HOUR)
    # 01:00 and 01:30 once each, as BST (first occurrence); the repeated GMT hour is not
    # offered again even though the range lasts two absolute hours.
    assert [s.start for s in slots] == [
        datetime(2026, 10, 25, 0, 0, tzinfo=UTC),
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
    ]
    assert wall_to_utc(day, time(1, 30, fold=1), LONDON) == datetime(
        2026, 10, 25, 0, 30, tzinfo=UTC
    )


def test_santiago_midnight_gap() -> None:
    day = date(2026, 9, 6)  # America/Santiago: 00:00 -04 -> 01:00 -03
    assert offset_change(SANTIAGO, day) == timedelta(hours=1)
    slots = one_day(SANTIAGO, day, every_day(time(0), time(3)), H1)
    assert hhmm(slots, SANTIAGO) == ["01:00", "02:00"]


# --------------------------------------------------------------------------- properties

PROPERTY_ZONES = [
    "Europe/London",
    "America/New_York",
    "Australia/Lord_Howe",
    "Europe/Berlin",
    "America/Santiago",
]


def _transitions(zone: str, years: range) -> list[datetime]:
    """UTC instants (to the minute) where the zone's offset changes."""
    tz = ZoneInfo(zone)
    out: list[datetime] = []
    t = datetime(years.start, 1, 1, tzinfo=UTC)
    stop = datetime(years.stop, 1, 1, tzinfo=UTC)
    prev = t.astimezone(tz).utcoffset()
    while t < stop:
        nxt = t + timedelta(hours=6)
        off = nxt.astimezone(tz).utcoffset()
        if off != prev:
            lo = t
            while nxt - lo > MIN:
                mid = lo + (nxt - lo) // 2
                if mid.astimezone(tz).utcoffset() == prev:
                    lo = mid
                else:
                    nxt = mid
            out.append(nxt)
            prev = off
        t = nxt
    return out


TRANSITIONS = {zone: _transitions(zone, range(2025, 2028)) for zone in PROPERTY_ZONES}


@dataclass(frozen=True)
class Case:
    tz: ZoneInfo
    weekly: list[WeeklyRule]
    overrides: list[DateOverride]
    rules: BookingRules
    busy: list[Interval]
    now: datetime
    window_start: datetime | None
    window_end: datetime | None

    def run(self) -> list[Slot]:
        return compute_slots(
            tz=self.tz,
            weekly=self.weekly,
            overrides=self.overrides,
            rules=self.rules,
            busy=self.busy,
            now=self.now,
            window_start=self.window_start,
            window_end=self.window_end,
        )


# An independent, slow reference: availability as a per-minute bitmap, wall-time existence by
# round trip, first occurrence as the earliest of both folds, busy checked linearly.


def _instants(wall: datetime, tz: ZoneInfo) -> list[datetime]:
    """All UTC instants showing naive `wall` on the clock in tz (0, 1 or 2 of them)."""
    found = set()
    for fold in (0, 1):
        instant = wall.replace(tzinfo=tz, fold=fold).astimezone(UTC)
        if instant.astimezone(tz).replace(tzinfo=None) == wall:
            found.add(instant)
    return sorted(found)


def _end_instant(wall: datetime, tz: ZoneInfo) -> datetime:
    while not _instants(wall, tz):
        wall += MIN  # first existing wall time after the gap
    return _instants(wall, tz)[0]


def _runs(
    weekly: list[WeeklyRule], overrides: list[DateOverride], day: date
) -> list[tuple[int, int]]:
    """Maximal runs [a, b) of available minutes on a local date."""
    free = [False] * 1440

    def mark(start: time | None, end: time | None, value: bool) -> None:
        lo = 0 if start is None else start.hour * 60 + start.minute
        hi = 1440 if end is None else end.hour * 60 + end.minute
        for m in range(lo, hi):
            free[m] = value

    for rule in weekly:
        if rule.weekday == day.weekday():
            mark(rule.start, rule.end, True)
    for ov in overrides:
        if ov.day == day and ov.kind == "extra":
            mark(ov.start, ov.end, True)
    for ov in overrides:
        if ov.day == day and ov.kind == "blocked":
            mark(ov.start, ov.end, False)  # None/None: the whole day
    runs: list[tuple[int, int]] = []
    m = 0
    while m < 1440:
        if free[m]:
            a = m
            while m < 1440 and free[m]:
                m += 1
            runs.append((a, m))
        else:
            m += 1
    return runs


def reference_candidates(
    tz: ZoneInfo,
    weekly: list[WeeklyRule],
    overrides: list[DateOverride],
    duration: timedelta,
    step: timedelta,
    days: list[date],
) -> list[datetime]:
    """Starts allowed by availability alone (grid, existence, absolute end of the range)."""
    out: list[datetime] = []
    for day in days:
        midnight = datetime.combine(day, time(0))
        for a, b in _runs(weekly, overrides, day):
            limit = _end_instant(midnight + timedelta(minutes=b), tz)
            wall = midnight + timedelta(minutes=a)
            while wall < midnight + timedelta(minutes=b):
                found = _instants(wall, tz)
                if found and found[0] + duration <= limit:
                    out.append(found[0])
                wall += step
    return sorted(out)


def reference_slots(case: Case) -> list[datetime]:
    tz, rules = case.tz, case.rules
    now = case.now.astimezone(UTC)
    first = local_date(now, tz) - timedelta(days=2)
    days = [first + timedelta(days=k) for k in range(rules.horizon.days + 5)]
    if rules.max_per_day is not None:
        busy_days = [b.start.astimezone(tz).date() for b in case.busy]
        days = [d for d in days if busy_days.count(d) < rules.max_per_day]
    step = rules.step or rules.duration
    out: list[datetime] = []
    for s in reference_candidates(tz, case.weekly, case.overrides, rules.duration, step, days):
        e = s + rules.duration
        if s < now + rules.min_notice or s > now + rules.horizon:
            continue
        if case.window_start is not None and s < case.window_start:
            continue
        if case.window_end is not None and s >= case.window_end:
            continue
        if any(
            s - rules.buffer_before < bi.end + bi.buffer_after
            and e + rules.buffer_after > bi.start - bi.buffer_before
            for bi in case.busy
        ):
            continue
        out.append(s)
    return out


# Strategies.


def _minute_to_time(minute: int) -> time:
    return time(minute // 60, minute % 60)


@st.composite
def wall_range(draw: st.DrawFn) -> tuple[time, time]:
    # Bias towards the small hours (DST changes) and late evening (other UTC date).
    start = draw(st.one_of(st.integers(0, 60), st.integers(250, 286), st.integers(0, 286))) * 5
    length = draw(st.one_of(st.integers(24, 287), st.integers(1, 287))) * 5  # often >= 2 h
    end = min(start + length, 287 * 5)
    return _minute_to_time(start), _minute_to_time(end)


def seconds(n: int) -> timedelta:
    return timedelta(seconds=n)


def minutes(lo: int, hi: int) -> st.SearchStrategy[timedelta]:
    """A whole number of minutes in [lo, hi], often a multiple of 5."""
    return st.one_of(
        st.integers(lo, hi), st.integers(-(-lo // 5), hi // 5).map(lambda k: 5 * k)
    ).map(lambda m: timedelta(minutes=m))


@st.composite
def cases(draw: st.DrawFn) -> Case:
    zone = draw(st.sampled_from(PROPERTY_ZONES))
    tz = ZoneInfo(zone)
    anchor = draw(st.sampled_from(TRANSITIONS[zone]))
    # All arithmetic in UTC: `aware_local + timedelta` would be wall-clock arithmetic.
    now_utc = anchor + draw(
        minutes(-4 * 1440, 2 * 1440) | st.integers(-4 * 86400, 2 * 86400).map(seconds)
    )
    weekly: list[WeeklyRule] = []
    for _ in range(draw(st.integers(1, 4))):
        start, end = draw(wall_range())
        days = draw(st.one_of(st.just(range(7)), st.sets(st.integers(0, 6), max_size=4)))
        weekly.extend(WeeklyRule(wd, start, end) for wd in days)
    today = local_date(now_utc, tz)
    overrides: list[DateOverride] = []
    for _ in range(draw(st.integers(0, 3))):
        day = today + timedelta(days=draw(st.integers(-1, 5)))
        kind = draw(st.sampled_from(["blocked", "extra", "blocked_day"]))
        if kind == "blocked_day":
            overrides.append(DateOverride(day=day, kind="blocked"))
        else:
            start, end = draw(wall_range())
            overrides.append(DateOverride(day, kind, start, end))  # type: ignore[arg-type]
    duration = draw(st.integers(1, 36).map(lambda k: timedelta(minutes=5 * k)))
    step = draw(st.none() | st.integers(1, 24).map(lambda k: timedelta(minutes=5 * k)))
    buffer_before = draw(st.integers(0, 12).map(lambda k: timedelta(minutes=5 * k)))
    buffer_after = draw(st.integers(0, 12).map(lambda k: timedelta(minutes=5 * k)))
    min_notice = draw(minutes(0, 6 * 60))

    # Boundary cases: often pin now + notice, now + horizon, the window bounds or a buffered
    # busy edge exactly onto (or one minute off) a start the availability allows.
    near = [today + timedelta(days=k) for k in range(-1, 6)]
    grid = reference_candidates(tz, weekly, overrides, duration, step or duration, near)
    nudge = st.sampled_from([0, 0, 0, 1, -1]).map(lambda m: timedelta(minutes=m))

    def pinned() -> datetime | None:
        if not grid or not draw(st.booleans()):
            return None
        return draw(st.sampled_from(grid)) + draw(nudge)

    if (pin := pinned()) is not None:
        now_utc = pin - min_notice
    horizon = draw(st.sampled_from([48, 24, 72, 96, 120, 2, 0]).map(lambda h: timedelta(hours=h)))
    horizon += draw(minutes(0, 59))
    if (pin := pinned()) is not None and pin >= now_utc:
        horizon = pin - now_utc
    busy = []
    for _ in range(draw(st.integers(0, 6))):
        length = draw(minutes(0, 180))
        b_start = now_utc + draw(minutes(-1440, 6 * 1440))
        own_before, own_after = (draw(st.sampled_from([0, 0, 5, 15]).map(
            lambda m: timedelta(minutes=m))) for _ in range(2))
        if (pin := pinned()) is not None:
            # Ends (with both sides' buffers) right where a slot at `pin` may start, or
            # starts right where it ends.
            touch_after = pin - buffer_before - own_after - length
            touch_before = pin + duration + buffer_after + own_before
            b_start = draw(st.sampled_from([touch_after, touch_before]))
        busy.append(Interval(b_start, b_start + length, own_before, own_after))
    window_start = draw(st.none() | minutes(-1440, 4 * 1440).map(lambda d: now_utc + d))
    if draw(st.booleans()):
        window_start = pinned() or window_start
    window_end = draw(st.none() | minutes(0, 3 * 1440).map(lambda d: (window_start or now_utc) + d))
    if draw(st.booleans()):
        window_end = pinned() or window_end
    rules = BookingRules(
        duration=duration,
        step=step,
        buffer_before=buffer_before,
        buffer_after=buffer_after,
        min_notice=min_notice,
        horizon=horizon,
        max_per_day=draw(st.none() | st.integers(0, 3)),
    )
    # Hand the engine `now` in some zone; it must only care about the instant.
    now = now_utc.astimezone(draw(st.sampled_from([UTC, tz, ZoneInfo("Asia/Kolkata")])))
    return Case(tz, weekly, overrides, rules, busy, now, window_start, window_end)


PROPERTY_SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@PROPERTY_SETTINGS
@given(cases())
def test_matches_reference_implementation(case: Case) -> None:
    got = case.run()
    assert [s.start for s in got] == reference_slots(case)
    # Busy order does not matter.
    shuffled = replace(case, busy=list(reversed(case.busy)))
    assert shuffled.run() == got


@PROPERTY_SETTINGS
@given(cases())
def test_slot_invariants(case: Case) -> None:
    tz, rules = case.tz, case.rules
    step = rules.step or rules.duration
    slots = case.run()
    starts = [s.start for s in slots]
    assert starts == sorted(set(starts))  # sorted, unique
    now = case.now.astimezone(UTC)
    runs: dict[date, list[tuple[int, int]]] = {}
    for s in slots:
        assert s.start.utcoffset() == timedelta(0) and s.end.utcoffset() == timedelta(0)
        assert s.end - s.start == rules.duration
        # The wall time exists, and the slot is its first occurrence.
        local = s.start.astimezone(tz)
        wall = local.replace(tzinfo=None)
        assert _instants(wall, tz) and _instants(wall, tz)[0] == s.start
        # It is on the wall-time grid of an availability range of its local date and the slot
        # ends (in absolute time) by the range's end.
        day = local.date()
        minute = wall.hour * 60 + wall.minute
        assert wall.second == 0 and wall.microsecond == 0
        if day not in runs:
            runs[day] = _runs(case.weekly, case.overrides, day)
        owning = [(a, b) for a, b in runs[day] if a <= minute < b]
        assert len(owning) == 1
        a, b = owning[0]
        assert timedelta(minutes=minute - a) % step == timedelta(0)
        midnight = datetime.combine(day, time(0))
        assert s.end <= _end_instant(midnight + timedelta(minutes=b), tz)
        # Both sides' buffers are kept with every busy session.
        for bi in case.busy:
            assert not (
                s.start - rules.buffer_before < bi.end + bi.buffer_after
                and s.end + rules.buffer_after > bi.start - bi.buffer_before
            )
        assert now + rules.min_notice <= s.start <= now + rules.horizon
        if case.window_start is not None:
            assert case.window_start <= s.start
        if case.window_end is not None:
            assert s.start < case.window_end
        if rules.max_per_day is not None:
            on_day = sum(1 for bi in case.busy if bi.start.astimezone(tz).date() == day)
            assert on_day < rules.max_per_day


@settings(max_examples=200, deadline=None)
@given(
    anchor=st.sampled_from(PROPERTY_ZONES).flatmap(
        lambda zone: st.tuples(st.just(zone), st.sampled_from(TRANSITIONS[zone]))
    ),
    shift=st.integers(-3 * 1440, 3 * 1440),
)
def test_wall_to_utc_round_trip(anchor: tuple[str, datetime], shift: int) -> None:
    zone, instant = anchor
    tz = ZoneInfo(zone)
    wall = instant.astimezone(tz).replace(tzinfo=None) + timedelta(minutes=shift)
    got = wall_to_utc(wall.date(), wall.time(), tz)
    expected = _instants(wall, tz)
    if not expected:
        assert got is None
    else:
        assert got == expected[0]
        assert got.astimezone(tz).replace(tzinfo=None) == wall

"""Benchmark compute_slots: one coach, 60-day horizon, 300 booked sessions, buffers.

Run from the repository root (no install needed):

    python bench/bench_slots.py [--runs 200] [--step 15]

Target: median <= 20 ms per compute_slots call.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time as clock
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _kit.report import report

from coachgate.scheduling.rules import (
    BookingRules,
    DateOverride,
    Interval,
    Slot,
    WeeklyRule,
    compute_slots,
    wall_to_utc,
)

TARGET_MEDIAN_MS = 20.0
TZ = ZoneInfo("Europe/London")
# Spans the 2026-03-29 spring-forward change so the DST path is exercised too.
NOW = datetime(2026, 3, 2, 7, 13, tzinfo=UTC)


def build_case(step_minutes: int, n_busy: int, seed: int) -> Callable[[], list[Slot]]:
    """A zero-argument call of compute_slots on the benchmark case."""
    weekly = [WeeklyRule(weekday=wd, start=time(8), end=time(20)) for wd in range(6)]  # Mon-Sat
    rules = BookingRules(
        duration=timedelta(minutes=60),
        step=timedelta(minutes=step_minutes),
        buffer_before=timedelta(minutes=10),
        buffer_after=timedelta(minutes=10),
        min_notice=timedelta(hours=2),
        horizon=timedelta(days=60),
    )
    overrides = [
        DateOverride(day=NOW.date() + timedelta(days=10), kind="blocked"),
        DateOverride(
            day=NOW.date() + timedelta(days=20), kind="blocked", start=time(12), end=time(14)
        ),
        DateOverride(
            day=NOW.date() + timedelta(days=13), kind="extra", start=time(9), end=time(12)
        ),
    ]
    # Place n_busy non-overlapping 60-min sessions on the grid of the weekly rules.
    rng = random.Random(seed)
    grid: list[datetime] = []
    first = NOW.astimezone(TZ).date()
    for offset in range(60):
        day = first + timedelta(days=offset)
        if day.weekday() == 6:
            continue
        for minute in range(8 * 60, 19 * 60 + 1, 90):  # 90-min spacing: never overlapping
            instant = wall_to_utc(day, time(minute // 60, minute % 60), TZ)
            if instant is not None:
                grid.append(instant)
    starts = rng.sample(grid, n_busy)
    busy = [Interval(start=s, end=s + timedelta(minutes=60)) for s in starts]  # unsorted

    def call() -> list[Slot]:
        return compute_slots(
            tz=TZ, weekly=weekly, overrides=overrides, rules=rules, busy=busy, now=NOW
        )

    return call


def run(step_minutes: int, runs: int, n_busy: int, seed: int) -> tuple[float, float, int]:
    case = build_case(step_minutes, n_busy, seed)
    slots = case()  # warm-up
    timings: list[float] = []
    for _ in range(runs):
        t0 = clock.perf_counter()
        case()
        timings.append((clock.perf_counter() - t0) * 1000.0)
    timings.sort()
    median = statistics.median(timings)
    p95 = timings[min(len(timings) - 1, math.ceil(0.95 * len(timings)) - 1)]
    return median, p95, len(slots)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--busy", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--step", type=int, action="append", help="slot step in minutes (default: 15 and 30)"
    )
    parser.add_argument("--quick", action="store_true", help="50 runs (./run bench --quick)")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs = min(args.runs, 50)
    steps: list[int] = args.step or [15, 30]

    print(f"python: {sys.version.split()[0]}  tz: {TZ.key}  now: {NOW.isoformat()}")
    print(
        f"case: Mon-Sat 08:00-20:00, 60-min duration, 10-min buffers, 60-day horizon, "
        f"{args.busy} busy sessions, {args.runs} runs"
    )
    ok = True
    for step in steps:
        median, p95, n_slots = run(step, args.runs, args.busy, args.seed)
        verdict = "OK" if median <= TARGET_MEDIAN_MS else "TOO SLOW"
        ok = ok and median <= TARGET_MEDIAN_MS
        print(
            f"step={step:>2} min  slots={n_slots:>5}  median={median:6.2f} ms  "
            f"p95={p95:6.2f} ms  target median<={TARGET_MEDIAN_MS:.0f} ms  {verdict}"
        )
        report(f"slots, pure engine, {step}-min step: median", round(median, 2), "ms",
               TARGET_MEDIAN_MS, "max", note=f"{n_slots} slots, {args.runs} runs")
    step_args = " ".join(f"--step {step}" for step in steps)
    print(
        f"reproduce: cd <repo root> && python bench/bench_slots.py --runs {args.runs} "
        f"--busy {args.busy} --seed {args.seed} {step_args}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

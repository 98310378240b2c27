"""Settings of the web processes (`coachgate serve` and its gunicorn workers), applied once
they have loaded everything. Not the gate worker: there the rarer but longer collections
made access gates later (bench_gate_lateness p99 0.32 s with it, 0.18 s without).

Garbage collection: a booking allocates tens of thousands of short-lived objects (model
instances, SQL parameters, rows), and with CPython's default first-generation threshold
(700 allocations) collections ran every few hundred microseconds: about 10 % of a
booking's CPU (bench/bench_booking_race.py, docs/benchmarks.md). Collecting less often
costs a few megabytes per process. ``gc.freeze()`` first moves what start-up loaded
(Django, the URL conf, the models) out of the collector's sight, so a collection does not
walk it again and, in gunicorn's master before it forks, its pages stay shared.
"""

from __future__ import annotations

import gc

GC_FIRST_GENERATION_THRESHOLD = 50_000


def tune_for_serving() -> None:
    gc.collect()
    gc.freeze()
    _, second, third = gc.get_threshold()
    gc.set_threshold(GC_FIRST_GENERATION_THRESHOLD, second, third)

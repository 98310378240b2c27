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


def load_lazy_modules() -> None:
    """Import now what Django would otherwise import on a process's first request: the
    URL conf (and with it every API module, whose schemas django-ninja and pydantic build
    at import) and the message storage. In gunicorn's master, before it forks, so each web
    process starts with them loaded and shared, not paying for them while it serves its
    first requests (bench_booking_race --mode http: a fifth of the web processes' CPU in a
    run of 1,248 bookings went to this, in both processes)."""
    from django.conf import settings
    from django.urls import get_resolver
    from django.utils.module_loading import import_string

    resolver = get_resolver()
    resolver.url_patterns  # noqa: B018  # the import itself is the point
    resolver.reverse_dict  # noqa: B018  # and the reverse table, built once per process
    import_string(settings.MESSAGE_STORAGE)


def tune_for_serving() -> None:
    gc.collect()
    gc.freeze()
    _, second, third = gc.get_threshold()
    gc.set_threshold(GC_FIRST_GENERATION_THRESHOLD, second, third)

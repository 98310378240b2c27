"""Prometheus metrics, defined once. /metrics exposes them (see web.views.metrics).

With several processes on one machine (web + workers), set PROMETHEUS_MULTIPROC_DIR to a
shared empty directory and /metrics aggregates every process's figures: counters and
histograms summed, the per-process gauge below one sample per live process (pid label).
`coachgate serve --processes N` does this by itself (a fresh directory for the run, and each
dead process marked as such); the variable must be set before this module is imported,
since prometheus_client picks its storage at import.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge, Histogram

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

GATE_LATENESS = Histogram(
    "coachgate_gate_lateness_seconds",
    "How late a gate ran after its due time.",
    ["kind"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 15, 60, 300, 3600),
)
GATE_RUNS = Counter(
    "coachgate_gate_runs_total", "Gate runs (converge passes) by gate kind and result.",
    ["kind", "result"],
)
DISCORD_CALLS = Counter(
    "coachgate_discord_calls_total", "Discord API calls by route and HTTP status.",
    ["method", "route", "status"],
)
BOOKINGS = Counter("coachgate_bookings_total", "Bookings made.")
NOTIFICATIONS = Counter(
    "coachgate_notifications_total", "Notifications by channel and result.", ["channel", "result"],
)
SETTLEMENTS = Counter(
    "coachgate_settlements_total",
    "Bookings settled by outcome; result=duplicate counts settlements refused as repeats.",
    ["outcome", "result"],
)
PAYMENT_CALLS = Counter(
    "coachgate_payment_steps_total", "Payment gate steps by gateway and result.",
    ["gateway", "result"],
)
PACK_TRANSITIONS = Counter(
    "coachgate_pack_transitions_total", "Pack and seat state changes.", ["kind"],
)
HTTP_REQUESTS = Counter(
    "coachgate_http_requests_total",
    "HTTP requests received by `coachgate serve` (all its web processes together).",
)
PROCESS_HTTP_REQUESTS = Gauge(
    "coachgate_process_http_requests",
    "HTTP requests received by one web process; under several processes one sample per "
    "live process, labelled with its pid (how evenly the processes share the load).",
    ["server"],  # labelled, so that only processes that serve have a sample (not the worker)
    multiprocess_mode="liveall",
)


def count_requests(app: WSGIApplication, server: str) -> WSGIApplication:
    """The WSGI application `coachgate serve` runs: `app`, counting each request as it
    arrives (a scrape counts itself). `server`: waitress or gunicorn. The labelled child is
    looked up per request, not here: gunicorn loads the app before it forks, and a child
    made here would give the forking process a sample of its own."""

    def counted(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        HTTP_REQUESTS.inc()
        PROCESS_HTTP_REQUESTS.labels(server=server).inc()
        return app(environ, start_response)

    return counted


def multiprocess_dir() -> str | None:
    """The directory every process of this run writes its figures to, if one is set."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def mark_process_dead(pid: int) -> None:
    """A process of the run has exited: drop its live-only gauges (its counters stay in
    the sums, as Prometheus expects of a counter)."""
    if multiprocess_dir():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]  # prometheus_client leaves it unannotated


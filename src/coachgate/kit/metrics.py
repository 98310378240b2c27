"""Prometheus metrics, defined once. /metrics exposes them (see web.views.metrics).

With several processes on one machine (web + workers), set PROMETHEUS_MULTIPROC_DIR to a
shared empty directory and /metrics aggregates every process's figures.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

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

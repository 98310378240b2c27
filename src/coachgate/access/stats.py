"""Figures for the admin statistics: how late gates ran and how often provisioning worked,
from the worker's own records (``GateRun``: one row per gate run at its due time).

Bounded aggregates only, the same on PostgreSQL and SQLite: GROUP BY kind, and GROUP BY
kind and lateness rounded to three significant digits (a histogram of at most a few
thousand rows, whatever the number of runs), from which the percentiles are read. An
ordered-set ``percentile_disc`` sorts every run of the period (0.4 s at a million runs in
bench/bench_ops_stats.py); the histogram is a hash aggregate PostgreSQL runs in parallel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Case, Count, F, IntegerField, Max, Q, QuerySet, When

from .models import GateRun
from .rules import GateKind

# The gates that make or open a session's Discord channel.
PROVISIONING = (GateKind.PROVISION.value, GateKind.GRANT.value)


def _rounded_ms() -> Case:
    """Lateness to three significant digits (exact below one second, 0.5 % at most
    above): the histogram's key. A period holds at most ~900 keys per decade of lateness,
    so the histogram is small whatever the number of runs."""
    late = F("late_ms")
    steps = [When(late_ms__lt=1000, then=late)]
    for bound, unit in ((10_000, 10), (100_000, 100), (1_000_000, 1000), (10_000_000, 10_000)):
        steps.append(When(late_ms__lt=bound, then=late / unit * unit))
    return Case(*steps, default=late / 100_000 * 100_000, output_field=IntegerField())


def _percentile(histogram: list[tuple[int, int]], n: int, q: float) -> float:
    """percentile_disc over a sorted (value, count) histogram: the smallest value whose
    cumulative share reaches q."""
    rank, seen = max(1, math.ceil(q * n)), 0
    for value, count in histogram:
        seen += count
        if seen >= rank:
            return float(value)
    return float(histogram[-1][0]) if histogram else 0.0


@dataclass
class GateLateness:
    kind: str
    runs: int
    ok: int
    p50_ms: float
    p99_ms: float
    max_ms: float


def _period(start: datetime, end: datetime) -> QuerySet[GateRun]:
    return GateRun.objects.filter(due_at__gte=start, due_at__lt=end)


def gate_lateness(start: datetime, end: datetime) -> list[GateLateness]:
    """Per gate kind: runs whose gate fell due in [start, end), how many succeeded, and
    how late they began (p50, p99, max, milliseconds; percentiles to three significant
    digits). One aggregate, by kind and rounded lateness (a hash aggregate PostgreSQL runs
    in parallel; no sort of the runs); the kinds' totals are summed from it."""
    rows = (_period(start, end).annotate(key=_rounded_ms()).values("kind", "key")
            .annotate(n=Count("*"), good=Count("kind", filter=Q(ok=True)),
                      worst=Max("late_ms"))
            .order_by("kind", "key").values_list("kind", "key", "n", "good", "worst"))
    kinds: dict[str, list[tuple[int, int, int, int]]] = {}
    for kind, key, n, good, worst in rows:
        kinds.setdefault(kind, []).append((key, n, good, worst))
    result = []
    for kind, buckets in kinds.items():
        histogram = [(key, n) for key, n, _, _ in buckets]
        runs = sum(n for _, n in histogram)
        result.append(GateLateness(kind, runs, sum(b[2] for b in buckets),
                                   _percentile(histogram, runs, 0.5),
                                   _percentile(histogram, runs, 0.99),
                                   float(max(b[3] for b in buckets))))
    return result


@dataclass
class Provisioning:
    runs: int
    ok: int

    @property
    def failed(self) -> int:
        return self.runs - self.ok

    @property
    def rate(self) -> float | None:
        return self.ok / self.runs if self.runs else None


def provisioning(lateness: list[GateLateness]) -> Provisioning:
    """The provision and grant gates' success on their own runs (from ``gate_lateness``'s
    counts: no second query)."""
    rows = [g for g in lateness if g.kind in PROVISIONING]
    return Provisioning(sum(g.runs for g in rows), sum(g.ok for g in rows))

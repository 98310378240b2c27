"""Figures for the admin statistics: how late gates ran and how often provisioning worked,
from the worker's own records (``GateRun``: one row per gate run at its due time).

Bounded aggregates only: GROUP BY kind over the period's rows, answered from the covering
index ``access_gate_run_due_idx``. Percentiles are ``percentile_disc`` on PostgreSQL; SQLite
has no such aggregate, so there each percentile is one indexed ``ORDER BY late_ms LIMIT 1
OFFSET k`` per kind (still no rows in Python).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import Aggregate, Count, FloatField, Max, Q, QuerySet

from .models import GateRun
from .rules import GateKind

# The gates that make or open a session's Discord channel.
PROVISIONING = (GateKind.PROVISION.value, GateKind.GRANT.value)


class _PercentileDisc(Aggregate):
    """PostgreSQL's ordered-set aggregate: the smallest value at or above the fraction."""

    function = "percentile_disc"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression: str, fraction: float, **extra: Any) -> None:
        super().__init__(expression, fraction=float(fraction), **extra)


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
    how late they began (p50, p99, max, milliseconds)."""
    base = _period(start, end).values("kind").order_by("kind")
    if connection.vendor == "postgresql":
        rows = base.annotate(runs=Count("*"), good=Count("kind", filter=Q(ok=True)),
                             p50=_PercentileDisc("late_ms", 0.5),
                             p99=_PercentileDisc("late_ms", 0.99), worst=Max("late_ms"))
        return [GateLateness(r["kind"], r["runs"], r["good"], float(r["p50"]),
                             float(r["p99"]), float(r["worst"])) for r in rows]
    result = []
    for r in base.annotate(runs=Count("*"), good=Count("kind", filter=Q(ok=True)),
                           worst=Max("late_ms")):
        ordered = (_period(start, end).filter(kind=r["kind"]).order_by("late_ms")
                   .values_list("late_ms", flat=True))

        def at(q: float, n: int = r["runs"], ordered: Any = ordered) -> float:
            k = max(0, math.ceil(q * n) - 1)  # percentile_disc's definition
            return float(ordered[k])

        result.append(GateLateness(r["kind"], r["runs"], r["good"], at(0.5), at(0.99),
                                   float(r["worst"])))
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

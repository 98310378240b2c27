"""What runs periodically, registered by the apps that own it.

Each domain app with timer rows registers, in its ``AppConfig.ready()``, its sweep (runs
what is due and repairs what a lost wake-up, a crash or a failed call left behind) and the
models of its timer rows (for the list of rows waiting for a retry). The worker's sweep
thread, ``coachgate reconcile`` and ``POST /system/sweep`` call :func:`sweep_all`, which
knows no app: like pretix's ``periodic_task`` signal, an app hooks in without the worker
importing it, so the layers point downwards only (kit imports no domain app).

    periodic.register_sweep("billing", _sweep, order=30)
    periodic.register_timer_rows("payments", "billing.Payment")
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from coachgate.kit import clock, due

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepContext:
    """What every sweep is given: the time, who sweeps, how far and how deep."""

    now: datetime
    owner: str
    limit: int
    drift: bool


SweepFn = Callable[[SweepContext], dict[str, Any]]


@dataclass(frozen=True)
class Sweep:
    name: str
    run: SweepFn
    order: int


_sweeps: dict[str, Sweep] = {}
_timer_rows: dict[str, str] = {}  # name -> model label ("billing.Payment")


def register_sweep(name: str, run: SweepFn, *, order: int) -> None:
    """Register an app's sweep under ``name``; sweeps run by ascending ``order``.

    Registering the same function again under the same name changes nothing (``ready()``
    may run twice in tests); another function under a taken name is a programming error.
    """
    old = _sweeps.get(name)
    if old is not None and (old.run is not run or old.order != order):
        raise ValueError(f"a sweep named {name!r} is registered already")
    _sweeps[name] = Sweep(name=name, run=run, order=order)


def register_timer_rows(name: str, model_label: str) -> None:
    """Register a model of timer rows by its label (resolved when listed, so ``ready()``
    imports no models)."""
    _timer_rows[name] = model_label


def sweeps() -> list[Sweep]:
    return sorted(_sweeps.values(), key=lambda s: (s.order, s.name))


def sweep_all(*, now: datetime | None = None, owner: str = "", limit: int = 500,
              drift: bool = True, failing: bool = False,
              after_each: Callable[[], object] | None = None) -> dict[str, Any]:
    """One pass of every registered sweep (the worker's sweep thread, ``coachgate
    reconcile`` and ``POST /system/sweep``). Each sweep runs on its own and each of them
    runs each row on its own, so one bad row or one failing sweep stops nothing else: a
    sweep that raises is reported as ``{"error": ...}`` and logged. ``failing`` adds the
    rows that are waiting for a retry after an error, with that error (``"failing"``).
    ``after_each`` runs after every sweep (the worker closes broken connections there)."""
    owner = owner or due.worker_identity()
    report: dict[str, Any] = {}
    for sweep in sweeps():
        try:
            report[sweep.name] = sweep.run(SweepContext(now=now or clock.now(), owner=owner,
                                                        limit=limit, drift=drift))
        except Exception as exc:  # one domain's failure must not stop the others
            log.exception("%s sweep failed", sweep.name)
            report[sweep.name] = {"error": due.describe(exc)}
        finally:
            if after_each is not None:
                after_each()
    if failing:
        try:
            report["failing"] = failing_rows()
        except Exception as exc:
            log.exception("listing failing rows failed")
            report["failing"] = {"error": due.describe(exc)}
    return report


def failing_rows(limit: int = 50) -> dict[str, list[dict[str, Any]]]:
    """Timer rows whose last run failed, with their error and next retry, by kind."""
    from django.apps import apps

    return {name: due.failing_rows(apps.get_model(label), limit=limit)
            for name, label in _timer_rows.items()}

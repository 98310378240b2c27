"""The worker: runs wake-up tasks as they fall due, and sweeps for anything behind.

It is django-tasks-db's worker loop (tasks are rows in the same database, so several
workers on several machines share them) plus a sweep thread. Tasks are only wake-ups; the
sweep is what makes a lost task, a crashed worker or a failed call harmless.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.db import close_old_connections
from django_tasks_db.management.commands.db_worker import Worker as TaskLoop

from coachgate.kit import clock, due

log = logging.getLogger(__name__)


def _sweeps(*, owner: str, limit: int, drift: bool
            ) -> list[tuple[str, Callable[[datetime], dict[str, Any]]]]:
    """Every sweep, in order: access, the notification outbox, then the other domains with
    timer rows (each runs what is due and repairs what a lost wake-up missed)."""
    from coachgate.billing.services import sweep as billing_sweep
    from coachgate.notify.services import sweep_outbox
    from coachgate.packs.services import sweep as packs_sweep

    from . import services

    return [
        ("access", lambda now: services.sweep(now=now, owner=owner, limit=limit,
                                              drift=drift).as_dict()),
        ("notify", lambda now: {"touched": sweep_outbox(now=now)}),
        ("billing", lambda now: billing_sweep(now=now, owner=owner).as_dict()),
        ("packs", lambda now: packs_sweep(now=now, owner=owner).as_dict()),
    ]


def sweep_all(*, now: datetime | None = None, owner: str = "", limit: int = 500,
              drift: bool = True, failing: bool = False,
              after_each: Callable[[], object] | None = None) -> dict[str, Any]:
    """One pass of every sweep (the worker's sweep thread, `coachgate reconcile` and
    `POST /system/sweep`). Each sweep runs on its own and each of them runs each row on
    its own, so one bad row or one failing sweep stops nothing else: a sweep that raises is
    reported as ``{"error": ...}`` and logged. ``failing`` adds the rows that are waiting
    for a retry after an error, with that error (``"failing"``). ``after_each`` runs after
    every sweep (the worker closes broken database connections there)."""
    owner = owner or due.worker_identity()
    report: dict[str, Any] = {}
    for name, run in _sweeps(owner=owner, limit=limit, drift=drift):
        try:
            report[name] = run(now or clock.now())
        except Exception as exc:  # one domain's failure must not stop the others
            log.exception("%s sweep failed", name)
            report[name] = {"error": due.describe(exc)}
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
    from coachgate.billing.models import Payment, SessionBilling
    from coachgate.packs.models import Pack, Seat

    from .models import SessionAccess

    models: dict[str, Any] = {"access": SessionAccess, "settlement": SessionBilling,
                              "payments": Payment, "packs": Pack, "seats": Seat}
    return {name: due.failing_rows(model, limit=limit) for name, model in models.items()}


class GateWorker:
    def __init__(self, *, poll_interval: float, sweep_interval: float, worker_id: str,
                 sweep: bool = True, tasks: bool = True) -> None:
        self.poll_interval = poll_interval
        self.sweep_interval = sweep_interval
        self.worker_id = worker_id[:64]
        self.sweep_enabled = sweep and sweep_interval > 0
        # tasks=False: sweep only, like the once-a-minute crons of the earlier systems
        # (bench/bench_gate_lateness.py compares the two).
        self.tasks_enabled = tasks
        self.stopping = threading.Event()
        self.loop = TaskLoop(queue_names=["*"], interval=poll_interval, batch=False,
                             backend_name="default", startup_delay=False, max_tasks=None,
                             worker_id=self.worker_id, excluded_queue_names=[])
        self._threads: list[threading.Thread] = []

    def _sweep_forever(self) -> None:
        while not self.stopping.is_set():
            try:
                report = sweep_all(owner=self.worker_id, after_each=close_old_connections)
                access = report.get("access", {})
                if (access.get("converged") or access.get("orphans_deleted")
                        or access.get("channels_recreated") or access.get("errors")):
                    log.info("sweep: %s", access)
            except Exception:  # the sweep must outlive any single failure
                log.exception("sweep failed; trying again in %ss", self.sweep_interval)
            finally:
                close_old_connections()
            self.stopping.wait(self.sweep_interval)

    def _loop(self) -> None:
        try:
            self.loop.run()
        finally:
            close_old_connections()

    def start(self) -> None:
        """Run in background threads (the embedded default runs it inside `serve`)."""
        if self.sweep_enabled:
            self._threads.append(threading.Thread(target=self._sweep_forever,
                                                  name="coachgate-sweep", daemon=True))
        if self.tasks_enabled:
            self._threads.append(threading.Thread(target=self._loop, name="coachgate-tasks",
                                                  daemon=True))
        for t in self._threads:
            t.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        self.loop.running = False
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))

    def run_forever(self) -> None:
        """Run in the foreground until SIGINT/SIGTERM (`coachgate worker`)."""
        if self.sweep_enabled:
            t = threading.Thread(target=self._sweep_forever, name="coachgate-sweep",
                                 daemon=True)
            t.start()
        if not self.tasks_enabled:
            import signal

            signal.signal(signal.SIGTERM, lambda *_: self.stopping.set())
            try:
                while not self.stopping.wait(0.5):
                    pass
            except KeyboardInterrupt:
                self.stopping.set()
            return
        self.loop.configure_signals()
        try:
            self.loop.run()
        finally:
            self.stopping.set()

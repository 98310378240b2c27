"""The worker: runs wake-up tasks as they fall due, and sweeps for anything behind.

It is django-tasks-db's worker loop (tasks are rows in the same database, so several
workers on several machines share them) plus a sweep thread that runs every sweep the apps
registered (kit.periodic). Tasks are only wake-ups; the sweep is what makes a lost task, a
crashed worker or a failed call harmless. It imports no domain app.
"""

from __future__ import annotations

import logging
import threading
import time

from django.db import close_old_connections
from django_tasks_db.management.commands.db_worker import Worker as TaskLoop

from coachgate.kit.periodic import sweep_all

log = logging.getLogger(__name__)


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

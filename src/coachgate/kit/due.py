"""Timer rows: claiming rows whose ``next_due_at`` has come, with a lease.

A model that uses this has ``next_due_at``, ``lease_until`` and ``lease_owner`` (and a
partial index on ``next_due_at``). Workers claim due rows with a short lease instead of
holding a database lock across work: a crashed worker's claim simply expires, and on
PostgreSQL two workers skip each other's rows (SKIP LOCKED) instead of queueing.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, models, transaction
from django.db.models import Model, Q

from coachgate.kit import metrics

log = logging.getLogger(__name__)


class TimerRow(models.Model):
    """The fields a timer row needs (give the concrete model a partial index on
    ``next_due_at``, condition ``next_due_at IS NOT NULL``)."""

    next_due_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    lease_owner = models.CharField(max_length=64, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        abstract = True


def _free(now: datetime) -> Q:
    return Q(lease_until__isnull=True) | Q(lease_until__lte=now)


def claim_due(model: type[Model], *, now: datetime, owner: str, lease: timedelta,
              limit: int) -> list[Any]:
    """Claim up to ``limit`` due rows (oldest first) for ``owner``; returns their keys."""
    return [row[0] for row in claim_due_rows(model, now=now, owner=owner, lease=lease,
                                             limit=limit)]


def claim_due_rows(model: type[Model], *, now: datetime, owner: str, lease: timedelta,
                   limit: int, fields: tuple[str, ...] = ()) -> list[tuple[Any, ...]]:
    """``claim_due``, returning (key, *fields) as they were when claimed."""
    manager = model._default_manager
    with transaction.atomic():
        qs = manager.filter(next_due_at__lte=now).filter(_free(now)).order_by("next_due_at")
        if connection.features.has_select_for_update_skip_locked:
            qs = qs.select_for_update(skip_locked=True)
        rows = list(qs.values_list("pk", *fields)[:limit])
        if rows:
            manager.filter(pk__in=[r[0] for r in rows]).update(lease_until=now + lease,
                                                                lease_owner=owner)
    return rows


def claim_one(model: type[Model], pk: Any, *, now: datetime, owner: str,
              lease: timedelta) -> bool:
    """Claim one row whatever its due time (a direct call), unless another run holds it."""
    return bool(model._default_manager.filter(pk=pk).filter(_free(now))
                .update(lease_until=now + lease, lease_owner=owner))


def worker_identity() -> str:
    """Who holds a lease: host, process and thread."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"[:64]


MAX_BACKOFF = timedelta(minutes=10)


def drain(model: type[Model], run_one: Callable[[Any], bool], *, now: datetime, owner: str,
          lease: timedelta, batch: int, max_batches: int = 1000,
          wake_task: Any = None) -> tuple[int, int]:
    """Claim due rows batch after batch and run each with ``run_one(pk) -> ok`` until
    fewer than a batch is left. Returns (rows run, rows that failed).

    Each row runs on its own (``run_isolated``): one that raises is recorded and retried
    later, and the rest of the batch carries on."""
    ran = failed = 0
    for _ in range(max_batches):
        keys = claim_due(model, now=now, owner=owner, lease=lease, limit=batch)
        for pk in keys:
            failed += not run_isolated(model, pk, run_one, now=now, owner=owner,
                                       wake_task=wake_task)
        ran += len(keys)
        if len(keys) < batch:
            break
    return ran, failed


def run_isolated(model: type[Model], pk: Any, run_one: Callable[[Any], bool], *,
                 now: datetime, owner: str, wake_task: Any = None) -> bool:
    """Run one claimed row; whatever it raises (a row stored before validation existed, a
    bug, the database) stays with that row: its error is recorded on it, it is retried
    with backoff (``retry_later``, woken through ``wake_task`` if given) and False is
    returned. Never raises."""
    try:
        return bool(run_one(pk))
    except Exception as exc:
        log.exception("%s %s failed; retrying it later", model._meta.label, pk)
        record_failure(model, pk, owner=owner, now=now, exc=exc, wake_task=wake_task)
        return False


def record_failure(model: type[Model], pk: Any, *, owner: str, now: datetime,
                   exc: Exception, wake_task: Any = None) -> datetime | None:
    """``retry_later`` in its own transaction, and never raising: when even that fails (the
    database is away), the row's lease expires and the next claim retries it."""
    try:
        with transaction.atomic():
            at = retry_later(model, pk, owner=owner, now=now, exc=exc)
            if wake_task is not None:
                wake_on_commit(wake_task, at)
        return at
    except Exception:
        log.exception("could not record the failure of %s %s", model._meta.label, pk)
        return None


def isolated(kind: str, what: str, step: Callable[..., object], *args: Any,
             atomic: bool = False, on_error: Callable[[Exception], object] | None = None,
             **kwargs: Any) -> bool:
    """Run one repair step of a sweep (a row without a timer of its own: a booking that lost
    its event, a seat out of step), in a transaction of its own if ``atomic``, so that
    whatever it raises stays with it: logged, counted in
    ``coachgate_gate_runs_total{kind, result="error"}``, tried again by the next sweep.
    Runs ``step(*args, **kwargs)``; returns whether it succeeded. ``on_error(exc)`` may
    record the error where admins see it (it must not raise; if it does, that is logged)."""
    try:
        if atomic:
            with transaction.atomic():
                step(*args, **kwargs)
        else:
            step(*args, **kwargs)
        return True
    except Exception as exc:
        log.exception("%s failed; the next sweep tries again", what)
        metrics.GATE_RUNS.labels(kind=kind, result="error").inc()
        if on_error is not None:
            try:
                on_error(exc)
            except Exception:
                log.exception("could not record the failure of %s", what)
        return False


def describe(exc: BaseException) -> str:
    """An error as admins read it: its type, message and (for business errors) the field."""
    details = getattr(exc, "details", None)
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(details, dict) and details.get("field"):
        text += f" (field {details['field']})"
    return text[:2000]


def backoff(attempts: int) -> timedelta:
    """The wait after the ``attempts``-th failure in a row (1, 2, …): 1 s, 2 s, 4 s … at
    most MAX_BACKOFF."""
    # The exponent's own cap only keeps 2 ** n small; it must lie past MAX_BACKOFF (2 ** 10 s
    # > 10 min), else the wait stops doubling short of it (2 ** 9 s = 8.5 min).
    return min(MAX_BACKOFF, timedelta(seconds=2 ** min(max(attempts - 1, 0), 10)))


def retry_later(model: type[Model], pk: Any, *, owner: str, now: datetime,
                exc: Exception) -> datetime:
    """A run of a claimed row failed (a bug, bad data, the database): record why, back off
    exponentially (at most MAX_BACKOFF) and return when it is due again. The caller wakes
    a task for that time. Counted in ``coachgate_gate_runs_total{result="error"}``."""
    attempts = model._default_manager.filter(pk=pk).values_list(
        "attempts", flat=True).first() or 0
    retry = now + backoff(attempts + 1)
    release(model, pk, owner=owner, attempts=attempts + 1, last_error=describe(exc),
            next_due_at=retry)
    metrics.GATE_RUNS.labels(kind=model._meta.model_name, result="error").inc()
    return retry


def failing_rows(model: type[Model], *, limit: int = 50) -> list[dict[str, Any]]:
    """Rows whose last run failed and that are waiting for their retry (for reports: one
    range scan of the ``next_due_at`` partial index)."""
    rows = (model._default_manager.filter(next_due_at__isnull=False, attempts__gt=0)
            .exclude(last_error="").order_by("next_due_at")
            .values_list("pk", "attempts", "next_due_at", "last_error")[:limit])
    return [{"id": pk, "attempts": attempts, "retry_at": at.isoformat(), "error": error}
            for pk, attempts, at, error in rows]


def release(model: type[Model], pk: Any, *, owner: str, **fields: Any) -> None:
    """End our claim and write the row's new state (``next_due_at`` etc.)."""
    model._default_manager.filter(pk=pk, lease_owner=owner).update(
        lease_until=None, lease_owner="", **fields)


# Wake-ups are rounded up to this grain and enqueued once per (task, time): a burst of
# 10,000 sessions ending in one minute needs 120 wake-ups, not 10,000, and each run
# handles every row that is due by then. A row is at most one grain late for it.
WAKE_GRAIN_MS = 500


def wake_time(at: datetime) -> datetime:
    ms = at.microsecond // 1000
    rounded = at.replace(microsecond=0) + timedelta(
        milliseconds=-(-ms // WAKE_GRAIN_MS) * WAKE_GRAIN_MS)
    return rounded if rounded >= at else rounded + timedelta(milliseconds=WAKE_GRAIN_MS)


def wake(task: Any, at: datetime) -> None:
    """Enqueue ``task`` (no arguments) to run at ``at`` rounded up to the grain, unless a
    wake-up for that moment is already waiting. Two racing callers may both enqueue: a
    second run finds nothing due and costs one empty claim."""
    from django_tasks_db.models import DBTaskResult

    when = wake_time(at)
    waiting = DBTaskResult.objects.filter(task_path=task.module_path, run_after=when,
                                          status="READY").exists()
    if not waiting:
        task.using(run_after=when).enqueue()


def wake_on_commit(task: Any, at: datetime | None) -> None:
    """``wake`` once the current transaction commits, or with the transaction's other task
    rows inside ``kit.enqueue.batch()``. Robust: the rows are the truth; a wake-up lost to
    an error is repaired by the sweep."""
    from coachgate.kit import enqueue

    enqueue.wake(task, at)

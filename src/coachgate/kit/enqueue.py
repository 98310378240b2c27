"""Tasks enqueued by a transaction commit with it.

Outside ``batch()``, ``enqueue`` and ``wake`` enqueue once the current transaction commits
(at once in autocommit), as the apps always did. Inside ``batch()`` they are collected,
and when the block ends without an error they are written in one INSERT in the same
transaction (django-tasks-db keeps tasks in the database): the task rows commit with the
rows that need them or not at all, and a busy code path (a booking: the access gate, the
billing gates and two notifications) pays for one statement instead of one per task. With
another task backend (tests' immediate or dummy ones) a batch enqueues on commit, one by one.

Wake-ups (``wake``: no arguments, "run at this time") are rounded up to kit.due's grain and
written only if no wake-up of that task for that moment is waiting already; a batch checks
all of its wake-ups in one query.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db import connection, transaction


@dataclass
class _Batch:
    calls: list[tuple[Any, tuple[Any, ...], datetime | None]] = field(default_factory=list)
    wakes: dict[tuple[str, datetime], Any] = field(default_factory=dict)


_state = threading.local()


def _current() -> _Batch | None:
    return getattr(_state, "batch", None)


@contextmanager
def batch() -> Iterator[None]:
    """Collect the tasks enqueued inside and write them when the block ends cleanly; use it
    inside the transaction whose rows the tasks are for. Nested batches join the outer one."""
    if _current() is not None:
        yield
        return
    _state.batch = collected = _Batch()
    try:
        yield
    finally:
        _state.batch = None
    _flush(collected)


def enqueue(task: Any, *args: Any, run_after: datetime | None = None) -> None:
    """Enqueue ``task(*args)`` to run at ``run_after`` (now if None) once the current
    transaction commits; inside ``batch()``, with the batch."""
    current = _current()
    if current is not None:
        current.calls.append((task, args, run_after))
        return
    transaction.on_commit(lambda: _enqueue_now(task, args, run_after), robust=True)


def wake(task: Any, at: datetime | None) -> None:
    """Wake ``task`` (no arguments) at ``at`` rounded up to the grain, unless such a wake-up
    is waiting already (see kit.due.wake). Nothing for None."""
    if at is None:
        return
    from coachgate.kit import due

    when = due.wake_time(at)
    current = _current()
    if current is not None:
        current.wakes.setdefault((task.module_path, when), task)
        return
    transaction.on_commit(lambda: due.wake(task, when), robust=True)


def _enqueue_now(task: Any, args: tuple[Any, ...], run_after: datetime | None) -> None:
    (task.using(run_after=run_after) if run_after is not None else task).enqueue(*args)


def _database_backend(task: Any) -> Any:
    from django_tasks_db.backend import DatabaseBackend

    backend = task.get_backend()
    return backend if isinstance(backend, DatabaseBackend) else None


def _flush(collected: _Batch) -> None:
    if not collected.calls and not collected.wakes:
        return
    first = next(iter(collected.wakes.values()), None) or collected.calls[0][0]
    backend = _database_backend(first)
    if backend is None:  # not tasks in this database: enqueue each once we commit
        for task, args, run_after in collected.calls:
            enqueue(task, *args, run_after=run_after)
        for (_, when), task in collected.wakes.items():
            wake(task, when)
        return
    from django_tasks_db.compat import normalize_json
    from django_tasks_db.models import DBTaskResult, get_date_max

    from coachgate.kit.rows import insert as insert_rows

    wakes = {(path, _utc(when)): task for (path, when), task in collected.wakes.items()}
    for key in _waiting(DBTaskResult, list(wakes)):
        wakes.pop(key, None)
    rows: list[DBTaskResult[Any, Any]] = []
    checked: set[int] = set()
    for task, args, run_after in [*collected.calls,
                                  *((t, (), when) for (_, when), t in wakes.items())]:
        if id(task) not in checked:  # what enqueue() checks, once per task
            backend.validate_task(task)
            checked.add(id(task))
        rows.append(DBTaskResult(
            id=backend._get_id(), args_kwargs=normalize_json({"args": list(args), "kwargs": {}}),
            priority=task.priority, task_path=task.module_path, queue_name=task.queue_name,
            # what the backend's pre_save handler does for "no time" (no signals here)
            run_after=run_after or get_date_max(), backend_name=backend.alias))
    insert_rows(*rows)


def _waiting(model: Any, wanted: list[tuple[str, datetime]]) -> list[tuple[str, datetime]]:
    """Which of these (task path, time) wake-ups are waiting already: one query, its SQL
    built from the model's metadata (the ORM's compilation of the OR of pairs cost more than
    the query)."""
    if not wanted:
        return []
    qn = connection.ops.quote_name
    f = {name: qn(model._meta.get_field(name).column)
         for name in ("task_path", "run_after", "status")}
    pairs = " OR ".join([f"({f['task_path']} = %s AND {f['run_after']} = %s)"] * len(wanted))
    sql = (f"SELECT {f['task_path']}, {f['run_after']} FROM {qn(model._meta.db_table)} "  # noqa: S608
           f"WHERE {f['status']} = %s AND ({pairs})")
    run_after = model._meta.get_field("run_after")
    params: list[Any] = ["READY"]
    for path, when in wanted:
        params += [path, run_after.get_db_prep_value(when, connection)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        found = cursor.fetchall()
    return [(path, _utc(when)) for path, when in found]


def _utc(value: datetime | str) -> datetime:
    """A stored time as an aware UTC datetime (SQLite hands back naive UTC text)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

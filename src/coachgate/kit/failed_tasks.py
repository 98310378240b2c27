"""Failed task results (django-tasks-db) for the admin console: list, run again, dismiss.

Tasks are wake-ups (the truth is in the domain rows, and the sweeps repair what a lost
task missed), so a failed one is mostly a sign of a bug or bad data: the inbox shows the
exception, and running it again is the same task with the same arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass
class FailedTask:
    id: str
    task: str
    args: list[Any]
    kwargs: dict[str, Any]
    exception: str
    last_line: str
    finished_at: datetime | None


def failed_tasks(*, limit: int = 50) -> list[FailedTask]:
    from django_tasks_db.models import DBTaskResult

    rows = (DBTaskResult.objects.failed().order_by("-finished_at")
            .values("id", "task_path", "args_kwargs", "exception_class_path", "traceback",
                    "finished_at")[:limit])
    result = []
    for r in rows:
        lines = [line for line in (r["traceback"] or "").strip().splitlines() if line.strip()]
        ak = r["args_kwargs"] or {}
        result.append(FailedTask(str(r["id"]), r["task_path"], list(ak.get("args", [])),
                                 dict(ak.get("kwargs", {})), r["exception_class_path"],
                                 lines[-1] if lines else "", r["finished_at"]))
    return result


def retry_task(task_id: str) -> bool:
    """Enqueue the failed task again with its arguments and drop the failed result.
    False when there is no such failed result (already retried or dismissed)."""
    from django_tasks_db.models import DBTaskResult

    row = DBTaskResult.objects.failed().filter(pk=task_id).first()
    if row is None:
        return False
    ak = row.args_kwargs or {}
    row.task.enqueue(*ak.get("args", []), **ak.get("kwargs", {}))
    row.delete()
    return True


def dismiss_task(task_id: str) -> bool:
    """Forget a failed result (nothing to run again: the sweep repaired it, or it is moot)."""
    from django_tasks_db.models import DBTaskResult

    deleted, _ = DBTaskResult.objects.failed().filter(pk=task_id).delete()
    return bool(deleted)

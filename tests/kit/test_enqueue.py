"""kit.enqueue: task rows written with the transaction that needs them, in one INSERT."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext, override_settings
from django_tasks_db.models import DBTaskResult

from coachgate.access.tasks import converge_session
from coachgate.billing.tasks import run_due
from coachgate.kit import due, enqueue

pytestmark = pytest.mark.django_db
AT = datetime(2031, 3, 3, 9, 0, 0, 200_000, tzinfo=UTC)


def rows() -> list[tuple[str, object, object]]:
    return sorted((r.task_path, r.run_after, r.args_kwargs["args"])
                  for r in DBTaskResult.objects.all())


def test_outside_a_batch_tasks_are_enqueued_when_the_transaction_commits(
        django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        enqueue.enqueue(converge_session, 7, run_after=AT)
        enqueue.wake(run_due, AT)
        assert not DBTaskResult.objects.exists()  # not before the commit
    assert len(callbacks) == 2
    assert rows() == sorted([
        ("coachgate.access.tasks.converge_session", AT, [7]),
        ("coachgate.billing.tasks.run_due", due.wake_time(AT), [])])


def test_a_batch_writes_its_tasks_in_one_insert_inside_the_transaction(
        django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks, \
            CaptureQueriesContext(connection) as q, enqueue.batch():
        for pk in (1, 2, 3):
            enqueue.enqueue(converge_session, pk, run_after=AT + timedelta(minutes=pk))
        enqueue.wake(run_due, AT)
        enqueue.wake(run_due, AT + timedelta(milliseconds=100))  # the same grain: once
        assert not DBTaskResult.objects.exists()  # collected until the block ends
    inserts = [x for x in q.captured_queries
               if x["sql"].startswith('INSERT INTO "django_tasks_database_dbtaskresult"')]
    assert len(inserts) == 1
    assert not callbacks  # nothing left for after the commit
    assert [r[2] for r in rows()] == [[1], [2], [3], []]
    wake = DBTaskResult.objects.get(task_path="coachgate.billing.tasks.run_due")
    assert wake.run_after == due.wake_time(AT) and wake.status == "READY"


def test_a_wake_up_already_waiting_is_not_written_again_but_one_that_ran_is():
    with transaction.atomic(), enqueue.batch():
        enqueue.wake(run_due, AT)
    assert DBTaskResult.objects.count() == 1
    with transaction.atomic(), enqueue.batch():
        enqueue.wake(run_due, AT)
        enqueue.wake(run_due, AT + timedelta(hours=1))
    assert DBTaskResult.objects.count() == 2
    DBTaskResult.objects.update(status="SUCCESSFUL")
    with transaction.atomic(), enqueue.batch():
        enqueue.wake(run_due, AT)
    assert DBTaskResult.objects.filter(status="READY").count() == 1


def test_a_batch_that_raises_writes_nothing(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks, \
            pytest.raises(RuntimeError), enqueue.batch():
        enqueue.enqueue(converge_session, 1)
        enqueue.wake(run_due, AT)
        raise RuntimeError("the caller's work failed")
    assert not callbacks and not DBTaskResult.objects.exists()
    # The next batch starts empty.
    with enqueue.batch():
        enqueue.enqueue(converge_session, 2)
    assert [r[2] for r in rows()] == [[2]]


def test_with_another_task_backend_a_batch_enqueues_on_commit(
        django_capture_on_commit_callbacks):
    dummy = {"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"}}
    with override_settings(TASKS=dummy), \
            django_capture_on_commit_callbacks(execute=False) as callbacks, enqueue.batch():
        enqueue.enqueue(converge_session, 1)
        enqueue.wake(run_due, AT)
    assert len(callbacks) == 2 and not DBTaskResult.objects.exists()


def test_a_batch_inside_a_batch_joins_it():
    with CaptureQueriesContext(connection) as q, enqueue.batch():
        enqueue.enqueue(converge_session, 1)
        with enqueue.batch():
            enqueue.enqueue(converge_session, 2)
        assert not DBTaskResult.objects.exists()
    assert len([x for x in q.captured_queries if x["sql"].startswith("INSERT")]) == 1
    assert [r[2] for r in rows()] == [[1], [2]]

"""kit.due on its own: claiming timer rows with a lease, draining them, recording failures
with backoff, and wake-ups rounded to a grain. The timer rows are billing's ``Payment``
(the TimerRow with the fewest foreign keys: a student), on the real database."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import transaction
from prometheus_client import REGISTRY

from coachgate.billing.models import Payment
from coachgate.billing.tasks import run_due
from coachgate.kit import due
from coachgate.kit.errors import InvalidInput
from tests.factories import make_student

T0 = datetime(2031, 3, 3, 9, tzinfo=UTC)
LEASE = timedelta(seconds=30)


@pytest.fixture
def rows(db):
    """new(due, **fields) -> pk: a timer row due at ``due`` (None: not due at all)."""
    student = make_student()
    count = iter(range(1, 10_000))

    def new(next_due_at: datetime | None, **fields: Any) -> int:
        n = next(count)
        return Payment.objects.create(
            key=f"test:{n}", student=student, gateway="offline", currency="USD",
            amount_minor=100, authorize_at=T0, created_at=T0, next_due_at=next_due_at,
            **fields).pk

    return new


def _row(pk: int) -> Payment:
    return Payment.objects.get(pk=pk)


def _errors(kind: str) -> float:
    return REGISTRY.get_sample_value("coachgate_gate_runs_total",
                                     {"kind": kind, "result": "error"}) or 0.0


# --- claiming ----------------------------------------------------------------------------

def test_claim_due_takes_due_rows_oldest_first_up_to_the_limit_and_leases_them(rows):
    late = rows(T0 - timedelta(minutes=1))
    now_due = rows(T0)  # due exactly now counts
    early = rows(T0 - timedelta(minutes=5))
    rows(T0 + timedelta(seconds=1))  # not yet
    rows(None)  # no timer at all
    assert due.claim_due(Payment, now=T0, owner="w1", lease=LEASE, limit=2) == [early, late]
    for pk in (early, late):
        row = _row(pk)
        assert (row.lease_owner, row.lease_until) == ("w1", T0 + LEASE)
    assert _row(now_due).lease_owner == ""
    # The leased rows are another worker's until the lease ends; the rest is free.
    assert due.claim_due(Payment, now=T0, owner="w2", lease=LEASE, limit=10) == [now_due]
    assert due.claim_due(Payment, now=T0, owner="w3", lease=LEASE, limit=10) == []


def test_an_expired_lease_is_claimed_again(rows):
    pk = rows(T0)
    assert due.claim_due(Payment, now=T0, owner="crashed", lease=LEASE, limit=1) == [pk]
    assert due.claim_due(Payment, now=T0 + LEASE - timedelta(microseconds=1), owner="w2",
                         lease=LEASE, limit=1) == []
    # The lease ends at lease_until: from that instant the row is free.
    assert due.claim_due(Payment, now=T0 + LEASE, owner="w2", lease=LEASE, limit=1) == [pk]
    assert _row(pk).lease_owner == "w2"


def test_claim_due_rows_returns_the_fields_as_they_were_when_claimed(rows):
    pk = rows(T0, attempts=3)
    assert due.claim_due_rows(Payment, now=T0, owner="w", lease=LEASE, limit=5,
                              fields=("attempts", "next_due_at")) == [(pk, 3, T0)]
    assert due.claim_due_rows(Payment, now=T0, owner="w", lease=LEASE, limit=5) == []


def test_claim_one_ignores_the_due_time_but_not_a_live_lease(rows):
    pk = rows(None)  # not due: a direct call claims it anyway
    assert due.claim_one(Payment, pk, now=T0, owner="w1", lease=LEASE) is True
    assert due.claim_one(Payment, pk, now=T0, owner="w2", lease=LEASE) is False
    assert _row(pk).lease_owner == "w1"
    assert due.claim_one(Payment, pk, now=T0 + LEASE, owner="w2", lease=LEASE) is True
    assert due.claim_one(Payment, 999_999, now=T0, owner="w1", lease=LEASE) is False


def test_release_is_the_owners_only(rows):
    pk = rows(T0)
    due.claim_one(Payment, pk, now=T0, owner="w1", lease=LEASE)
    due.release(Payment, pk, owner="w2", next_due_at=None)  # not w2's: nothing changes
    assert (_row(pk).lease_owner, _row(pk).next_due_at) == ("w1", T0)
    due.release(Payment, pk, owner="w1", next_due_at=T0 + timedelta(hours=1))
    row = _row(pk)
    assert (row.lease_owner, row.lease_until, row.next_due_at) == (
        "", None, T0 + timedelta(hours=1))


def test_worker_identity_names_host_process_and_thread_in_64_characters():
    import os

    mine = due.worker_identity()
    assert f":{os.getpid()}:" in mine and len(mine) <= 64
    other: list[str] = []
    thread = threading.Thread(target=lambda: other.append(due.worker_identity()))
    thread.start()
    thread.join()
    assert other[0] != mine and other[0].rsplit(":", 1)[0] == mine.rsplit(":", 1)[0]


# --- backoff and failures ------------------------------------------------------------------

@pytest.mark.parametrize(("attempts", "seconds"), [
    (0, 1), (1, 1), (2, 2), (3, 4), (9, 256), (10, 512),
    # Doubling meets the cap, and stays there however long a row keeps failing.
    (11, 600), (12, 600), (10_000, 600),
])
def test_backoff_doubles_from_one_second_up_to_max_backoff(attempts, seconds):
    assert due.backoff(attempts) == timedelta(seconds=seconds)
    assert timedelta(minutes=10) == due.MAX_BACKOFF


def test_describe_gives_type_message_and_field_within_2000_characters():
    assert due.describe(ValueError("bad")) == "ValueError: bad"
    assert due.describe(InvalidInput("Too long.", details={"field": "title"})) == (
        "InvalidInput: Too long. (field title)")
    assert due.describe(InvalidInput("No field.", details={})) == "InvalidInput: No field."
    assert len(due.describe(RuntimeError("x" * 5000))) == 2000


def test_retry_later_counts_the_attempt_records_why_and_backs_off(rows):
    pk = rows(T0)
    due.claim_one(Payment, pk, now=T0, owner="w", lease=LEASE)
    before = _errors("payment")
    at = due.retry_later(Payment, pk, owner="w", now=T0, exc=RuntimeError("boom"))
    assert at == T0 + timedelta(seconds=1)
    row = _row(pk)
    assert (row.attempts, row.last_error, row.next_due_at, row.lease_owner, row.lease_until) \
        == (1, "RuntimeError: boom", at, "", None)
    assert _errors("payment") == before + 1
    due.claim_one(Payment, pk, now=at, owner="w", lease=LEASE)
    assert due.retry_later(Payment, pk, owner="w", now=at, exc=RuntimeError("again")) == (
        at + timedelta(seconds=2))
    assert _row(pk).attempts == 2


def test_a_late_failure_does_not_overwrite_a_row_another_worker_holds(rows):
    pk = rows(T0)
    due.claim_one(Payment, pk, now=T0, owner="slow", lease=LEASE)
    # The slow worker's lease ran out and another took the row over.
    due.claim_one(Payment, pk, now=T0 + LEASE, owner="fast", lease=LEASE)
    due.retry_later(Payment, pk, owner="slow", now=T0 + LEASE, exc=RuntimeError("late"))
    row = _row(pk)
    assert (row.lease_owner, row.attempts, row.last_error) == ("fast", 0, "")


def test_run_isolated_keeps_an_error_with_its_row_and_never_raises(rows, caplog):
    pk = rows(T0)
    due.claim_one(Payment, pk, now=T0, owner="w", lease=LEASE)

    def broken(key: int) -> bool:
        raise ZeroDivisionError("bad row")

    assert due.run_isolated(Payment, pk, broken, now=T0, owner="w") is False
    row = _row(pk)
    assert (row.attempts, row.last_error, row.next_due_at) == (
        1, "ZeroDivisionError: bad row", T0 + timedelta(seconds=1))
    assert "retrying it later" in caplog.text
    assert due.run_isolated(Payment, pk, lambda key: 1, now=T0, owner="w") is True
    assert due.run_isolated(Payment, pk, lambda key: None, now=T0, owner="w") is False


def test_record_failure_wakes_its_task_on_commit(rows, django_capture_on_commit_callbacks):
    from django_tasks_db.models import DBTaskResult

    pk = rows(T0)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        at = due.record_failure(Payment, pk, owner="", now=T0, exc=RuntimeError("x"),
                                wake_task=run_due)
    assert at == T0 + timedelta(seconds=1) and len(callbacks) == 1
    assert list(DBTaskResult.objects.filter(task_path=run_due.module_path)
                .values_list("run_after", flat=True)) == [at]


def test_record_failure_never_raises_when_even_recording_fails(rows, monkeypatch, caplog):
    def database_away(*args: Any, **kwargs: Any) -> datetime:
        raise RuntimeError("database away")

    monkeypatch.setattr(due, "retry_later", database_away)
    assert due.record_failure(Payment, rows(T0), owner="w", now=T0,
                              exc=ValueError("first")) is None
    assert "could not record the failure" in caplog.text


def test_drain_runs_every_due_row_batch_after_batch_and_counts_the_failures(rows):
    keys = [rows(T0 - timedelta(seconds=i)) for i in range(7)]
    bad = keys[3]
    seen: list[int] = []

    def run_one(pk: int) -> bool:
        seen.append(pk)
        if pk == bad:
            raise RuntimeError("this one")
        due.release(Payment, pk, owner="w", next_due_at=None)
        return True

    assert due.drain(Payment, run_one, now=T0, owner="w", lease=LEASE, batch=3) == (7, 1)
    assert sorted(seen) == sorted(keys)
    assert _row(bad).attempts == 1  # retried later, the others carried on
    assert Payment.objects.filter(attempts=0, next_due_at=None).count() == 6


def test_drain_stops_after_max_batches(rows):
    for i in range(5):
        rows(T0 - timedelta(seconds=i))
    seen: list[int] = []
    assert due.drain(Payment, lambda pk: seen.append(pk) is None, now=T0, owner="w",
                     lease=LEASE, batch=2, max_batches=2) == (4, 0)
    assert len(seen) == 4


def test_drain_of_nothing_due_is_one_empty_claim(rows):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    rows(T0 + timedelta(hours=1))
    with CaptureQueriesContext(connection) as ctx:
        assert due.drain(Payment, lambda pk: True, now=T0, owner="w", lease=LEASE,
                         batch=10) == (0, 0)
    # One SELECT (inside the claim's savepoint here, a transaction in production), no write.
    sql = [q["sql"].lstrip().split()[0].upper() for q in ctx.captured_queries]
    assert sql.count("SELECT") == 1 and "UPDATE" not in sql, ctx.captured_queries


def test_failing_rows_lists_only_rows_waiting_for_a_retry_soonest_first(rows):
    later = rows(T0 + timedelta(minutes=5), attempts=2, last_error="RuntimeError: b")
    sooner = rows(T0 + timedelta(minutes=1), attempts=1, last_error="RuntimeError: a")
    rows(T0, attempts=0)  # never failed
    rows(None, attempts=3, last_error="gave up")  # no retry waiting
    rows(T0, attempts=1, last_error="")  # recovered
    assert due.failing_rows(Payment) == [
        {"id": sooner, "attempts": 1, "retry_at": (T0 + timedelta(minutes=1)).isoformat(),
         "error": "RuntimeError: a"},
        {"id": later, "attempts": 2, "retry_at": (T0 + timedelta(minutes=5)).isoformat(),
         "error": "RuntimeError: b"}]
    assert [r["id"] for r in due.failing_rows(Payment, limit=1)] == [sooner]


# --- isolated sweep steps ------------------------------------------------------------------

def test_isolated_runs_a_step_and_reports_success(rows):
    calls: list[tuple[Any, ...]] = []
    assert due.isolated("k", "a step", lambda *a, **kw: calls.append((a, kw)), 1, x=2) is True
    assert calls == [((1,), {"x": 2})]


def test_isolated_keeps_an_error_in_its_step_counts_it_and_tells_on_error(rows, caplog):
    pk = rows(T0)
    before = _errors("test-step")
    told: list[Exception] = []

    def step() -> None:
        Payment.objects.filter(pk=pk).update(attempts=42)
        raise KeyError("lost")

    with transaction.atomic():  # the caller's transaction survives the failed step
        assert due.isolated("test-step", "the step", step, atomic=True,
                            on_error=told.append) is False
        assert _row(pk).attempts == 0  # atomic: the step's own writes are rolled back
    assert [type(e) for e in told] == [KeyError]
    assert _errors("test-step") == before + 1
    assert "the step failed; the next sweep tries again" in caplog.text


def test_isolated_survives_an_on_error_that_raises(caplog):
    def step() -> None:
        raise ValueError("step")

    def on_error(exc: Exception) -> None:
        raise RuntimeError("on_error too")

    assert due.isolated("test-step", "the step", step, on_error=on_error) is False
    assert "could not record the failure of the step" in caplog.text


# --- wake-ups --------------------------------------------------------------------------

@pytest.mark.parametrize(("at", "woken"), [
    (T0, T0),  # on the grain
    (T0.replace(microsecond=500_000), T0.replace(microsecond=500_000)),
    (T0.replace(microsecond=1), T0.replace(microsecond=500_000)),
    (T0.replace(microsecond=499_999), T0.replace(microsecond=500_000)),
    (T0.replace(microsecond=500_001), T0 + timedelta(seconds=1)),
    (T0.replace(microsecond=999_999), T0 + timedelta(seconds=1)),
    # Into the next minute, hour and day.
    (datetime(2031, 3, 3, 23, 59, 59, 999_000, tzinfo=UTC), datetime(2031, 3, 4, tzinfo=UTC)),
])
def test_wake_time_rounds_up_to_the_grain(at, woken):
    assert due.wake_time(at) == woken
    assert woken >= at and woken - at < timedelta(milliseconds=due.WAKE_GRAIN_MS)


def _wakeups() -> list[datetime]:
    from django_tasks_db.models import DBTaskResult

    return list(DBTaskResult.objects.filter(task_path=run_due.module_path)
                .order_by("run_after").values_list("run_after", flat=True))


def test_wake_enqueues_once_per_task_and_grain(db):
    due.wake(run_due, T0.replace(microsecond=100_000))
    due.wake(run_due, T0.replace(microsecond=400_000))  # same grain: already waiting
    due.wake(run_due, T0.replace(microsecond=600_000))
    assert _wakeups() == [T0.replace(microsecond=500_000), T0 + timedelta(seconds=1)]


def test_wake_on_commit_wakes_after_commit_and_not_after_rollback(
        db, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        due.wake_on_commit(run_due, None)  # nothing to wake
    assert _wakeups() == []
    with django_capture_on_commit_callbacks(execute=False) as dropped, \
            pytest.raises(RuntimeError), transaction.atomic():
        due.wake_on_commit(run_due, T0)
        raise RuntimeError("rolled back")
    assert dropped == [] and _wakeups() == []
    with django_capture_on_commit_callbacks(execute=True):
        due.wake_on_commit(run_due, T0)
    assert _wakeups() == [T0]

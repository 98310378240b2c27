"""The outbox by email, against a real SMTP server on localhost."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from coachgate.notify import rules, services
from coachgate.notify.models import Notification, Status
from tests.factories import make_student

NOW = datetime(2031, 3, 1, 12, 0, tzinfo=UTC)
BOOKED = {"session_id": 7, "offer_title": "Chess openings", "coach_name": "Magnus",
          "starts_at": "2031-03-03T14:00:00+00:00", "ends_at": "2031-03-03T15:00:00+00:00"}


def _email(user, key: str = "booked:1", template: str = "booking_confirmed",
           context: dict | None = None, now: datetime = NOW) -> Notification:
    [row] = services.notify(user, template, context or BOOKED, key=key, channels=("email",),
                            now=now)
    return row


def test_email_is_rendered_in_the_recipients_zone_and_sent_once(db, smtp, dummy_tasks):
    student = make_student(tz="Europe/Paris")
    row = _email(student)
    done = services.deliver(row.pk, now=NOW)
    assert done is not None and done.status == Status.SENT and done.sent_at == NOW
    assert done.attempts == 1
    [msg] = smtp.messages
    assert msg["To"] == student.email
    assert msg["Subject"] == (
        "Booked: Chess openings on Monday 3 March 2031, 15:00 (Europe/Paris)")
    body = msg.get_payload(decode=True).decode()
    assert "with Magnus is booked for Monday 3 March 2031, 15:00 (Europe/Paris) until 16:00" \
        in body
    assert "/sessions/" in body and "{{" not in body and "&quot;" not in body
    assert msg["Message-ID"].startswith(f"<notification.{row.pk}.")
    # A second delivery (a duplicate task) finds nothing to claim.
    assert services.deliver(row.pk, now=NOW + timedelta(minutes=1)) is None
    assert len(smtp.messages) == 1


def test_the_same_key_twice_creates_and_sends_one_message(
        db, smtp, dummy_tasks, django_capture_on_commit_callbacks):
    student = make_student()
    with django_capture_on_commit_callbacks(execute=True):
        first = services.notify(student, "booking_confirmed", BOOKED, key="booked:9",
                                now=NOW)
        again = services.notify(student, "booking_confirmed", BOOKED, key="booked:9",
                                now=NOW)
    assert [r.pk for r in first] == [r.pk for r in again]
    assert Notification.objects.count() == 2  # one email, one Discord DM row
    # Only the two rows created by the first call woke a task.
    assert sorted(r.args[0] for r in dummy_tasks.results) == sorted(r.pk for r in first)
    for row in first:
        services.deliver(row.pk, now=NOW)
        services.deliver(row.pk, now=NOW)
    assert len(smtp.messages) == 1
    statuses = dict(Notification.objects.values_list("channel", "status"))
    assert statuses == {"email": "sent", "discord_dm": "skipped"}  # no Discord link


def test_a_rolled_back_caller_leaves_no_row_and_wakes_nothing(
        db, dummy_tasks, django_capture_on_commit_callbacks):
    from django.db import transaction

    student = make_student()
    with (django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError),
          transaction.atomic()):
        _email(student)
        raise RuntimeError("the booking failed")
    assert not Notification.objects.exists() and dummy_tasks.results == []


def test_smtp_down_backs_off_then_delivers_when_it_is_back(db, smtp, dummy_tasks):
    student = make_student()
    row = _email(student)
    smtp.stop()
    done = services.deliver(row.pk, now=NOW)
    assert done is not None and done.status == Status.PENDING and done.attempts == 1
    assert done.next_attempt_at == NOW + timedelta(seconds=30)
    assert "Connection" in done.last_error or "refused" in done.last_error
    # Not due yet: a stray wake-up does nothing.
    assert services.deliver(row.pk, now=NOW + timedelta(seconds=10)) is None
    done = services.deliver(row.pk, now=NOW + timedelta(seconds=31))
    assert done is not None and done.attempts == 2
    assert done.next_attempt_at == NOW + timedelta(seconds=31) + timedelta(minutes=2)
    smtp.start()
    later = NOW + timedelta(minutes=5)
    done = services.deliver(row.pk, now=later)
    assert done is not None and done.status == Status.SENT and done.attempts == 3
    assert done.last_error == "" and len(smtp.messages) == 1


def test_attempts_are_exhausted_after_six_tries(db, smtp, dummy_tasks):
    student = make_student()
    row = _email(student)
    smtp.stop()
    when = NOW
    for attempt in range(1, rules.MAX_ATTEMPTS + 1):
        done = services.deliver(row.pk, now=when)
        assert done is not None and done.attempts == attempt
        if attempt < rules.MAX_ATTEMPTS:
            assert done.status == Status.PENDING
            when = done.next_attempt_at
    assert done.status == Status.FAILED and "gave up after 6 attempts" in done.last_error
    smtp.start()
    assert services.deliver(row.pk, now=when + timedelta(days=1)) is None
    assert smtp.messages == []
    # An admin's retry sends it.
    assert services.retry_failed([row.pk], now=when) == 1
    assert services.deliver(row.pk, now=when).status == Status.SENT
    assert len(smtp.messages) == 1


def test_a_permanent_refusal_fails_without_retrying(db, smtp, dummy_tasks):
    async def refuse(server, session, envelope, address, rcpt_options):
        return "550 no such mailbox"

    smtp.inbox.handle_RCPT = refuse  # type: ignore[attr-defined]
    smtp.stop()
    smtp.start()
    row = _email(make_student())
    done = services.deliver(row.pk, now=NOW)
    assert done is not None and done.status == Status.FAILED and "550" in done.last_error
    assert done.attempts == 1


def test_a_user_without_email_is_skipped(db, smtp, dummy_tasks):
    student = make_student()
    type(student).objects.filter(pk=student.pk).update(email="")
    student.refresh_from_db()
    row = _email(student)
    done = services.deliver(row.pk, now=NOW)
    assert done is not None and done.status == Status.SKIPPED and smtp.messages == []


def test_stuck_sending_is_abandoned_by_the_sweep_and_never_resent(db, smtp, dummy_tasks,
                                                                  django_capture_on_commit_callbacks):
    student = make_student()
    stuck = _email(student, key="stuck")
    lost = _email(student, key="lost")
    fresh = _email(student, key="fresh", now=NOW + timedelta(minutes=9))
    # A worker claimed `stuck` and died; `lost`'s wake-up was dropped.
    Notification.objects.filter(pk=stuck.pk).update(
        status=Status.SENDING, attempts=1, claimed_at=NOW - timedelta(minutes=6))
    dummy_tasks.clear()
    with django_capture_on_commit_callbacks(execute=True):
        touched = services.sweep_outbox(now=NOW + timedelta(minutes=10))
    assert touched == 2
    stuck.refresh_from_db()
    assert stuck.status == Status.ABANDONED and "not resent" in stuck.last_error
    assert [r.args[0] for r in dummy_tasks.results] == [lost.pk]  # `fresh` is not late
    assert services.deliver(stuck.pk, now=NOW + timedelta(minutes=11)) is None
    assert services.deliver(lost.pk, now=NOW + timedelta(minutes=11)).status == Status.SENT
    assert fresh.pk and len(smtp.messages) == 1
    # A recent claim is left alone.
    Notification.objects.filter(pk=fresh.pk).update(status=Status.SENDING,
                                                    claimed_at=NOW + timedelta(minutes=9))
    assert services.sweep_outbox(now=NOW + timedelta(minutes=10)) == 0


def test_unknown_template_or_channel_is_a_programming_error(db):
    student = make_student()
    with pytest.raises(ValueError, match="template"):
        services.notify(student, "no_such_template", {}, key="k", now=NOW)
    with pytest.raises(ValueError, match="template"):
        services.notify(student, "../web", {}, key="k", now=NOW)
    with pytest.raises(ValueError, match="channel"):
        services.notify(student, "booking_confirmed", {}, key="k", channels=("sms",), now=NOW)
    with pytest.raises(TypeError):
        services.notify(student, "booking_confirmed", {"when": NOW}, key="k", now=NOW)


@pytest.mark.parametrize("template", ["booking_confirmed", "session_reminder", "access_open",
                                      "session_cancelled", "access_problem"])
def test_every_template_renders_in_the_users_zone(db, template):
    student = make_student(tz="Asia/Tokyo")
    ctx = {**BOOKED, "link": "https://discord.com/channels/1/2", "minutes_before": 15,
           "error": "Missing Permissions", "gate": "grant"}
    out = services.render(template, ctx, student)
    assert out.subject and "\n" not in out.subject
    assert "{{" not in out.body and "{%" not in out.body
    if template != "access_problem":
        assert "23:00 (Asia/Tokyo)" in out.subject + out.body
    if template in ("session_reminder", "access_open"):
        assert "https://discord.com/channels/1/2" in out.body
    if template == "access_problem":
        assert "Missing Permissions" in out.body


@pytest.mark.django_db(transaction=True)
def test_two_workers_racing_for_one_row_send_it_exactly_once(smtp, dummy_tasks):
    student = make_student()
    row = _email(student)
    results: list[object] = []
    barrier = threading.Barrier(4)

    def worker() -> None:
        try:
            barrier.wait(timeout=10)
            results.append(services.deliver(row.pk, now=NOW))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    sent = [r for r in results if r is not None]
    assert len(results) == 4 and len(sent) == 1
    assert len(smtp.messages) == 1
    row.refresh_from_db()
    assert row.status == Status.SENT and row.attempts == 1


def test_the_task_is_a_wake_up_that_delivers_on_commit(db, smtp,
                                                       django_capture_on_commit_callbacks):
    from django.test import override_settings

    from coachgate.kit import clock

    immediate = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
    student = make_student()
    with override_settings(TASKS=immediate), django_capture_on_commit_callbacks(execute=True):
        [row] = services.notify(student, "session_cancelled",
                                {**BOOKED, "cancelled_by": "your coach"}, key="cancel:1",
                                channels=("email",), now=clock.now())
    row.refresh_from_db()
    assert row.status == Status.SENT
    [msg] = smtp.messages
    assert msg["Subject"].startswith("Cancelled: Chess openings")
    assert "was cancelled by your coach" in msg.get_payload(decode=True).decode()


@pytest.mark.django_db(transaction=True)
def test_concurrent_notify_calls_with_one_key_make_one_row_per_channel(dummy_tasks):
    from django.db import transaction

    student = make_student()
    barrier = threading.Barrier(4)
    seen: list[list[int]] = []
    errors: list[BaseException] = []

    def caller() -> None:
        try:
            barrier.wait(timeout=10)
            with transaction.atomic():  # as inside a booking's transaction
                rows = services.notify(student, "booking_confirmed", BOOKED,
                                       key="booked:race", now=NOW)
            seen.append(sorted(r.pk for r in rows))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=caller) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert Notification.objects.count() == 2
    assert len(seen) == 4 and all(pks == seen[0] for pks in seen)


def test_send_due_delivers_what_is_due_and_nothing_else(db, smtp, dummy_tasks):
    # The booking confirmations' shared wake-up (notify.tasks.send_due).
    student = make_student()
    first, second = _email(student, key="booked:1"), _email(student, key="booked:2")
    later = _email(student, key="booked:3", now=NOW + timedelta(hours=1))
    assert services.send_due(now=NOW) == 2
    assert {n.pk: n.status for n in Notification.objects.all()} == {
        first.pk: Status.SENT, second.pk: Status.SENT, later.pk: Status.PENDING}
    assert len(smtp.messages) == 2
    assert services.send_due(now=NOW) == 0  # sent rows are not sent again
    assert len(smtp.messages) == 2


def test_send_due_sends_a_batch_per_run_and_wakes_itself_for_the_rest(
        db, smtp, django_capture_on_commit_callbacks):
    from django_tasks_db.models import DBTaskResult

    student = make_student()
    for i in range(services.SEND_DUE_BATCH + 3):
        _email(student, key=f"booked:{i}")
    DBTaskResult.objects.all().delete()  # the rows' own send tasks: not what is tested
    with django_capture_on_commit_callbacks(execute=True):
        assert services.send_due(now=NOW, budget_s=60) == services.SEND_DUE_BATCH
    assert len(smtp.messages) == services.SEND_DUE_BATCH
    assert DBTaskResult.objects.filter(task_path="coachgate.notify.tasks.send_due",
                                       status="READY").count() == 1
    # Out of time after the first message: one per run, the rest left for the next.
    assert services.send_due(now=NOW, budget_s=0) == 1
    assert Notification.objects.filter(status=Status.PENDING).count() == 2
    assert services.send_due(now=NOW, budget_s=60) == 2
    assert not Notification.objects.filter(status=Status.PENDING).exists()

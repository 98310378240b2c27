"""The admin console's pages through Django's test client: the statistics over a chosen
period, the failures inbox and its retries, approvals and the settings page."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.test import Client

from coachgate.access import services as access
from coachgate.access.models import SessionAccess
from coachgate.accounts import services as accounts
from coachgate.accounts.models import CoachApplication, User
from coachgate.billing import services as billing
from coachgate.billing.models import Payment, PaymentStatus
from coachgate.integrations.discord import permissions as perms
from coachgate.notify.models import Notification, Status
from coachgate.scheduling import services as scheduling
from coachgate.scheduling.models import Session
from tests.clients import DiscordEnv
from tests.factories import MONDAY, make_coach, make_offer, make_student

H = timedelta(hours=1)
START = MONDAY + 10 * H
WEEK = "/ops/?start=2031-03-01&end=2031-03-07"


@pytest.fixture
def ops(admin: User) -> Client:
    client = Client()
    client.force_login(admin)
    return client


def book(student: User, offer_id: int, start: datetime, now: datetime, capture: Any
         ) -> Session:
    with capture(execute=True):
        return scheduling.book_session(student, offer_id, start, now=now).session


def chart_data(html: str) -> dict[str, Any]:
    m = re.search(r'<script id="ops-chart-data" type="application/json">(.*?)</script>', html,
                  re.S)
    assert m, "the chart data is on the page"
    data: dict[str, Any] = json.loads(m.group(1))
    return data


# --- statistics ---------------------------------------------------------------------------


def test_statistics_show_a_settled_session_in_charts_and_tables(
        ops: Client, admin: User, now: datetime, django_capture_on_commit_callbacks: Any
) -> None:
    coach, student = make_coach(admin=admin), make_student()
    offer = make_offer(coach)
    session = book(student, offer.pk, START, now, django_capture_on_commit_callbacks)
    billing.settle_session(session.pk, now=session.ends_at)  # completed: 50.00 USD
    r = ops.get(WEEK)
    assert r.status_code == 200
    html = r.content.decode()
    data = chart_data(html)
    assert data["sessions"]["labels"][2] == "2031-03-03"
    series = {s["label"]: s["data"] for s in data["sessions"]["series"]}
    assert series["Booked"] == [0, 0, 1, 0, 0, 0, 0] == series["Completed"]
    money = {s["label"]: s["data"] for s in data["money"]["series"]}
    assert data["money"]["labels"] == ["USD"]
    assert (money["Revenue"], money["Fees"], money["Payouts"]) == ([50.0], [5.0], [45.0])
    assert data["hours"]["labels"] == ["Coach"]
    # The same numbers in the tables; the charts are drawn by the static script.
    assert ('<td class="ops-num">50.00 USD</td><td class="ops-num">5.00 USD</td>'
            '<td class="ops-num">45.00 USD</td>') in html
    assert 'src="/static/web/ops.js"' in html and "chart.umd.min.js" in html
    assert "<script>" not in html  # no inline script without the nonce
    assert 'aria-current="page">Statistics' in html and 'href="/admin/"' in html


def test_presets_and_refused_dates(ops: Client) -> None:
    r = ops.get("/ops/?days=7")
    assert r.status_code == 200 and 'aria-current="true">Last 7 days' in r.content.decode()
    assert len(chart_data(r.content.decode())["sessions"]["labels"]) == 7
    r = ops.get("/ops/?start=2031-03-09&end=2031-03-01")
    html = r.content.decode()
    assert r.status_code == 200 and "must end on or after its first day" in html
    assert len(chart_data(html)["sessions"]["labels"]) == 30  # the default period instead
    r = ops.get("/ops/?start=not-a-day")
    assert r.status_code == 200 and "Enter a valid date" in r.content.decode()
    r = ops.get("/ops/?start=2020-01-01&end=2031-01-01")
    assert r.status_code == 200 and "at most 366 days" in r.content.decode()


def test_an_empty_period_says_so(ops: Client) -> None:
    html = ops.get(WEEK).content.decode()
    assert "No sessions start in this period." in html
    assert "Nothing was settled in this period." in html
    assert "No access gate fell due in this period." in html


# --- failures inbox -----------------------------------------------------------------------


def test_inbox_empty(ops: Client) -> None:
    assert "Nothing needs you." in ops.get("/ops/failures/").content.decode()


def test_a_discord_permission_error_is_explained_and_cleared_by_a_retry(
        ops: Client, admin: User, now: datetime, discord: DiscordEnv,
        django_capture_on_commit_callbacks: Any) -> None:
    coach, student = make_coach(admin=admin), make_student()
    discord.link(coach, now=now)
    discord.link(student, now=now)
    offer = make_offer(coach, delivery="discord_voice")
    session = book(student, offer.pk, START, now, django_capture_on_commit_callbacks)
    discord.emu.set_bot_permissions(discord.guild_id, perms.VIEW_CHANNEL | perms.CONNECT)
    assert access.converge(session.pk, now=START - 2 * H).outcome == "action"
    html = ops.get("/ops/failures/").content.decode()
    assert "The bot lacks a Discord permission it needs" in html
    assert f'action="/ops/failures/access/{session.pk}/retry"' in html
    # Retrying before the permission is given: still failing, and it says so.
    with time_machine.travel(START - 2 * H + timedelta(minutes=1), tick=False):
        ops.force_login(admin)  # a session made now (the one from today has expired by then)
        r = ops.post(f"/ops/failures/access/{session.pk}/retry", follow=True)
        assert "still fails" in r.content.decode()
        discord.emu.set_bot_permissions(discord.guild_id, perms.ADMINISTRATOR)
        r = ops.post(f"/ops/failures/access/{session.pk}/retry", follow=True)
    html = r.content.decode()
    assert "access works again" in html and "Nothing needs you." in html
    assert SessionAccess.objects.get(pk=session.pk).error_kind == ""


def test_a_failed_notification_is_retried(ops: Client, now: datetime) -> None:
    user = make_student()
    n = Notification.objects.create(key="k", channel="email", user=user, template="booking_made",
                                    status=Status.FAILED, attempts=5, next_attempt_at=now,
                                    created_at=now, last_error="SMTP 550: mailbox unavailable")
    html = ops.get("/ops/failures/").content.decode()
    assert "SMTP 550: mailbox unavailable" in html and "after 5 attempts" in html
    r = ops.post(f"/ops/failures/notifications/{n.pk}/retry", follow=True)
    assert "queued to be sent again" in r.content.decode()
    n.refresh_from_db()
    assert (n.status, n.attempts, n.last_error) == (Status.PENDING, 0, "")
    assert "Nothing needs you." in r.content.decode()


def _failed_task() -> str:
    from django_tasks_db.models import DBTaskResult

    from coachgate.notify.tasks import send_due

    result = send_due.enqueue()
    DBTaskResult.objects.filter(pk=result.id).update(
        status="FAILED", finished_at=MONDAY, exception_class_path="builtins.ValueError",
        traceback="Traceback (most recent call last):\n  ...\nValueError: boom")
    return str(result.id)


def test_a_failed_task_is_run_again_or_dismissed(ops: Client) -> None:
    from django_tasks_db.models import DBTaskResult

    first = _failed_task()
    html = ops.get("/ops/failures/").content.decode()
    assert "send_due" in html and "ValueError: boom" in html and "It raised ValueError" in html
    r = ops.post(f"/ops/failures/tasks/{first}/retry", follow=True)
    assert "queued to run again" in r.content.decode()
    assert not DBTaskResult.objects.filter(pk=first).exists()
    assert DBTaskResult.objects.filter(task_path__endswith="send_due", status="READY").exists()
    second = _failed_task()
    r = ops.post(f"/ops/failures/tasks/{second}/dismiss", follow=True)
    assert "was dismissed" in r.content.decode()
    assert not DBTaskResult.objects.failed().exists()


def test_a_payment_the_student_must_act_on(ops: Client, admin: User, now: datetime,
                                           django_capture_on_commit_callbacks: Any) -> None:
    coach, student = make_coach(admin=admin), make_student()
    session = book(student, make_offer(coach).pk, START, now,
                   django_capture_on_commit_callbacks)
    payment = Payment.objects.get()
    Payment.objects.filter(pk=payment.pk).update(status=PaymentStatus.ACTION_NEEDED,
                                                 decline_code="card_declined")
    html = ops.get("/ops/failures/").content.decode()
    assert "The student must act: the card was declined" in html
    assert f'action="/ops/failures/payments/{payment.pk}/retry"' in html
    r = ops.post(f"/ops/failures/payments/{payment.pk}/retry", follow=True)
    assert r.status_code == 200 and f"Payment {payment.pk}" in r.content.decode()
    assert session.pk


# --- approvals ----------------------------------------------------------------------------


def test_approve_and_reject_with_a_reason(ops: Client, admin: User) -> None:
    ada, bob = make_student("ada@test.example"), make_student("bob@test.example")
    a = accounts.apply_as_coach(ada, display_name="Ada", bio="Chess coach", specialties=["chess"],
                                timezone="Europe/Paris")
    b = accounts.apply_as_coach(bob, display_name="Bob", bio="", specialties=[], timezone="UTC")
    html = ops.get("/ops/approvals/").content.decode()
    assert "Chess coach" in html and "Approve Ada" in html and "Reject Bob" in html
    r = ops.post(f"/ops/approvals/{a.pk}/approve", follow=True)
    assert "Ada is now a coach." in r.content.decode()
    ada.refresh_from_db()
    assert ada.role == "coach"
    r = ops.post(f"/ops/approvals/{b.pk}/reject", {"reason": "  "}, follow=True)
    assert "Give a reason" in r.content.decode()
    assert CoachApplication.objects.get(pk=b.pk).status == "pending"
    r = ops.post(f"/ops/approvals/{b.pk}/reject", {"reason": "Tell us more about you."},
                 follow=True)
    html = r.content.decode()
    assert "Bob&#x27;s application was rejected." in html
    assert "Tell us more about you." in html and "No application is waiting." in html
    assert CoachApplication.objects.get(pk=b.pk).decision_note == "Tell us more about you."
    r = ops.post(f"/ops/approvals/{b.pk}/approve", follow=True)
    assert "already rejected" in r.content.decode()


# --- settings -----------------------------------------------------------------------------


def test_settings_are_shown_and_the_check_runs_only_on_request(
        ops: Client, discord: DiscordEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    from coachgate.web.ops import platform

    calls: list[int] = []
    real = platform.check_guild
    monkeypatch.setattr(platform, "check_guild", lambda: calls.append(1) or real())
    html = ops.get("/ops/settings/").content.decode()
    assert calls == [] and "Run the bot check" in html
    assert "10% of each charged session" in html and "USD" in html and discord.guild_id in html
    assert discord.emu.bot_token not in html
    html = ops.post("/ops/settings/check").content.decode()
    assert calls == [1]
    assert "All good" in html and "bot has every permission it needs" in html


def test_the_check_names_what_the_bot_lacks(ops: Client, discord: DiscordEnv) -> None:
    discord.emu.set_bot_permissions(discord.guild_id, perms.VIEW_CHANNEL | perms.CONNECT)
    html = ops.post("/ops/settings/check").content.decode()
    assert "Problems found" in html and "MANAGE_CHANNELS" in html

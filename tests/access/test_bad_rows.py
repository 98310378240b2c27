"""One bad row stops nothing (issue 9, item 2).

Policies stored before validation existed are written straight into the database here
(bypassing every check), on the offer and on the session's own snapshot, so the test hits
whatever the readers read. Each sweep and gate must run every other row, record the bad
row's error where admins see it, and retry it with a growing delay.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.core import mail
from prometheus_client import REGISTRY

from coachgate import cli
from coachgate.access import services
from coachgate.access.models import SessionAccess
from coachgate.accounts.models import User
from coachgate.billing.models import Payment, SessionBilling
from coachgate.catalog.models import Offer
from coachgate.kit import clock
from coachgate.notify.models import Notification, Status
from coachgate.notify.rules import LOST_AFTER
from coachgate.scheduling import services as scheduling
from coachgate.scheduling.models import Session
from tests.clients import Api, DiscordEnv
from tests.factories import MONDAY, make_coach, make_offer, make_student, token_for

START = MONDAY + timedelta(hours=10)
H = timedelta(hours=1)
S = timedelta(seconds=1)
GRANT = START - 2 * H  # the default policy grants two hours ahead

# What an old database may hold: a duration that overflows the date arithmetic, one that
# is not a number, a key that does not exist.
BAD_ACCESS = [{"revoke_after_s": 1e30}, {"grant_before_s": "Infinity"}, {"bogus": 1}]
BAD_MONEY = {"no_show_wait_ratio": "not a ratio"}


def corrupt(session: Session, **policies: Any) -> None:
    """Store ``policies`` (access_policy=..., money_policy=...) on the session's offer and,
    where the session has its own snapshot column, on the session: no validation runs."""
    Offer.objects.filter(pk=session.offer_id).update(**policies)
    columns = {f.name for f in Session._meta.concrete_fields}
    own = {k: v for k, v in policies.items() if k in columns}
    if own:
        Session.objects.filter(pk=session.pk).update(**own)


def book(student: User, offer: Offer, start: datetime, now: datetime) -> Session:
    return scheduling.book_session(student, offer.pk, start, now=now).session


@pytest.fixture
def world(db: None, discord: DiscordEnv, now: datetime) -> dict[str, Any]:
    """Three Discord sessions at the same time with three coaches: one stays good."""
    out: dict[str, Any] = {"students": [], "sessions": []}
    for i in range(3):
        coach = make_coach(f"coach{i}@test.example")
        student = make_student(f"student{i}@test.example")
        discord.link(coach, now=now)
        discord.link(student, now=now)
        offer = make_offer(coach, delivery="discord_voice")
        out["students"].append(student)
        out["sessions"].append(book(student, offer, START, now))
    # As sessions booked before their access rows were written with the booking: the
    # sweep makes each row (and meets the bad policies there).
    SessionAccess.objects.all().delete()
    return out


def row(session: Session) -> SessionAccess:
    return SessionAccess.objects.get(pk=session.pk)


def _names_the_policy(error: str) -> bool:
    """An admin can tell what is wrong: the policy field, or the overflow it causes (before
    the parser bounds durations)."""
    return "access_policy" in error or "OverflowError" in error


@pytest.mark.parametrize("bad_policy", BAD_ACCESS)
def test_the_sweep_runs_every_other_session_and_retries_the_bad_one(
        world: dict[str, Any], discord: DiscordEnv, now: datetime,
        bad_policy: dict[str, Any]) -> None:
    good, bad_row, bad_new = world["sessions"]
    for s in (good, bad_row):
        services.converge(s.pk, now=now)  # rows made while the policies were fine
    corrupt(bad_row, access_policy=bad_policy)
    corrupt(bad_new, access_policy=bad_policy)  # never had a row: the sweep makes it
    assert not SessionAccess.objects.filter(pk=bad_new.pk).exists()

    report = services.sweep(now=GRANT)

    assert row(good).phase == "granted"
    assert [c["name"].split("-")[1] for c in discord.session_channels()] == [str(good.pk)]
    assert report.errors == 2
    assert sorted(f["session_id"] for f in report.failures) == sorted([bad_row.pk, bad_new.pk])
    delays = {s.pk: [] for s in (bad_row, bad_new)}
    at = GRANT
    for _ in range(4):  # each retry waits twice as long as the one before
        for s in (bad_row, bad_new):
            r = row(s)
            assert r.error_kind == "data" and r.phase == "none" and r.lease_owner == ""
            assert _names_the_policy(r.last_error), r.last_error
            delays[s.pk].append((r.next_due_at - at).total_seconds())
        at = min(row(s).next_due_at for s in (bad_row, bad_new))
        services.sweep(now=at)
    for s in (bad_row, bad_new):
        assert delays[s.pk] == [1, 2, 4, 8], delays
        assert row(s).attempts == 5
        # The admins are told once (the error is the same on every retry).
        told = Notification.objects.filter(template="access_problem",
                                           context__session_id=s.pk)
        assert told.count() == User.objects.filter(role="admin").count() >= 1
    assert row(good).phase == "granted" and row(good).attempts == 0

    # An admin repairs the data: the next retry converges and clears the error.
    corrupt(bad_row, access_policy={})
    corrupt(bad_new, access_policy={})
    services.sweep(now=max(row(s).next_due_at for s in (bad_row, bad_new)))
    for s in (bad_row, bad_new):
        r = row(s)
        assert (r.phase, r.error_kind, r.last_error, r.attempts) == ("granted", "", "", 0)
        assert (r.window_start, r.window_end) == (GRANT, s.ends_at + H)
        assert r.mode == "member_overwrites"
    assert len(discord.session_channels()) == 3


def test_access_never_outlives_a_session_whose_policy_went_bad(
        world: dict[str, Any], discord: DiscordEnv, now: datetime) -> None:
    session = world["sessions"][0]
    services.converge(session.pk, now=GRANT)
    assert row(session).phase == "granted" and discord.session_channels()
    assert len(discord.session_channels()) == 1
    corrupt(session, access_policy=BAD_ACCESS[0])
    services.sweep(now=START)  # still running: nothing is taken away, the error shows
    assert row(session).phase == "granted" and row(session).error_kind == "data"
    assert row(session).next_due_at <= session.ends_at  # retried by the end at the latest
    services.sweep(now=session.ends_at)
    r = row(session)
    assert (r.phase, r.channel_id, r.next_due_at) == ("revoked", "", None)
    assert r.error_kind == "data" and r.last_error  # still shown to admins
    assert not [c for c in discord.session_channels()
                if c["name"].startswith(f"cg-{session.pk}-")]


def test_a_converge_call_on_a_bad_row_records_it_instead_of_raising(
        world: dict[str, Any], now: datetime) -> None:
    session = world["sessions"][1]
    corrupt(session, access_policy=BAD_ACCESS[1])
    result = services.converge(session.pk, now=GRANT)  # the task's and the admin's call
    assert result.outcome == "error" and "access_policy" in result.error
    again = services.converge(session.pk, now=GRANT + S)
    assert again.outcome == "error" and row(session).attempts == 2


def test_the_worker_sweep_keeps_the_outbox_and_the_other_domains_running(
        world: dict[str, Any], now: datetime,
        django_capture_on_commit_callbacks: Any) -> None:
    from django_tasks_db.models import DBTaskResult

    from coachgate.kit.periodic import sweep_all

    good, bad, _ = world["sessions"]
    services.converge(good.pk, now=now)
    corrupt(bad, access_policy=BAD_ACCESS[0], money_policy=BAD_MONEY)
    student = world["students"][0]
    # A notification whose wake-up was lost: only the outbox sweep sends it.
    lost = Notification.objects.create(
        key="lost:1", channel="email", user=student, template="booking_confirmed",
        context={"session_id": good.pk, "offer_title": "t", "coach_name": "c",
                 "starts_at": START.isoformat(), "ends_at": (START + H).isoformat()},
        status=Status.PENDING, next_attempt_at=GRANT - LOST_AFTER - S, created_at=now)
    # Settlement (its gates are made by the billing sweep: the bookings' events never ran
    # here): the bad session's money policy cannot be read; the good one settles.
    # A payment whose gateway no longer exists raises in its gate, and one that is fine.
    broken, fine = (Payment.objects.create(
        key=f"manual:{name}", student=student, gateway=gateway, currency="USD",
        amount_minor=100, authorize_at=GRANT, next_due_at=GRANT, created_at=now)
        for name, gateway in (("broken", "gone-gateway"), ("fine", "offline")))

    def errors_counted(kind: str) -> float:
        return REGISTRY.get_sample_value(
            "coachgate_gate_runs_total", {"kind": kind, "result": "error"}) or 0.0

    counted = {k: errors_counted(k) for k in ("sessionbilling", "payment")}
    with django_capture_on_commit_callbacks(execute=True):
        report = sweep_all(now=START + 2 * H, failing=True)
    assert {k: errors_counted(k) - v for k, v in counted.items()} == {
        "sessionbilling": 1, "payment": 1}

    assert report["access"]["errors"] >= 1 and "error" not in report["access"]
    assert report["notify"]["touched"] >= 1
    woken = DBTaskResult.objects.filter(task_path__endswith="send_notification")
    assert any(t.args_kwargs["args"] == [lost.pk] for t in woken)
    from coachgate.notify.services import deliver

    assert deliver(lost.pk, now=START + 2 * H).status == Status.SENT
    assert [m.to for m in mail.outbox] == [[student.email]]

    assert report["billing"]["errors"] >= 2  # the bad settlement and the broken payment
    assert SessionBilling.objects.get(session=good).settled_at is not None
    gate = SessionBilling.objects.get(session=bad)
    assert gate.settled_at is None and gate.attempts == 1 and gate.last_error
    assert gate.next_due_at == START + 2 * H + S
    broken.refresh_from_db()
    fine.refresh_from_db()
    assert broken.attempts == 1 and "gone-gateway" in broken.last_error
    assert broken.lease_owner == "" and broken.next_due_at == START + 2 * H + S
    assert fine.status == "authorized"
    failing = report["failing"]
    assert {r["id"] for r in failing["access"]} >= {bad.pk}
    assert {r["id"] for r in failing["settlement"]} == {bad.pk}
    assert {r["id"] for r in failing["payments"]} == {broken.pk}


def test_reconcile_completes_and_reports_the_bad_row(
        world: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    good, bad, _ = world["sessions"]
    corrupt(bad, access_policy=BAD_ACCESS[0])
    # Real time: pull the sessions to now, so their gates are due at once.
    start = clock.now() + timedelta(minutes=30)
    Session.objects.filter(pk__in=[good.pk, bad.pk]).update(starts_at=start,
                                                             ends_at=start + H)
    assert cli.main(["reconcile"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {f["session_id"] for f in out["access"]["failures"]} == {bad.pk}
    assert out["access"]["errors"] == 1
    assert [r["id"] for r in out["failing"]["access"]] == [bad.pk]
    assert _names_the_policy(out["failing"]["access"][0]["error"])
    assert {"notify", "billing", "packs"} <= set(out)
    assert row(good).phase == "granted"


def test_system_sweep_answers_and_reports_the_bad_row(
        world: dict[str, Any], settings: Any) -> None:
    settings.COACHGATE = {**settings.COACHGATE, "CRON_SECRET": "s3cret"}
    good, bad, _ = world["sessions"]
    corrupt(bad, access_policy=BAD_ACCESS[1])
    start = clock.now() + timedelta(minutes=30)
    Session.objects.filter(pk__in=[good.pk, bad.pk]).update(starts_at=start,
                                                             ends_at=start + H)
    r = Api("s3cret").post("/system/sweep")
    assert r.status_code == 200, r.content
    body = r.json_body
    assert body["errors"] == 1 and [f["session_id"] for f in body["failures"]] == [bad.pk]
    assert [f["id"] for f in body["failing"]["access"]] == [bad.pk]
    assert "billing" in body and "notify" in body
    assert row(good).phase == "granted"


def test_the_access_api_answers_for_a_session_with_a_bad_policy(
        world: dict[str, Any], admin: User, now: datetime) -> None:
    good, bad, _ = world["sessions"]
    services.converge(bad.pk, now=now)
    corrupt(bad, access_policy=BAD_ACCESS[0])
    student = Api(token_for(world["students"][1]))
    r = student.get(f"/sessions/{bad.pk}/access")
    assert r.status_code == 200, r.content
    body = r.json_body
    assert body["available"] is False and body["problem"]["code"] == "access_unavailable"
    assert (body["gates"], body["link"], body["join_window_open"]) == ([], None, False)
    assert body["desired_phase"] is None and body["last_error"] is None  # not for students
    as_admin = Api(token_for(admin)).get(f"/sessions/{bad.pk}/access").json_body
    assert as_admin["available"] is False and _names_the_policy(as_admin["last_error"])
    ok = Api(token_for(world["students"][0])).get(f"/sessions/{good.pk}/access").json_body
    assert ok["available"] is True and ok["problem"] is None and ok["gates"]
    # The admin's "converge now" on the bad row records the error, never a 500.
    r = Api(token_for(admin)).post(f"/sessions/{bad.pk}/access/converge")
    assert r.status_code == 200, r.content
    assert r.json_body["error_kind"] == "data" and r.json_body["last_error"]


def test_the_sessions_page_answers_with_bad_policies(
        client: Any, world: dict[str, Any], now: datetime) -> None:
    good, bad, _ = world["sessions"]
    student = world["students"][1]
    # The bad session has started (so the page works out its outcome buttons too), and the
    # same student also has a good session.
    started = clock.now() - timedelta(minutes=10)
    Session.objects.filter(pk=bad.pk).update(starts_at=started, ends_at=started + H)
    other = book(student, good.offer, START + 2 * H, now)
    corrupt(bad, access_policy=BAD_ACCESS[2], money_policy=BAD_MONEY)
    client.force_login(student)
    page = client.get("/sessions/")
    assert page.status_code == 200
    assert page.text.count("Access unavailable") == 1
    assert "data-opens" in page.text  # the good session still counts down to its window
    coach = Session.objects.select_related("coach__user").get(pk=bad.pk).coach.user
    client.force_login(coach)
    page = client.get("/sessions/")
    assert page.status_code == 200 and "Access unavailable" in page.text
    assert other.pk != bad.pk


def test_the_admin_shows_the_error(client: Any, world: dict[str, Any], admin: User) -> None:
    _, bad, _ = world["sessions"]
    corrupt(bad, access_policy=BAD_ACCESS[0])
    services.sweep(now=GRANT, drift=False)
    client.force_login(admin)
    listing = client.get("/admin/access/sessionaccess/?error_kind=data")
    assert listing.status_code == 200
    assert "bad data or a bug" in listing.text and _names_the_policy(listing.text)
    page = client.get(f"/admin/access/sessionaccess/{bad.pk}/change/")
    assert page.status_code == 200 and "unavailable" in page.text


def test_the_billing_sweep_runs_past_a_webhook_event_that_raises(
        world: dict[str, Any], now: datetime) -> None:
    from coachgate.billing.models import WebhookEvent
    from coachgate.billing.services import sweep as billing_sweep

    broken = WebhookEvent.objects.create(  # stored, then the processing raises on it
        gateway="stripe", event_id="evt_broken", type="payment_intent.succeeded",
        payload=["not", "an", "object"], received_at=now)
    report = billing_sweep(now=START + 2 * H)  # every session is over: all settle
    assert report.errors == 1 and report.sessions == 3
    assert SessionBilling.objects.filter(settled_at__isnull=False).count() == 3
    broken.refresh_from_db()
    assert broken.status == "received" and "AttributeError" in broken.error

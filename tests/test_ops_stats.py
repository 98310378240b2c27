"""The admin statistics' query functions (scheduling.stats, access.stats,
billing.services.stats) on known data: exact counts, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from coachgate.access import services as access
from coachgate.access import stats as access_stats
from coachgate.access.models import GateRun, SessionAccess
from coachgate.accounts.models import User
from coachgate.billing import services as billing
from coachgate.billing.services import stats as billing_stats
from coachgate.integrations.discord import permissions as perms
from coachgate.scheduling import services as scheduling
from coachgate.scheduling import stats
from coachgate.scheduling.models import Session
from tests.clients import DiscordEnv
from tests.factories import MONDAY, make_admin, make_coach, make_offer, make_student

H = timedelta(hours=1)
UTCZ = ZoneInfo("UTC")


def book(student: User, offer_id: int, start: datetime, now: datetime,
         capture: Any) -> Session:
    with capture(execute=True):
        return scheduling.book_session(student, offer_id, start, now=now).session


@pytest.fixture
def week(db: None, now: datetime, admin: User, django_capture_on_commit_callbacks: Any
         ) -> dict[str, Any]:
    """Two coaches; sessions on Monday (3) and Tuesday (2), one each of every outcome."""
    ada = make_coach("ada@test.example", tz="UTC", admin=admin)
    bob = make_coach("bob@test.example", tz="UTC", admin=admin,
                     rules=[(0, time(9), time(12))])  # Mondays 09-12 only
    offer_a, offer_b = make_offer(ada), make_offer(bob)
    students = [make_student(f"s{i}@test.example") for i in range(5)]
    cap = django_capture_on_commit_callbacks
    sessions = [
        book(students[0], offer_a.pk, MONDAY + 9 * H, now, cap),
        book(students[1], offer_a.pk, MONDAY + 11 * H, now, cap),
        book(students[2], offer_b.pk, MONDAY + 10 * H, now, cap),
        book(students[3], offer_a.pk, MONDAY + 24 * H + 9 * H, now, cap),
        book(students[4], offer_a.pk, MONDAY + 24 * H + 10 * H, now, cap),
    ]
    outcomes = ["completed", "no_show_student", "no_show_coach", "cancelled", "scheduled"]
    for s, status in zip(sessions, outcomes, strict=True):
        Session.objects.filter(pk=s.pk).update(status=status)  # the outcomes, as data
    return {"ada": ada, "bob": bob, "sessions": sessions, "offers": (offer_a, offer_b)}


def test_sessions_by_day_counts_every_status_and_lists_empty_days(week: dict[str, Any]
                                                                  ) -> None:
    days = stats.sessions_by_day(MONDAY - 24 * H, MONDAY + 3 * 24 * H, UTCZ)
    assert [d.day for d in days] == [date(2031, 3, 2), date(2031, 3, 3), date(2031, 3, 4),
                                     date(2031, 3, 5)]
    sunday, monday, tuesday, wednesday = days
    assert (sunday.booked, wednesday.booked) == (0, 0)
    assert monday.booked == 3 and monday.by_status == {
        "completed": 1, "no_show_student": 1, "no_show_coach": 1}
    assert tuesday.booked == 2 and tuesday.by_status == {"cancelled": 1, "scheduled": 1}
    totals = stats.outcome_totals(days)
    assert totals == {"booked": 5, "completed": 1, "no_show_student": 1, "no_show_coach": 1,
                      "early_end_short": 0, "cancelled": 1, "scheduled": 1}


def test_days_follow_the_zone_asked_for(week: dict[str, Any]) -> None:
    # In Tokyo (UTC+9) Monday 09:00, 10:00 and 11:00 UTC are Monday evening, Tuesday's
    # 09:00 and 10:00 UTC Tuesday evening; the period's bounds are Tokyo midnights.
    tokyo = ZoneInfo("Asia/Tokyo")
    start = datetime(2031, 3, 3, tzinfo=tokyo)
    days = stats.sessions_by_day(start, start + 2 * 24 * H, tokyo)
    assert [(d.day, d.booked) for d in days] == [(date(2031, 3, 3), 3), (date(2031, 3, 4), 2)]


def test_hours_by_coach_booked_against_offered(week: dict[str, Any]) -> None:
    # Monday and Tuesday: Ada offers 8 h a day (16 h), Bob 3 h on Monday only. Ada's
    # cancelled Tuesday session is not booked time.
    rows = stats.hours_by_coach(MONDAY, MONDAY + 2 * 24 * H)
    assert [(r.name, r.booked_hours, r.offered_hours) for r in rows] == [
        ("Ada", 3.0, 16.0), ("Bob", 1.0, 3.0)]
    assert stats.hours_by_coach(MONDAY, MONDAY + 2 * 24 * H, limit=1)[0].name == "Ada"


def test_offered_hours_apply_blocked_days_blocked_hours_and_extra_hours(
        week: dict[str, Any]) -> None:
    ada = week["ada"]
    scheduling.add_override(ada, day=date(2031, 3, 3), kind="blocked")  # Monday: 0 h
    scheduling.add_override(ada, day=date(2031, 3, 4), kind="blocked",
                            start=time(9), end=time(11))  # Tuesday: 6 h
    scheduling.add_override(ada, day=date(2031, 3, 4), kind="extra",
                            start=time(18), end=time(19, 30))  # + 1.5 h
    pk = ada.coach_profile.pk
    assert stats.offered_hours([pk], MONDAY, MONDAY + 2 * 24 * H) == {pk: 7.5}


def test_no_sessions_no_rows(db: None) -> None:
    assert stats.hours_by_coach(MONDAY, MONDAY + H) == []
    assert [d.booked for d in stats.sessions_by_day(MONDAY, MONDAY + H, UTCZ)] == [0]


def test_money_by_currency_sums_settlements_of_the_period(
        week: dict[str, Any], now: datetime, django_capture_on_commit_callbacks: Any,
        admin: User) -> None:
    ada = week["ada"]
    eur = make_offer(ada, title="euro", currency="EUR", price_minor=8000)
    student = make_student("euro@test.example")
    s = book(student, eur.pk, MONDAY + 3 * 24 * H + 9 * H, now,
             django_capture_on_commit_callbacks)
    billing.settle_session(s.pk, now=s.ends_at)  # completed: 80.00 EUR, 10 % fee
    for s in week["sessions"][:3]:  # completed, student no-show, coach no-show
        billing.settle_session(s.pk, now=s.ends_at)
    rows = billing_stats.money_by_currency(MONDAY, MONDAY + 7 * 24 * H)
    by = {r.currency: r for r in rows}
    assert sorted(by) == ["EUR", "USD"]
    assert (by["EUR"].settlements, by["EUR"].charged_minor, by["EUR"].fee_minor,
            by["EUR"].payout_minor) == (1, 8000, 800, 7200)
    # USD: completed 50.00, student no-show charged 50 % (25.00), coach no-show nothing.
    assert (by["USD"].settlements, by["USD"].charged_minor, by["USD"].fee_minor,
            by["USD"].payout_minor) == (3, 7500, 750, 6750)
    assert by["USD"].charged_display == "75.00 USD"
    assert billing_stats.money_by_currency(MONDAY + 7 * 24 * H, MONDAY + 8 * 24 * H) == []


def _run(access_id: int, kind: str, due: datetime, late_ms: int, ok: bool = True) -> GateRun:
    return GateRun.objects.create(access_id=access_id, kind=kind, due_at=due,
                                  ran_at=due + timedelta(milliseconds=late_ms),
                                  late_ms=late_ms, ok=ok)


def test_gate_lateness_percentiles_per_kind(week: dict[str, Any], now: datetime) -> None:
    session = week["sessions"][0]
    row = SessionAccess.objects.get(pk=session.pk)
    for i in range(1, 101):  # provision: 1..100 ms, the last 10 failed
        _run(row.pk, "provision", MONDAY + i * timedelta(seconds=1), i, ok=i <= 90)
    _run(row.pk, "revoke", MONDAY + H, 2500)
    _run(row.pk, "revoke", MONDAY + 8 * 24 * H, 9999)  # outside the period
    got = {g.kind: g for g in access_stats.gate_lateness(MONDAY, MONDAY + 7 * 24 * H)}
    assert sorted(got) == ["provision", "revoke"]
    p = got["provision"]
    assert (p.runs, p.ok, p.p50_ms, p.p99_ms, p.max_ms) == (100, 90, 50.0, 99.0, 100.0)
    r = got["revoke"]
    assert (r.runs, r.ok, r.p50_ms, r.p99_ms, r.max_ms) == (1, 1, 2500.0, 2500.0, 2500.0)
    prov = access_stats.provisioning(list(got.values()))
    assert (prov.runs, prov.ok, prov.failed, prov.rate) == (100, 90, 10, 0.9)
    assert access_stats.provisioning([]).rate is None


def test_the_worker_records_each_gate_run_with_its_lateness(
        db: None, discord: DiscordEnv, now: datetime, admin: User,
        django_capture_on_commit_callbacks: Any) -> None:
    coach, student = make_coach(admin=admin), make_student()
    discord.link(coach, now=now)
    discord.link(student, now=now)
    offer = make_offer(coach, delivery="discord_voice")
    start = MONDAY + 10 * H
    session = book(student, offer.pk, start, now, django_capture_on_commit_callbacks)
    gates = [g for g in access.gates_of(session) if g.kind != "join_window"]
    times = sorted({g.at for g in gates})

    def kind_at(t: datetime) -> str:  # the last gate at a time names its run
        return [g.kind for g in gates if g.at <= t][-1]

    provision = next(g.at for g in gates if g.kind == "provision")
    assert times[0] < provision and kind_at(provision) == "grant"  # together by default
    access.converge(session.pk, now=times[0] + timedelta(milliseconds=40))
    # The bot may not make channels: the provision (and grant) run fails, 1.5 s late.
    discord.emu.set_bot_permissions(discord.guild_id, perms.VIEW_CHANNEL | perms.CONNECT)
    access.converge(session.pk, now=provision + timedelta(milliseconds=1500))
    runs = list(GateRun.objects.order_by("pk").values_list("kind", "due_at", "late_ms", "ok"))
    assert runs == [(kind_at(times[0]), times[0], 40, True), ("grant", provision, 1500, False)]
    # A retry is not a gate's run: nothing new is recorded for it.
    discord.emu.set_bot_permissions(discord.guild_id, perms.ADMINISTRATOR)
    assert access.converge(session.pk, now=provision + timedelta(seconds=5)).outcome == "ok"
    assert GateRun.objects.count() == 2
    later = next(t for t in times if t > provision)
    access.converge(session.pk, now=later + timedelta(milliseconds=20))
    last = GateRun.objects.order_by("-pk").first()
    assert last is not None and (last.kind, last.late_ms, last.ok) == (kind_at(later), 20, True)
    got = {g.kind: g for g in access_stats.gate_lateness(start - 48 * H, start + 48 * H)}
    assert (got["grant"].runs, got["grant"].ok, got["grant"].p50_ms) == (1, 0, 1500.0)
    assert access_stats.provisioning(list(got.values())).rate == 0.0


def test_lateness_above_a_second_keeps_three_significant_digits(week: dict[str, Any]) -> None:
    row = SessionAccess.objects.get(pk=week["sessions"][0].pk)
    for i, ms in enumerate((1234, 56_789, 2_345_678)):
        _run(row.pk, "revoke", MONDAY + i * H, ms)
    (g,) = access_stats.gate_lateness(MONDAY, MONDAY + 24 * H)
    assert (g.p50_ms, g.p99_ms, g.max_ms) == (56_700.0, 2_340_000.0, 2_345_678.0)
    assert access_stats._percentile([], 0, 0.5) == 0.0


def test_the_sweep_prunes_gate_runs_older_than_the_kept_period(db: None) -> None:
    from coachgate.access.services import GATE_RUNS_KEPT, prune_gate_runs

    admin = make_admin()
    offer = make_offer(make_coach(admin=admin))
    session = scheduling.book_session(make_student(), offer.pk, MONDAY.replace(hour=9),
                                      now=MONDAY - timedelta(days=2)).session
    access = SessionAccess.objects.get(pk=session.pk)
    now = MONDAY + timedelta(days=500)
    old = _run(access.pk, "grant", now - GATE_RUNS_KEPT - timedelta(minutes=1), 10)
    kept = _run(access.pk, "revoke", now - GATE_RUNS_KEPT + timedelta(minutes=1), 20)
    assert prune_gate_runs(now, batch=10) == 1
    assert list(GateRun.objects.values_list("pk", flat=True)) == [kept.pk]
    assert not GateRun.objects.filter(pk=old.pk).exists()
    assert prune_gate_runs(now) == 0

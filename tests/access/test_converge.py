"""Converging a session's access against the Discord emulator, with ``now`` passed in."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from coachgate.access import services
from coachgate.access.models import Category, DiscordCall, GuildState, SessionAccess
from coachgate.access.rules import Phase
from coachgate.accounts.models import User
from coachgate.integrations.discord import permissions as perms
from coachgate.kit.errors import DiscordRequired, GuildFull
from coachgate.scheduling import services as scheduling
from coachgate.scheduling.models import Session
from tests.clients import DiscordEnv
from tests.factories import MONDAY, make_coach, make_offer, make_student

START = MONDAY + timedelta(hours=10)  # 10:00 in London (GMT in March)
H = timedelta(hours=1)
S = timedelta(seconds=1)


def book(student: User, offer_id: int, start: datetime, now: datetime) -> Session:
    return scheduling.book_session(student, offer_id, start, now=now).session


@pytest.fixture
def setup(db: None, discord: DiscordEnv, now: datetime) -> dict[str, Any]:
    coach = make_coach()
    student = make_student()
    other = make_student("other@test.example")
    ids = {"coach": discord.link(coach, now=now), "student": discord.link(student, now=now),
           "other": discord.link(other, now=now)}
    offer = make_offer(coach, delivery="discord_voice")
    return {"coach": coach, "student": student, "other": other, "offer": offer, "ids": ids}


def session_calls(session_id: int) -> list[tuple[str, str]]:
    return [(c.method, c.route) for c in DiscordCall.objects.filter(access_id=session_id)]


def visible_to(discord: DiscordEnv, channel_id: str) -> set[str]:
    return {uid for uid, spans in discord.emu.view_intervals(channel_id).items()
            if spans and spans[-1][1] is None}


def test_default_lifecycle_two_calls(setup: dict[str, Any], discord: DiscordEnv,
                                     now: datetime) -> None:
    session = book(setup["student"], setup["offer"].pk, START, now)
    grant, revoke = START - 2 * H, START + H + H
    assert services.converge(session.pk, now=grant - S).outcome == "ok"
    assert discord.session_channels() == []  # booking and early runs grant nothing
    assert SessionAccess.objects.get(pk=session.pk).next_due_at == grant

    result = services.converge(session.pk, now=grant)
    row = SessionAccess.objects.get(pk=session.pk)
    assert (result.outcome, row.phase) == ("ok", Phase.GRANTED)
    [channel] = discord.session_channels()
    assert channel["id"] == row.channel_id
    assert channel["name"].startswith(f"cg-{session.pk}-")
    assert visible_to(discord, row.channel_id) == {setup["ids"]["coach"], setup["ids"]["student"]}
    assert row.next_due_at == START - 15 * timedelta(minutes=1)  # the 15-minute reminder

    services.converge(session.pk, now=START - timedelta(minutes=15))  # reminder: no calls
    services.converge(session.pk, now=revoke)
    row.refresh_from_db()
    assert (row.phase, row.channel_id, row.next_due_at) == (Phase.REVOKED, "", None)
    assert discord.session_channels() == []
    assert session_calls(session.pk) == [("POST", "/guilds/{guild_id}/channels"),
                                         ("DELETE", "/channels/{channel_id}")]


def test_a_late_run_never_opens_access(setup: dict[str, Any], discord: DiscordEnv,
                                       now: datetime) -> None:
    session = book(setup["student"], setup["offer"].pk, START, now)
    services.converge(session.pk, now=START + 2 * H + S)  # the worker was down all along
    assert SessionAccess.objects.get(pk=session.pk).phase == Phase.REVOKED
    assert [e for e in discord.emu.log if e.action == "channel_create"] == []
    services.converge(session.pk, now=START + 3 * H)  # and repeating changes nothing
    assert session_calls(session.pk) == []


def test_cancel_after_grant_revokes_at_once(setup: dict[str, Any], discord: DiscordEnv,
                                            now: datetime) -> None:
    session = book(setup["student"], setup["offer"].pk, START, now)
    services.converge(session.pk, now=START - H)
    channel_id = SessionAccess.objects.get(pk=session.pk).channel_id
    scheduling.cancel_booking(setup["coach"], session.pk, now=START - H + S)
    services.converge(session.pk, now=START - H + 2 * S)
    row = SessionAccess.objects.get(pk=session.pk)
    assert (row.phase, row.channel_id, row.next_due_at) == (Phase.REVOKED, "", None)
    assert visible_to(discord, channel_id) == set()


def test_reschedule_moves_the_gates(setup: dict[str, Any], discord: DiscordEnv,
                                    now: datetime) -> None:
    session = book(setup["student"], setup["offer"].pk, START, now)
    services.converge(session.pk, now=START - H)
    assert discord.session_channels()
    later = START + timedelta(days=1)
    scheduling.reschedule_session(setup["coach"], session.pk, later, now=START - H + S)
    services.converge(session.pk, now=START - H + 2 * S)
    row = SessionAccess.objects.get(pk=session.pk)
    assert row.phase == Phase.NONE and discord.session_channels() == []
    assert row.next_due_at == later - timedelta(hours=24)  # the new 24-hour reminder
    services.converge(session.pk, now=later - 2 * H)
    assert SessionAccess.objects.get(pk=session.pk).phase == Phase.GRANTED


def test_discord_failing_is_retried_soon(setup: dict[str, Any], discord: DiscordEnv,
                                         now: datetime) -> None:
    session = book(setup["student"], setup["offer"].pk, START, now)
    t = START - 2 * H
    discord.emu.fail_next(1, status=502)
    result = services.converge(session.pk, now=t)
    row = SessionAccess.objects.get(pk=session.pk)
    assert (result.outcome, row.error_kind, row.attempts) == ("retry", "retry", 1)
    assert row.next_due_at == t + S
    assert services.converge(session.pk, now=t + S).outcome == "ok"
    row.refresh_from_db()
    assert (row.phase, row.error_kind, row.attempts) == (Phase.GRANTED, "", 0)
    assert len(discord.session_channels()) == 1


def test_missing_permission_is_shown_not_retried_blindly(setup: dict[str, Any],
                                                         discord: DiscordEnv,
                                                         now: datetime) -> None:
    from coachgate.notify.models import Notification

    discord.emu.set_bot_permissions(discord.guild_id, perms.VIEW_CHANNEL | perms.CONNECT)
    session = book(setup["student"], setup["offer"].pk, START, now)
    t = START - 2 * H
    result = services.converge(session.pk, now=t)
    row = SessionAccess.objects.get(pk=session.pk)
    assert result.outcome == "action" and row.error_kind == "action"
    assert "50013" in row.last_error
    assert row.next_due_at == t + services.ACTION_RETRY
    assert Notification.objects.filter(template="access_problem").exists()


def test_sweep_repairs_a_channel_deleted_by_hand_and_removes_orphans(
        setup: dict[str, Any], discord: DiscordEnv, now: datetime) -> None:
    session = book(setup["student"], setup["offer"].pk, START, now)
    t = START - H
    services.converge(session.pk, now=t)
    old = SessionAccess.objects.get(pk=session.pk).channel_id
    discord.emu.delete_channel_behind_back(old)
    client = services.discord_client(services.linked.guild_settings())  # type: ignore[arg-type]
    orphan = client.create_channel(discord.guild_id, name="cg-99999-left-behind", type=2)
    report = services.sweep(now=t + S)
    assert (report.channels_recreated, report.orphans_deleted) == (1, 1)
    [channel] = discord.session_channels()
    assert channel["id"] != old and channel["id"] != orphan["id"]
    assert visible_to(discord, channel["id"]) == {setup["ids"]["coach"], setup["ids"]["student"]}


def test_a_channel_made_after_the_sweeps_listing_is_not_taken_for_drift(
        setup: dict[str, Any], discord: DiscordEnv, now: datetime,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The sweep lists the guild's channels, then reads the rows holding one. A run that
    # created its channel in between (seen once under load: a second channel for one
    # session) must not look deleted: the sweep asks for the channel before recreating.
    session = book(setup["student"], setup["offer"].pk, START, now)
    t = START - H
    services.converge(session.pk, now=t)
    held = SessionAccess.objects.get(pk=session.pk).channel_id
    from coachgate.integrations.discord.client import DiscordClient

    real = DiscordClient.list_guild_channels

    def before_the_run(self: DiscordClient, guild_id: str) -> list[dict[str, Any]]:
        return [c for c in real(self, guild_id) if str(c["id"]) != held]

    monkeypatch.setattr(DiscordClient, "list_guild_channels", before_the_run)
    report = services.sweep(now=t + S)
    assert report.channels_recreated == 0
    assert SessionAccess.objects.get(pk=session.pk).channel_id == held
    assert [c["id"] for c in discord.session_channels()] == [held]


def test_sweep_adds_back_a_member_removed_from_the_guild(
        setup: dict[str, Any], discord: DiscordEnv, now: datetime) -> None:
    session = book(setup["student"], setup["offer"].pk, START, now)
    services.converge(session.pk, now=START - H)
    channel_id = SessionAccess.objects.get(pk=session.pk).channel_id
    student = setup["ids"]["student"]
    discord.emu.remove_member(discord.guild_id, student)
    assert student not in visible_to(discord, channel_id)
    report = services.sweep(now=START - H + timedelta(minutes=10))
    assert report.members_readded == 1
    assert visible_to(discord, channel_id) == {setup["ids"]["coach"], student}
    # Checked again only after five minutes: the next sweep makes no member calls.
    assert services.sweep(now=START - H + timedelta(minutes=11)).members_readded == 0


def test_sweep_repairs_an_overwrite_removed_by_hand(setup: dict[str, Any], discord: DiscordEnv,
                                                   now: datetime) -> None:
    session = book(setup["student"], setup["offer"].pk, START, now)
    services.converge(session.pk, now=START - H)
    channel_id = SessionAccess.objects.get(pk=session.pk).channel_id
    client = services.discord_client(services.linked.guild_settings())  # type: ignore[arg-type]
    client.delete_channel_permission(channel_id, setup["ids"]["student"])
    report = services.sweep(now=START - H + S)
    assert report.overwrites_repaired == 1
    assert visible_to(discord, channel_id) == {setup["ids"]["coach"], setup["ids"]["student"]}


def test_a_crash_after_create_adopts_the_channel(setup: dict[str, Any], discord: DiscordEnv,
                                                 now: datetime) -> None:
    """The worker died after Discord created the channel but before we stored its id: the
    next run finds it by its tag instead of making a second one."""
    session = book(setup["student"], setup["offer"].pk, START, now)
    t = START - H
    services.converge(session.pk, now=START - 3 * H)  # creates the row
    client = services.discord_client(services.linked.guild_settings())  # type: ignore[arg-type]
    cfg = services.linked.guild_settings()
    assert cfg is not None
    made = client.create_channel(discord.guild_id, name=f"cg-{session.pk}-coach", type=2,
                                 permission_overwrites=services._overwrites(
                                     cfg, discord.emu.bot_user_id, ()))
    SessionAccess.objects.filter(pk=session.pk).update(create_intent_at=t - S)
    services.converge(session.pk, now=t)
    row = SessionAccess.objects.get(pk=session.pk)
    assert row.channel_id == made["id"]
    assert [c["id"] for c in discord.session_channels()] == [made["id"]]
    assert visible_to(discord, made["id"]) == {setup["ids"]["coach"], setup["ids"]["student"]}


@pytest.mark.parametrize(("mode", "expected"), [("session_role", 6), ("offer_role", 4)])
def test_role_modes(setup: dict[str, Any], discord: DiscordEnv, now: datetime, mode: str,
                    expected: int) -> None:
    offer = make_offer(setup["coach"], title=f"{mode} offer", delivery="discord_voice",
                       access_policy={"discord_mode": mode})
    session = book(setup["student"], offer.pk, START, now)
    services.converge(session.pk, now=START - H)
    row = SessionAccess.objects.get(pk=session.pk)
    assert row.phase == Phase.GRANTED and row.role_id
    member_roles = {m["user"]["id"]: m["roles"] for m in discord.emu.members(discord.guild_id)}
    assert row.role_id in member_roles[setup["ids"]["student"]]
    assert row.role_id not in member_roles[setup["ids"]["other"]]
    services.converge(session.pk, now=START + 3 * H)
    member_roles = {m["user"]["id"]: m["roles"] for m in discord.emu.members(discord.guild_id)}
    assert not any(row.role_id in r for r in member_roles.values())
    # offer_role: the offer's role and channel are made once (shared), then 2 + 2
    assert len(session_calls(session.pk)) == expected


def test_archive_instead_of_delete(setup: dict[str, Any], discord: DiscordEnv,
                                   now: datetime) -> None:
    offer = make_offer(setup["coach"], title="archived", delivery="discord_voice",
                       access_policy={"end_action": "archive"})
    session = book(setup["student"], offer.pk, START, now)
    services.converge(session.pk, now=START - H)
    channel_id = SessionAccess.objects.get(pk=session.pk).channel_id
    services.converge(session.pk, now=START + 3 * H)
    row = SessionAccess.objects.get(pk=session.pk)
    assert row.archived and row.channel_id == channel_id and row.phase == Phase.REVOKED
    assert any(c["id"] == channel_id for c in discord.emu.channels(discord.guild_id))
    assert visible_to(discord, channel_id) == set()
    assert services.sweep(now=START + 3 * H + S).orphans_deleted == 0


def test_booking_needs_a_discord_link(db: None, discord: DiscordEnv, now: datetime) -> None:
    coach = make_coach()
    offer = make_offer(coach, delivery="discord_voice")
    student = make_student()
    with pytest.raises(DiscordRequired) as err:
        book(student, offer.pk, START, now)
    assert err.value.status == 409 and "connect_url" in err.value.details
    assert not Session.objects.exists()


def test_booking_refused_when_the_guild_has_no_room(setup: dict[str, Any], discord: DiscordEnv,
                                                    now: datetime) -> None:
    # 499 other channels + this session's channel + its category would make 501.
    GuildState.objects.create(guild_id=discord.guild_id, other_channels=499, checked_at=now)
    with pytest.raises(GuildFull):
        book(setup["student"], setup["offer"].pk, START, now)
    assert not Session.objects.exists()
    GuildState.objects.filter(guild_id=discord.guild_id).update(other_channels=498)
    assert book(setup["student"], setup["offer"].pk, START, now).pk


def test_guild_channel_limit_is_surfaced(setup: dict[str, Any], discord: DiscordEnv,
                                         now: datetime) -> None:
    client = services.discord_client(services.linked.guild_settings())  # type: ignore[arg-type]
    discord.emu.configure_limits(max_channels=3)
    for i in range(3):
        client.create_channel(discord.guild_id, name=f"general-{i}", type=0)
    session = book(setup["student"], setup["offer"].pk, START, now)
    result = services.converge(session.pk, now=START - H)
    assert result.outcome == "action" and "30013" in result.error
    assert discord.session_channels() == []


def test_categories_fill_to_fifty(setup: dict[str, Any], discord: DiscordEnv,
                                  now: datetime) -> None:
    discord.emu.configure_limits(max_channels_per_category=3)
    services.CATEGORY_CAPACITY, saved = 3, services.CATEGORY_CAPACITY
    try:
        sessions = [book(setup["student"], setup["offer"].pk, START + i * H, now)
                    for i in range(4)]
        for s in sessions:
            assert services.converge(s.pk, now=s.starts_at - H).outcome == "ok"
    finally:
        services.CATEGORY_CAPACITY = saved
    cats = list(Category.objects.order_by("pk").values_list("category_id", flat=True))
    assert len(cats) == 2
    parents = [c["parent_id"] for c in discord.session_channels()]
    assert sorted(parents.count(c) for c in cats) == [1, 3]


def test_role_limit_in_role_mode(setup: dict[str, Any], discord: DiscordEnv,
                                 now: datetime) -> None:
    discord.emu.configure_limits(max_roles=3)  # @everyone + the bot's role + one more
    offer = make_offer(setup["coach"], title="roles", delivery="discord_voice",
                       access_policy={"discord_mode": "session_role"})
    first = book(setup["student"], offer.pk, START, now)
    second = book(setup["other"], offer.pk, START + 2 * H, now)
    assert services.converge(first.pk, now=START - H).outcome == "ok"
    result = services.converge(second.pk, now=START + H)
    assert result.outcome == "action" and "30005" in result.error


def test_notifications_once(setup: dict[str, Any], discord: DiscordEnv, now: datetime) -> None:
    from coachgate.notify.models import Notification

    session = book(setup["student"], setup["offer"].pk, START, now)
    for t in (START - 24 * H, START - 2 * H, START - 2 * H + S, START - 900 * S,
              START - 899 * S):
        services.converge(session.pk, now=t)
    kinds = sorted(Notification.objects.filter(user=setup["student"], channel="email")
                   .values_list("template", flat=True))
    assert kinds == ["access_open", "booking_confirmed", "session_reminder", "session_reminder"]
    assert Notification.objects.filter(user=setup["coach"], template="access_open").exists()


def test_a_student_who_cannot_be_added_does_not_break_the_run(
        db: None, discord: DiscordEnv, now: datetime) -> None:
    """The student left the guild and their grant expired, and no OAuth app is configured
    to refresh it: the coach still gets the channel, admins see why, nothing crashes."""
    from coachgate.accounts.models import DiscordLink

    coach, student = make_coach(), make_student()
    coach_id = discord.link(coach, now=now)
    discord.link(student, now=now, in_guild=False)
    DiscordLink.objects.filter(user=student).update(token_expires_at=now)
    offer = make_offer(coach, delivery="discord_voice")
    session = book(student, offer.pk, START, now)
    result = services.converge(session.pk, now=START - H)
    row = SessionAccess.objects.get(pk=session.pk)
    assert result.outcome == "action" and "not configured" in row.last_error
    assert row.phase == Phase.GRANTED and row.lease_until is None
    assert coach_id in visible_to(discord, row.channel_id)
    assert services.sweep(now=START - H + timedelta(minutes=10)).drift_error == ""

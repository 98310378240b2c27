"""`coachgate check` against the Discord emulator, and the SessionAccess pages of the
Django admin (gates, last error, Discord calls, the "converge now" action)."""

from __future__ import annotations

import socket
from datetime import datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.test import Client

from coachgate import cli
from coachgate.access import services
from coachgate.access.check import check_guild
from coachgate.access.models import DiscordCall, GuildState, SessionAccess
from coachgate.access.rules import Phase
from coachgate.accounts.models import User
from coachgate.integrations.discord import permissions as perms
from coachgate.scheduling import services as scheduling
from coachgate.scheduling.models import Session
from tests.admin_html import form_fields, table_rows
from tests.clients import DiscordEnv
from tests.factories import MONDAY, make_coach, make_offer, make_student

START = MONDAY + timedelta(hours=10)
H = timedelta(hours=1)
S = timedelta(seconds=1)
CHANGELIST = "/admin/access/sessionaccess/"


def book(student: User, offer_id: int, start: datetime, now: datetime) -> Session:
    return scheduling.book_session(student, offer_id, start, now=now).session


def fails(report: Any) -> list[str]:
    return [line for line in report.lines if line.startswith("[FAIL]")]


# --- coachgate check -------------------------------------------------------------------------


def test_check_all_ok_with_default_bot_permissions(db: None, discord: DiscordEnv) -> None:
    report = check_guild()
    assert report.ok, report.render()
    assert fails(report) == []
    text = report.render()
    assert "mode member_overwrites: bot has every permission it needs" in text
    assert f"({discord.guild_id}) reachable" in text
    assert text.endswith("all good")
    for mode in ("member_overwrites", "session_role", "offer_role"):
        assert check_guild(mode).ok


def test_check_names_the_missing_permissions(db: None, discord: DiscordEnv) -> None:
    discord.emu.set_bot_permissions(discord.guild_id, perms.VIEW_CHANNEL | perms.CONNECT)
    report = check_guild("member_overwrites")
    assert report.ok is False
    [line] = fails(report)
    assert "mode member_overwrites" in line
    assert "MANAGE_CHANNELS" in line and "MANAGE_ROLES" in line
    assert "VIEW_CHANNEL" not in line and "CONNECT," not in line
    assert report.render().endswith("problems found")


def test_check_accepts_an_administrator_bot(db: None, discord: DiscordEnv) -> None:
    discord.emu.set_bot_permissions(discord.guild_id, perms.ADMINISTRATOR)
    assert check_guild("session_role").ok


def test_check_checks_the_modes_published_offers_use(db: None, discord: DiscordEnv,
                                                     admin: User) -> None:
    coach = make_coach(admin=admin)
    make_offer(coach, title="roles", delivery="discord_voice",
               access_policy={"discord_mode": "session_role"})
    report = check_guild()
    assert any("mode session_role" in line for line in report.lines)
    assert not any("mode member_overwrites" in line for line in report.lines)


def test_check_not_configured(db: None, settings: Any) -> None:
    settings.COACHGATE = {**settings.COACHGATE, "DISCORD_GUILD_ID": "",
                          "DISCORD_BOT_TOKEN": ""}
    report = check_guild()
    assert report.ok is False
    [line] = report.lines
    assert line.startswith("[FAIL] Discord is not configured")
    assert "guild id" in line and "bot token" in line


def test_check_with_a_wrong_bot_token_fails_cleanly(db: None, discord: DiscordEnv,
                                                    settings: Any) -> None:
    settings.COACHGATE = {**settings.COACHGATE, "DISCORD_BOT_TOKEN": "not-the-bot-token"}
    report = check_guild()
    assert report.ok is False
    [line] = fails(report)
    assert "/users/@me" in line and "401" in line and "bot token" in line


def test_check_with_an_unknown_guild_fails_cleanly(db: None, discord: DiscordEnv,
                                                   settings: Any) -> None:
    settings.COACHGATE = {**settings.COACHGATE, "DISCORD_GUILD_ID": "123456789"}
    report = check_guild()
    assert report.ok is False
    assert any("404" in line and "10004" in line for line in fails(report))


def test_check_when_discord_does_not_answer(db: None, settings: Any) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings.COACHGATE = {**settings.COACHGATE, "DISCORD_API_URL": f"http://127.0.0.1:{port}",
                          "DISCORD_GUILD_ID": "1", "DISCORD_BOT_TOKEN": "x.y.z"}
    report = check_guild()
    assert report.ok is False
    [line] = fails(report)
    assert "None" not in line  # "answered None (code None)" says nothing useful
    assert "no answer" in line or "connection" in line


def test_check_records_guild_capacity_like_the_sweep(db: None, discord: DiscordEnv,
                                                     now: datetime, admin: User) -> None:
    """`check` and the sweep must count the guild's other channels the same way: the
    booking guard adds coachgate's own categories on top of that count."""
    coach, student = make_coach(admin=admin), make_student()
    discord.link(coach, now=now)
    discord.link(student, now=now)
    offer = make_offer(coach, delivery="discord_voice")
    session = book(student, offer.pk, START, now)
    services.converge(session.pk, now=START - H)  # a category and a session channel
    discord.emu.create_channel(discord.guild_id, "general", type=0)
    services.sweep(now=START - H + S)
    by_sweep = GuildState.objects.get(guild_id=discord.guild_id).other_channels
    GuildState.objects.all().delete()
    report = check_guild()
    assert report.ok, report.render()
    assert GuildState.objects.get(guild_id=discord.guild_id).other_channels == by_sweep
    # the session channel and its category
    assert any("2 are coachgate's" in line for line in report.lines)


@pytest.mark.parametrize(("configured", "code"), [(True, 0), (False, 1)])
def test_cli_check_exit_code(db: None, discord: DiscordEnv, settings: Any,
                             capsys: pytest.CaptureFixture[str], configured: bool,
                             code: int) -> None:
    if not configured:
        discord.emu.set_bot_permissions(discord.guild_id, perms.VIEW_CHANNEL)
    assert cli.main(["check"]) == code
    out = capsys.readouterr().out
    assert out.strip().endswith("all good" if configured else "problems found")


# --- Django admin ----------------------------------------------------------------------------


@pytest.fixture
def booked(db: None, discord: DiscordEnv, now: datetime, admin: User) -> dict[str, Any]:
    coach, student = make_coach(admin=admin), make_student()
    discord.link(coach, now=now)
    discord.link(student, now=now)
    offer = make_offer(coach, delivery="discord_voice")
    session = book(student, offer.pk, START, now)
    return {"admin": admin, "student": student, "session": session}


def admin_client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_admin_users_are_staff(admin: User) -> None:
    assert admin.is_staff and admin.is_superuser


def test_changelist_and_change_page_show_gates_errors_and_calls(
        booked: dict[str, Any], discord: DiscordEnv) -> None:
    session = booked["session"]
    # First run fails: the bot may not make channels.
    discord.emu.set_bot_permissions(discord.guild_id, perms.VIEW_CHANNEL | perms.CONNECT)
    assert services.converge(session.pk, now=START - 2 * H).outcome == "action"
    client = admin_client(booked["admin"])

    listing = client.get(CHANGELIST)
    assert listing.status_code == 200
    assert f"/admin/access/sessionaccess/{session.pk}/change/" in listing.text
    # This session's row, not a substring of the page: "action" is also the name of the
    # admin's actions form, there on an empty list too (and the column shows the kind's
    # label, never the word "action").
    (row,) = [r for r in table_rows(listing.text) if "error_kind" in r]
    assert row["error_kind"] == "someone must act" and row["attempts"] == "1"
    assert "50013" in row["error"]

    page = client.get(f"{CHANGELIST}{session.pk}/change/")
    assert page.status_code == 200
    fields = form_fields(page.text)
    gates = fields["gates"]
    for kind in ("provision", "grant", "join_window", "reminder", "revoke"):
        assert f" — {kind}" in gates
    assert f"{(START - 2 * H).isoformat()} — grant" in gates  # the grant gate's time
    assert "50013" in fields["last_error"] and "Missing Permissions" in fields["last_error"]
    # The failed call made the platform's category, which many sessions share: it is
    # recorded without a session, so this session's call list is empty and the last error
    # is where the admin sees it.
    assert [r for r in table_rows(page.text) if r.get("route")] == []
    assert list(DiscordCall.objects.filter(access=None, status=403)
                .values_list("method", "route")) == [("POST", "/guilds/{guild_id}/channels")]

    discord.emu.set_bot_permissions(discord.guild_id, perms.ADMINISTRATOR)
    assert services.converge(session.pk, now=START - 2 * H + S).outcome == "ok"
    page_text = client.get(f"{CHANGELIST}{session.pk}/change/").text
    assert "Missing Permissions" not in form_fields(page_text)["last_error"]
    calls = [(r["method"], r["route"], r["status"]) for r in table_rows(page_text)
             if r.get("route")]
    assert ("POST", "/guilds/{guild_id}/channels", "201") in calls  # the session's channel


def test_changelist_filters_and_search(booked: dict[str, Any]) -> None:
    session = booked["session"]
    services.converge(session.pk, now=START - H)
    client = admin_client(booked["admin"])
    for query in (f"?q={session.pk}", "?q=abc", "?q=%25", "?phase__exact=granted",
                  "?error_kind__exact=action", "?discord__exact=1"):
        r = client.get(CHANGELIST + query)
        assert r.status_code == 200, query
    found = client.get(f"{CHANGELIST}?q={session.pk}").text
    assert f"/admin/access/sessionaccess/{session.pk}/change/" in found
    none = client.get(f"{CHANGELIST}?phase__exact=revoked").text
    assert f"/admin/access/sessionaccess/{session.pk}/change/" not in none


def test_converge_now_action(booked: dict[str, Any], discord: DiscordEnv) -> None:
    session = booked["session"]
    services.converge(session.pk, now=START - 3 * H)  # the row exists, nothing granted
    assert SessionAccess.objects.get(pk=session.pk).phase == Phase.NONE
    with time_machine.travel(START - H, tick=False):
        client = admin_client(booked["admin"])  # log in at the travelled time
        r = client.post(CHANGELIST, {"action": "converge_now",
                                     "_selected_action": [session.pk]}, follow=True)
    assert r.status_code == 200
    assert f"Converged: {session.pk}: ok" in r.text
    row = SessionAccess.objects.get(pk=session.pk)
    assert row.phase == Phase.GRANTED and row.channel_id
    assert [c["id"] for c in discord.session_channels()] == [row.channel_id]


def test_admin_cannot_add_access_rows(booked: dict[str, Any]) -> None:
    client = admin_client(booked["admin"])
    assert client.get(f"{CHANGELIST}add/").status_code == 403


def test_non_staff_are_sent_to_login(booked: dict[str, Any]) -> None:
    services.converge(booked["session"].pk, now=START - 3 * H)
    client = admin_client(booked["student"])
    for path in (CHANGELIST, f"{CHANGELIST}{booked['session'].pk}/change/"):
        r = client.get(path)
        assert r.status_code == 302 and "/admin/login/" in r["Location"]
    r = client.post(CHANGELIST, {"action": "converge_now",
                                 "_selected_action": [booked["session"].pk]})
    assert r.status_code == 302 and "/admin/login/" in r["Location"]
    assert SessionAccess.objects.get(pk=booked["session"].pk).runs == 1
    anonymous = Client().get(CHANGELIST)
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]

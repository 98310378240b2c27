"""A third-party Discord library, discord.py 2.7, drives ``coachgate emulator``: every
operation coachgate performs succeeds through it.

The emulator runs as ``coachgate emulator`` in its own process (a real HTTP server on
127.0.0.1); users and an OAuth2 grant are made over its /_emulator/ admin routes, as an
outside tool would. discord.py talks to it through its HTTP client only (no gateway
websocket): ``Route.BASE`` points at the emulator for this test. The whole run is bounded
by a timeout.
"""

from __future__ import annotations

import asyncio
import warnings
from typing import Any

import httpx
import pytest

with warnings.catch_warnings():  # discord.py imports audioop, deprecated in 3.11
    warnings.simplefilter("ignore", DeprecationWarning)
    import discord

from coachgate.access.services import BOT_ALLOW, EVERYONE_DENY, MEMBER_ALLOW

TIMEOUT_S = 60


def _perms(bits: int) -> discord.PermissionOverwrite:
    allow = discord.Permissions(bits)
    return discord.PermissionOverwrite.from_pair(allow, discord.Permissions.none())


async def _drive(info: dict[str, Any], student_id: int, student_token: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    client = discord.Client(intents=discord.Intents.none())
    try:
        await client.login(info["bot_token"])  # GET /users/@me, GET /oauth2/applications/@me
        assert client.user is not None and client.user.id == int(info["bot_user_id"])
        assert client.application_id == int(info["bot_user_id"])

        guild = await client.fetch_guild(int(info["guild_id"]), with_counts=True)
        seen["member_count"] = guild.approximate_member_count
        bot = discord.Object(client.user.id, type=discord.Member)
        coach = discord.Object(int(info["users"]["coach"]), type=discord.Member)

        # linking a student: the bot adds them with their guilds.join grant
        await client.http.request(
            discord.http.Route("PUT", "/guilds/{guild_id}/members/{user_id}",
                               guild_id=guild.id, user_id=student_id),
            json={"access_token": student_token})
        student = await guild.fetch_member(student_id)
        seen["student_name"] = student.name

        # member_overwrites mode: a private voice channel made with its overwrites
        category = await guild.create_category("coachgate sessions 1", overwrites={
            guild.default_role: discord.PermissionOverwrite.from_pair(
                discord.Permissions.none(), discord.Permissions(EVERYONE_DENY)),
            bot: _perms(BOT_ALLOW)})
        voice = await guild.create_voice_channel("cg-1-coach", category=category, overwrites={
            guild.default_role: discord.PermissionOverwrite.from_pair(
                discord.Permissions.none(), discord.Permissions(EVERYONE_DENY)),
            bot: _perms(BOT_ALLOW), coach: _perms(MEMBER_ALLOW)})
        await voice.set_permissions(student, overwrite=_perms(MEMBER_ALLOW), reason="grant")
        await voice.set_permissions(student, overwrite=None, reason="revoke")
        channels = await guild.fetch_channels()
        seen["listed"] = voice.id in {c.id for c in channels}
        fetched = await client.fetch_channel(voice.id)
        seen["fetched_type"] = fetched.type

        # archive mode: access closed in one edit, the rename in another
        archive = await guild.create_category("archive")
        await voice.edit(category=archive, overwrites={bot: _perms(BOT_ALLOW)},
                         reason="archive: revoke")
        await voice.edit(name="archived-cg-1-session", reason="archive: rename")

        # session_role / offer_role modes: a role given and taken
        role = await guild.create_role(name="cg-1 session", reason="session role")
        await student.add_roles(role, reason="grant")
        # (Member.roles resolves ids against the guild fetched before the role existed)
        member = await client.http.get_member(guild.id, student_id)
        seen["roles_after_add"] = [int(r) for r in member["roles"]]
        await student.remove_roles(role, reason="revoke")
        roles = await guild.fetch_roles()
        seen["role_listed"] = role.id in {r.id for r in roles}
        await role.delete(reason="delete role")

        # notifications: a DM and a channel message
        user = await client.fetch_user(student_id)
        dm = await user.send("Your session starts in 15 minutes.")
        seen["dm"] = dm.content
        text = await guild.create_text_channel("announcements")
        message = await text.send("hello")
        seen["message"] = message.content
        await text.delete()
        await voice.delete(reason="revoke and delete")
        with pytest.raises(discord.NotFound):
            await client.fetch_channel(voice.id)
        seen["voice_id"], seen["role_id"] = voice.id, role.id
    finally:
        await client.close()
    return seen


def test_discord_py_performs_every_operation_coachgate_does(
        served: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    admin = served["admin_url"]
    student = httpx.post(f"{admin}/users", json={"username": "student"}, timeout=5).json()
    grant = httpx.post(f"{admin}/oauth2/grants", json={"user_id": student["id"]},
                       timeout=5).json()
    monkeypatch.setattr(discord.http.Route, "BASE", served["base_url"])

    seen = asyncio.run(asyncio.wait_for(
        _drive(served, int(student["id"]), grant["access_token"]), TIMEOUT_S))

    assert seen["member_count"] == 3  # the owner, the bot, the coach
    assert seen["student_name"] == "student"
    assert seen["listed"] and seen["fetched_type"] == discord.ChannelType.voice
    assert seen["role_id"] in seen["roles_after_add"] and seen["role_listed"]
    assert seen["dm"] == "Your session starts in 15 minutes." and seen["message"] == "hello"
    # What discord.py did is what the emulator recorded, in its audit log over HTTP.
    log = httpx.get(f"{admin}/audit-log", timeout=5).json()["entries"]
    actions = [e["action"] for e in log if e["details"]["actor"] == "bot"]
    for action in ("member_add", "channel_create", "overwrite_update", "overwrite_delete",
                   "channel_update", "role_create", "member_role_add",
                   "member_role_remove", "role_delete", "message_create", "channel_delete"):
        assert action in actions, action
    renamed = [e for e in log if e["action"] == "channel_update"
               and e["channel_id"] == str(seen["voice_id"])]
    assert [list(e["details"]["changes"]) for e in renamed] == [
        ["parent_id", "permission_overwrites"], ["name"]]

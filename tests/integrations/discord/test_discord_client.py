"""The real DiscordClient against the real DiscordEmulator (HTTP on 127.0.0.1, no mocks).

Every wait is bounded: rate-limit windows and retry_after values are fractions of a
second, and the client's max_retry_wait is 1 s.
"""

from __future__ import annotations

import socket
import threading
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from coachgate.integrations.discord import permissions as P
from coachgate.integrations.discord.client import (
    ActionRequired,
    CallRecord,
    DiscordClient,
    DiscordNotFound,
    LimitReached,
    RetryLater,
)

from .conftest import World

# --- Channels, overwrites and visibility -----------------------------------------------


def test_private_voice_channel_in_one_call_and_visibility(world: World) -> None:
    c, emu, g = world.client, world.emu, world.guild_id
    ch = c.create_channel(g, name="session-1", type=2,
                          permission_overwrites=world.private_overwrites(world.coach,
                                                                         world.student),
                          reason="coachgate: session 1 grant")
    assert ch["type"] == 2 and ch["guild_id"] == g
    assert [o["allow"] for o in ch["permission_overwrites"]][1] == str(
        P.VIEW_CHANNEL | P.CONNECT | P.SPEAK)
    listed = {x["id"]: x for x in c.list_guild_channels(g)}
    assert listed[ch["id"]]["permission_overwrites"] == ch["permission_overwrites"]
    assert len(world.records) == 2  # one call to create, one to list

    spans = emu.view_intervals(ch["id"])
    assert set(spans) == {world.coach, world.student}  # not other, bot or owner
    opened = spans[world.coach][0][0]
    assert spans[world.coach] == [(opened, None)] and spans[world.student] == [(opened, None)]

    # The student's overwrite goes: their interval closes, the coach's stays open.
    c.delete_channel_permission(ch["id"], world.student, reason="revoke student")
    spans = emu.view_intervals(ch["id"])
    assert spans[world.student][0][1] is not None and spans[world.coach][0][1] is None

    deleted = c.delete_channel(ch["id"], reason="coachgate: session 1 revoke")
    assert deleted["id"] == ch["id"]
    spans = emu.view_intervals(ch["id"])
    closed = spans[world.coach][0][1]
    assert closed is not None and closed >= opened
    assert emu.visible_users(ch["id"]) == set()

    with pytest.raises(DiscordNotFound) as exc:
        c.delete_channel(ch["id"])
    assert exc.value.status == 404 and exc.value.code == 10003
    assert exc.value.route == "/channels/{channel_id}"

    actions = [(e.action, e.reason) for e in emu.log if e.channel_id == ch["id"]]
    assert actions == [("channel_create", "coachgate: session 1 grant"),
                       ("overwrite_delete", "revoke student"),
                       ("channel_delete", "coachgate: session 1 revoke")]


def test_overwrite_edit_and_delete(world: World) -> None:
    c, emu = world.client, world.emu
    ch = c.create_channel(world.guild_id, name="s", permission_overwrites=world.private_overwrites(
        world.coach))
    assert emu.visible_users(ch["id"]) == {world.coach}
    c.edit_channel_permissions(ch["id"], world.other, allow=P.VIEW_CHANNEL | P.CONNECT,
                               deny=0, type=P.MEMBER, reason="let other in")
    assert emu.visible_users(ch["id"]) == {world.coach, world.other}
    # The same overwrite again changes nothing and is not logged.
    before = len(emu.log)
    c.edit_channel_permissions(ch["id"], world.other, allow=P.VIEW_CHANNEL | P.CONNECT,
                               deny=0, type=P.MEMBER)
    assert len(emu.log) == before
    # Deny instead of allow.
    c.edit_channel_permissions(ch["id"], world.other, allow=0, deny=P.VIEW_CHANNEL,
                               type=P.MEMBER)
    assert emu.visible_users(ch["id"]) == {world.coach}
    c.delete_channel_permission(ch["id"], world.other)
    c.delete_channel_permission(ch["id"], world.other)  # already gone: still 204
    overwrites = {o["id"] for o in c.get_channel(ch["id"])["permission_overwrites"]}
    assert world.other not in overwrites
    spans = emu.view_intervals(ch["id"])[world.other]
    assert len(spans) == 1 and spans[0][1] is not None


def test_modify_channel_replaces_overwrites(world: World) -> None:
    c, emu = world.client, world.emu
    ch = c.create_channel(world.guild_id, name="s", permission_overwrites=world.private_overwrites(
        world.coach))
    changed = c.modify_channel(ch["id"], name="renamed",
                               permission_overwrites=world.private_overwrites(world.student))
    assert changed["name"] == "renamed"
    assert emu.visible_users(ch["id"]) == {world.student}
    update = [e for e in emu.log if e.action == "channel_update"][-1]
    assert set(update.details["changes"]) == {"name", "permission_overwrites"}


def test_role_overwrites_follow_member_roles(world: World) -> None:
    c, emu, g = world.client, world.emu, world.guild_id
    role = c.create_role(g, name="Coaching Access", reason="offer 7")
    assert role["permissions"] == "0" and role["position"] == 1  # new roles go to the bottom
    ch = c.create_channel(g, name="offer-7", permission_overwrites=[
        *world.private_overwrites(),
        {"id": role["id"], "type": P.ROLE, "allow": P.VIEW_CHANNEL | P.CONNECT, "deny": 0}])
    assert emu.visible_users(ch["id"]) == set()
    c.add_member_role(g, world.student, role["id"], reason="bought offer 7")
    c.add_member_role(g, world.student, role["id"])  # no change, no log entry
    member = c.get_guild_member(g, world.student)
    assert role["id"] in member["roles"]
    assert emu.visible_users(ch["id"]) == {world.student}
    c.remove_member_role(g, world.student, role["id"])
    assert emu.visible_users(ch["id"]) == set()
    c.add_member_role(g, world.other, role["id"])
    c.delete_role(g, role["id"], reason="offer retired")
    assert emu.visible_users(ch["id"]) == set()
    assert role["id"] not in {r["id"] for r in c.list_guild_roles(g)}
    with pytest.raises(DiscordNotFound) as exc:
        c.delete_role(g, role["id"])
    assert exc.value.code == 10011
    actions = [e.action for e in emu.log if e.role_id == role["id"]]
    assert actions == ["role_create", "member_role_add", "member_role_remove",
                       "member_role_add", "role_delete"]
    assert emu.view_intervals(ch["id"])[world.student][0][1] is not None


def test_member_leaving_loses_sight(world: World) -> None:
    c, emu = world.client, world.emu
    ch = c.create_channel(world.guild_id, name="s", permission_overwrites=world.private_overwrites(
        world.coach, world.student))
    emu.remove_member(world.guild_id, world.student)
    assert emu.visible_users(ch["id"]) == {world.coach}
    with pytest.raises(DiscordNotFound) as exc:
        c.get_guild_member(world.guild_id, world.student)
    assert exc.value.code == 10007
    emu.add_member(world.guild_id, world.student)  # rejoins: the overwrite is still there
    assert emu.visible_users(ch["id"]) == {world.coach, world.student}
    assert len(emu.view_intervals(ch["id"])[world.student]) == 2


def test_channel_in_category_copies_its_overwrites(world: World) -> None:
    c, emu = world.client, world.emu
    cat = c.create_channel(world.guild_id, name="sessions", type=4,
                           permission_overwrites=world.private_overwrites(world.coach))
    ch = c.create_channel(world.guild_id, name="s", parent_id=cat["id"])
    assert ch["parent_id"] == cat["id"]
    assert ch["permission_overwrites"] == cat["permission_overwrites"]
    assert emu.visible_users(ch["id"]) == {world.coach}


def test_human_deleting_a_channel_is_logged(world: World) -> None:
    c, emu = world.client, world.emu
    ch = c.create_channel(world.guild_id, name="s", permission_overwrites=world.private_overwrites(
        world.coach))
    emu.delete_channel_behind_back(ch["id"])
    assert emu.log[-1].action == "channel_delete"
    assert emu.log[-1].details["actor"] == "human"
    with pytest.raises(DiscordNotFound):
        c.get_channel(ch["id"])


# --- Members, DMs -------------------------------------------------------------------------


def test_add_guild_member_with_user_token(world: World) -> None:
    c, emu, g = world.client, world.emu, world.guild_id
    newcomer = emu.create_user("newcomer")
    token = emu.issue_user_token(newcomer)["access_token"]
    with pytest.raises(DiscordNotFound):
        c.get_guild_member(g, newcomer)
    member = c.add_guild_member(g, newcomer, token, reason="linked account")
    assert member is not None and member["user"]["id"] == newcomer
    assert c.add_guild_member(g, newcomer, token) is None  # already a member: 204
    assert c.get_guild_member(g, newcomer)["user"]["username"] == "newcomer"
    entry = [e for e in emu.log if e.action == "member_add"][-1]
    assert entry.user_id == newcomer and entry.reason == "linked account"

    # Someone else's token, or one without guilds.join, is refused: 50025.
    stranger = emu.create_user("stranger")
    narrow = emu.issue_user_token(stranger, scopes=("identify",))["access_token"]
    for bad in (token, narrow):
        with pytest.raises(ActionRequired) as exc:
            c.add_guild_member(g, stranger, bad)
        assert exc.value.code == 50025 and not isinstance(exc.value, DiscordNotFound)


def test_direct_messages_are_stored_per_recipient(world: World) -> None:
    c, emu = world.client, world.emu
    dm = c.create_dm(world.student)
    assert dm["type"] == 1 and dm["recipients"][0]["id"] == world.student
    assert c.create_dm(world.student)["id"] == dm["id"]
    msg = c.send_message(dm["id"], "Your session starts in 15 minutes.")
    assert msg["content"] == "Your session starts in 15 minutes."
    c.send_message(dm["id"], "Join: https://example.test/j/1")
    assert emu.dm_messages(world.student) == ["Your session starts in 15 minutes.",
                                               "Join: https://example.test/j/1"]
    emu.set_dm_open(world.student, False)
    with pytest.raises(ActionRequired) as exc:
        c.send_message(dm["id"], "hello?")
    assert exc.value.status == 403 and exc.value.code == 50007
    # Text channels take messages too.
    text = c.create_channel(world.guild_id, name="general", type=0)
    c.send_message(text["id"], "hi all")
    assert [m["content"] for m in emu.messages(text["id"])] == ["hi all"]


# --- Limits, permissions, configuration errors ------------------------------------------


def test_guild_channel_limit(world: World) -> None:
    emu = world.emu
    for i in range(len(emu.channels(world.guild_id)), 500):
        emu.create_channel(world.guild_id, f"filler-{i}")
    with pytest.raises(LimitReached) as exc:
        world.client.create_channel(world.guild_id, name="one too many")
    assert exc.value.status == 400 and exc.value.code == 30013
    assert isinstance(exc.value, ActionRequired)
    assert len(emu.channels(world.guild_id)) == 500


def test_guild_role_limit(world: World) -> None:
    emu = world.emu
    for i in range(len(emu.roles(world.guild_id)), 250):
        emu.create_role(world.guild_id, f"filler-{i}")
    with pytest.raises(LimitReached) as exc:
        world.client.create_role(world.guild_id, name="one too many")
    assert exc.value.code == 30005
    assert len(emu.roles(world.guild_id)) == 250


def test_category_limit(world: World) -> None:
    c = world.client
    cat = c.create_channel(world.guild_id, name="sessions", type=4)
    for i in range(50):
        world.emu.create_channel(world.guild_id, f"s-{i}", parent_id=cat["id"])
    with pytest.raises(LimitReached) as exc:
        c.create_channel(world.guild_id, name="s-50", parent_id=cat["id"])
    assert exc.value.code == 50035
    assert exc.value.errors is not None
    assert exc.value.errors["parent_id"]["_errors"][0]["code"] == "CHANNEL_PARENT_MAX_CHANNELS"
    assert "parent_id: CHANNEL_PARENT_MAX_CHANNELS" in str(exc.value)
    # Outside the category there is room.
    c.create_channel(world.guild_id, name="s-50")


def test_configured_limits_keep_discords_codes(world: World) -> None:
    c, g = world.client, world.guild_id
    world.emu.configure_limits(max_channels=2, max_roles=3, max_channels_per_category=1)
    cat = c.create_channel(g, name="cat", type=4)
    c.create_channel(g, name="one", parent_id=cat["id"])
    with pytest.raises(LimitReached) as exc:
        c.create_channel(g, name="two", parent_id=cat["id"])
    assert exc.value.code == 30013  # the guild is full before the category is
    c.create_role(g, name="only")
    with pytest.raises(LimitReached) as exc:
        c.create_role(g, name="too many")
    assert exc.value.code == 30005


def test_validation_error_is_action_required_not_limit(world: World) -> None:
    with pytest.raises(ActionRequired) as exc:
        world.client.create_channel(world.guild_id, name="")
    assert exc.value.code == 50035 and not isinstance(exc.value, LimitReached)


def test_missing_permissions(world: World) -> None:
    c, emu, g = world.client, world.emu, world.guild_id
    # Allowing a bit the bot does not hold (MANAGE_ROLES in an overwrite: admins only).
    with pytest.raises(ActionRequired) as exc:
        c.create_channel(g, name="s", permission_overwrites=[
            {"id": world.coach, "type": 1, "allow": P.MANAGE_ROLES, "deny": 0}])
    assert exc.value.status == 403 and exc.value.code == 50013
    # A managed role (the bot's) cannot be handed out.
    bot_role = next(r for r in emu.roles(g) if r["managed"])
    with pytest.raises(ActionRequired) as exc:
        c.add_member_role(g, world.coach, bot_role["id"])
    assert exc.value.code == 50013
    # Role hierarchy: a role above the bot's cannot be handed out or deleted.
    high = emu.create_role(g, "Admins", above_bot=True)
    for attempt in (lambda: c.add_member_role(g, world.coach, high),
                    lambda: c.delete_role(g, high)):
        with pytest.raises(ActionRequired) as exc:
            attempt()
        assert exc.value.code == 50013
    # A private channel the bot cannot see: Missing Access on every change.
    hidden = c.create_channel(g, name="hidden", permission_overwrites=[
        {"id": g, "type": 0, "allow": 0, "deny": P.VIEW_CHANNEL}])
    with pytest.raises(ActionRequired) as exc:
        c.delete_channel(hidden["id"])
    assert exc.value.code == 50001 and not isinstance(exc.value, DiscordNotFound)
    # A private category without the bot: nothing can be created inside it.
    category = c.create_channel(g, name="private", type=4, permission_overwrites=[
        {"id": g, "type": 0, "allow": 0, "deny": P.VIEW_CHANNEL}])
    with pytest.raises(ActionRequired) as exc:
        c.create_channel(g, name="inside", parent_id=category["id"])
    assert exc.value.code == 50001
    # A voice channel the bot sees but cannot CONNECT to: Missing Access too.
    no_connect = c.create_channel(g, name="no-connect", type=2, permission_overwrites=[
        {"id": g, "type": 0, "allow": 0, "deny": P.VIEW_CHANNEL | P.CONNECT},
        {"id": emu.bot_user_id, "type": 1, "allow": P.VIEW_CHANNEL, "deny": 0}])
    with pytest.raises(ActionRequired) as exc:
        c.delete_channel(no_connect["id"])
    assert exc.value.code == 50001
    # The bot loses MANAGE_CHANNELS.
    emu.set_bot_permissions(g, P.VIEW_CHANNEL | P.CONNECT)
    with pytest.raises(ActionRequired) as exc:
        c.create_channel(g, name="s")
    assert exc.value.code == 50013 and exc.value.message == "Missing Permissions"
    assert not isinstance(exc.value, LimitReached | DiscordNotFound)
    assert emu.invalid_request_count == 8


def test_bad_token(world: World) -> None:
    with DiscordClient(world.emu.base_url, "not-the-token", timeout=2.0) as c, \
            pytest.raises(ActionRequired) as exc:
        c.get_guild(world.guild_id)
    assert exc.value.status == 401 and not isinstance(exc.value, RetryLater)
    assert "not-the-token" not in str(exc.value) and "not-the-token" not in repr(c)


def test_api_prefix_without_version(world: World) -> None:
    with DiscordClient(f"{world.emu.url}/api", world.emu.bot_token, timeout=2.0) as c:
        assert c.get_current_user()["id"] == world.emu.bot_user_id


def test_unknown_guild_is_action_required_not_not_found(world: World) -> None:
    with pytest.raises(ActionRequired) as exc:
        world.client.create_channel("123456789", name="s")
    assert exc.value.status == 404 and exc.value.code == 10004
    assert not isinstance(exc.value, DiscordNotFound)


# --- Rate limits --------------------------------------------------------------------------


def test_bucket_exhaustion_makes_the_client_wait(world: World) -> None:
    world.emu.configure_rate_limits(per_route=(2, 0.3))
    started = time.monotonic()
    for _ in range(6):
        world.client.list_guild_roles(world.guild_id)
    elapsed = time.monotonic() - started
    statuses = [r.status for r in world.records]
    assert statuses == [200] * 6  # no 429 reached the emulator, nor the caller
    assert [call.status for call in world.emu.calls] == [200] * 6
    assert 0.5 <= elapsed < 3.0  # three windows of 0.3 s


def test_buckets_are_per_major_parameter(world: World) -> None:
    c, emu = world.client, world.emu
    a = c.create_channel(world.guild_id, name="a", type=0)
    b = c.create_channel(world.guild_id, name="b", type=0)
    emu.configure_rate_limits(per_route=(1, 5.0))
    c.get_channel(a["id"])
    c.get_channel(b["id"])  # another channel: another bucket, no wait
    with pytest.raises(RetryLater) as exc:  # the reset is 5 s away, max_retry_wait 1 s
        c.get_channel(a["id"])
    assert exc.value.retry_after is not None and 4.0 < exc.value.retry_after <= 5.0
    assert [call.status for call in emu.calls][-2:] == [200, 200]  # refused locally


def test_429_storm_is_retried(world: World) -> None:
    world.emu.rate_limit_storm(3, retry_after=0.05)
    guild = world.client.get_guild(world.guild_id)
    assert guild["id"] == world.guild_id
    assert [r.status for r in world.records] == [429, 429, 429, 200]
    assert world.emu.invalid_request_count == 3


def test_429_longer_than_max_retry_wait_raises_retry_later(world: World) -> None:
    c = world.client
    c.get_guild(world.guild_id)  # the client learns the route's bucket
    world.emu.rate_limit_storm(1, retry_after=2.0)
    started = time.monotonic()
    with pytest.raises(RetryLater) as exc:
        c.get_guild(world.guild_id)
    assert exc.value.status == 429 and exc.value.retry_after == pytest.approx(2.0)
    # The bucket stays blocked: the next call is refused without being sent.
    with pytest.raises(RetryLater) as again:
        c.get_guild(world.guild_id)
    assert again.value.status is None and again.value.retry_after is not None
    assert time.monotonic() - started < 1.0
    assert [r.status for r in world.records] == [200, 429]


def test_global_429_holds_back_every_route(world: World) -> None:
    c, emu = world.client, world.emu
    emu.rate_limit_storm(1, retry_after=0.4, global_=True)
    limited = threading.Event()
    hook_records: list[CallRecord] = []

    def on_call(record: CallRecord) -> None:
        hook_records.append(record)
        if record.status == 429:
            limited.set()

    c.on_call = on_call
    errors: list[BaseException] = []

    def first() -> None:
        try:
            c.get_guild(world.guild_id)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=first)
    thread.start()
    assert limited.wait(2.0)
    started = time.monotonic()
    c.list_guild_roles(world.guild_id)  # another route: waits for the global limit
    waited = time.monotonic() - started
    thread.join(3.0)
    assert not errors and not thread.is_alive()
    assert 0.25 <= waited < 2.0
    assert sorted(r.status for r in hook_records) == [200, 200, 429]
    assert [call.status for call in emu.calls].count(429) == 1


def test_emulator_global_limit_is_honoured(world: World) -> None:
    world.emu.configure_rate_limits(global_per_s=3)
    c = world.client
    started = time.monotonic()
    c.get_guild(world.guild_id)
    c.list_guild_roles(world.guild_id)
    c.list_guild_channels(world.guild_id)
    c.get_guild_member(world.guild_id, world.coach)  # the 4th within 1 s: global 429, wait
    assert time.monotonic() - started < 2.0
    statuses = [r.status for r in world.records]
    assert statuses[-1] == 200 and statuses.count(429) == 1
    bodyless = [call for call in world.emu.calls if call.status == 429]
    assert bodyless[0].route == "/guilds/{guild_id}/members/{user_id}"


# --- Failures -----------------------------------------------------------------------------


def test_server_error_is_retry_later_and_changes_nothing(world: World) -> None:
    c, emu = world.client, world.emu
    before = len(emu.channels(world.guild_id))
    emu.fail_next(1, status=500, route="POST /guilds/{guild_id}/channels")
    c.list_guild_roles(world.guild_id)  # another route is not affected
    with pytest.raises(RetryLater) as exc:
        c.create_channel(world.guild_id, name="s")
    assert exc.value.status == 500
    assert len(emu.channels(world.guild_id)) == before
    c.create_channel(world.guild_id, name="s")  # the fault is used up


def test_outage_is_retry_later(world: World) -> None:
    c, emu = world.client, world.emu
    emu.outage(True)
    for _ in range(2):
        with pytest.raises(RetryLater) as exc:
            c.get_guild(world.guild_id)
        assert exc.value.status == 503
    emu.outage(False)
    assert c.get_guild(world.guild_id)["id"] == world.guild_id


def test_timeout_is_retry_later(world: World) -> None:
    emu = world.emu
    records: list[CallRecord] = []
    with DiscordClient(emu.base_url, emu.bot_token, timeout=0.3,
                       on_call=records.append) as c:
        emu.timeout_next(1, 1.5)
        started = time.monotonic()
        with pytest.raises(RetryLater) as exc:
            c.create_channel(world.guild_id, name="slow")
        assert time.monotonic() - started < 1.2
        assert exc.value.status is None
        assert records[-1].status == 0
        # Discord did the work, only the answer was late: the channel exists. Callers
        # reconcile by listing (tag your channels), never by creating blindly again.
        assert "slow" in {ch["name"] for ch in c.list_guild_channels(world.guild_id)}


def test_connection_refused_is_retry_later() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    records: list[CallRecord] = []
    with DiscordClient(f"http://127.0.0.1:{port}/api/v10", "t", timeout=1.0,
                       on_call=records.append) as c, pytest.raises(RetryLater):
        c.get_current_user()
    assert [r.status for r in records] == [0]


def test_on_call_sees_every_attempt(world: World) -> None:
    c, emu = world.client, world.emu
    emu.rate_limit_storm(1, retry_after=0.01)
    c.get_guild(world.guild_id)
    emu.fail_next(1, status=502)
    with pytest.raises(RetryLater):
        c.list_guild_roles(world.guild_id)
    with pytest.raises(DiscordNotFound):
        c.get_channel("1")
    assert [(r.method, r.route, r.status) for r in world.records] == [
        ("GET", "/guilds/{guild_id}", 429), ("GET", "/guilds/{guild_id}", 200),
        ("GET", "/guilds/{guild_id}/roles", 502), ("GET", "/channels/{channel_id}", 404)]
    assert [(call.method, call.route, call.status) for call in emu.calls] == [
        (r.method, r.route, r.status) for r in world.records]
    assert all(r.duration_s >= 0 and r.at > 0 for r in world.records)


def test_client_is_thread_safe(world: World) -> None:
    c, emu = world.client, world.emu
    emu.configure_rate_limits(per_route=(5, 0.2))
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(4):
                c.create_channel(world.guild_id, name=f"t{n}-{i}", type=0)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not errors
    assert len([ch for ch in emu.channels(world.guild_id) if ch["name"].startswith("t")]) == 20
    assert sum(1 for r in world.records if r.status == 201) == 20


def test_audit_reason_is_url_encoded_and_decoded(world: World) -> None:
    reason = "séance 42 — grant / coach+student"
    ch = world.client.create_channel(world.guild_id, name="s", reason=reason)
    entry = next(e for e in world.emu.log if e.channel_id == ch["id"])
    assert entry.reason == reason and entry.details["actor"] == "bot"
    assert entry.at <= time.time()


# --- OAuth2 -------------------------------------------------------------------------------


def test_oauth2_code_exchange_refresh_and_users_me(world: World) -> None:
    c, emu = world.client, world.emu
    redirect = "http://app.test/accounts/discord/login/callback/"
    emu.register_oauth_app("cid", "secret", redirect_uris=[redirect])
    emu.authorize_as(world.student)
    authorize = httpx.get(f"{emu.url}/oauth2/authorize", params={
        "client_id": "cid", "redirect_uri": redirect, "response_type": "code",
        "scope": "identify guilds.join", "state": "xyz"}, timeout=2.0)
    assert authorize.status_code == 302
    location = urlsplit(authorize.headers["Location"])
    assert location.geturl().startswith(redirect)
    query = parse_qs(location.query)
    assert query["state"] == ["xyz"]

    tokens = c.exchange_oauth_code("cid", "secret", query["code"][0], redirect)
    assert tokens["token_type"] == "Bearer" and tokens["scope"] == "identify guilds.join"
    assert tokens["expires_in"] > 0
    me = c.get_current_user(bearer_token=tokens["access_token"])
    assert {k: me[k] for k in ("id", "username", "global_name", "avatar", "discriminator",
                               "mfa_enabled", "locale")} == {
        "id": world.student, "username": "student", "global_name": "student",
        "avatar": None, "discriminator": "0", "mfa_enabled": False, "locale": "en-US"}
    with pytest.raises(ActionRequired):  # a code is good once
        c.exchange_oauth_code("cid", "secret", query["code"][0], redirect)

    emu.expire_user_tokens(world.student)
    with pytest.raises(ActionRequired) as exc:
        c.get_current_user(bearer_token=tokens["access_token"])
    assert exc.value.status == 401

    with pytest.raises(ActionRequired) as exc:
        c.refresh_oauth_token("cid", "wrong", tokens["refresh_token"])
    assert exc.value.status == 401
    fresh = c.refresh_oauth_token("cid", "secret", tokens["refresh_token"])
    assert fresh["access_token"] != tokens["access_token"]
    assert c.get_current_user(bearer_token=fresh["access_token"])["id"] == world.student
    with pytest.raises(ActionRequired) as exc:  # refresh tokens rotate
        c.refresh_oauth_token("cid", "secret", tokens["refresh_token"])
    assert exc.value.status == 400 and "refresh_token" in exc.value.message
    # The bot's own user is still the bot.
    assert c.get_current_user()["bot"] is True


def test_oauth2_authorize_under_api_prefix_and_emulator_user(world: World) -> None:
    emu = world.emu
    emu.register_oauth_app("cid", "secret")
    answer = httpx.get(f"{emu.base_url}/oauth2/authorize", params={
        "client_id": "cid", "redirect_uri": "http://x.test/cb?a=1", "response_type": "code",
        "scope": "identify", "emulator_user": world.coach}, timeout=2.0)
    assert answer.status_code == 302
    code = parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]
    # Client credentials in the form work too (allauth sends them that way).
    tokens = httpx.post(f"{emu.base_url}/oauth2/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": "http://x.test/cb?a=1",
        "client_id": "cid", "client_secret": "secret"}, timeout=2.0).json()
    me = world.client.get_current_user(bearer_token=tokens["access_token"])
    assert me["id"] == world.coach

"""Linking Discord through allauth's connect flow, against the Discord emulator."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from allauth.socialaccount.models import SocialAccount, SocialToken
from django.db import connection
from django.test import Client

from coachgate.accounts import discord
from coachgate.accounts.models import DiscordLink, User
from coachgate.accounts.tasks import join_discord_guild
from coachgate.integrations.discord.client import ActionRequired, DiscordClient, RetryLater
from coachgate.integrations.discord.emulator import DiscordEmulator
from coachgate.kit import crypto
from tests.clients import Api
from tests.factories import make_student, token_for

CLIENT_ID, CLIENT_SECRET = "coachgate-client", "coachgate-client-secret"
PROVIDER_CLASS = "coachgate.accounts.discord_oauth.provider.CoachgateDiscordProvider"


class Discord:
    def __init__(self, emu: DiscordEmulator, guild_id: str) -> None:
        self.emu, self.guild_id = emu, guild_id

    def member_ids(self) -> set[str]:
        return {m["user"]["id"] for m in self.emu.members(self.guild_id)}

    def whoami(self, access_token: str) -> str:
        with DiscordClient(self.emu.base_url, self.emu.bot_token) as client:
            return str(client.get_current_user(bearer_token=access_token)["id"])


@pytest.fixture
def emu(settings: Any) -> Iterator[Discord]:
    emulator = DiscordEmulator().start()
    try:
        guild_id = emulator.create_guild("coaching")
        emulator.register_oauth_app(CLIENT_ID, CLIENT_SECRET)
        settings.COACHGATE = {**settings.COACHGATE, "DISCORD_API_URL": emulator.base_url,
                              "DISCORD_GUILD_ID": guild_id,
                              "DISCORD_BOT_TOKEN": emulator.bot_token}
        providers = {**settings.SOCIALACCOUNT_PROVIDERS}
        providers["discord"] = {**providers["discord"],
                                "APP": {"client_id": CLIENT_ID, "secret": CLIENT_SECRET}}
        settings.SOCIALACCOUNT_PROVIDERS = providers
        yield Discord(emulator, guild_id)
    finally:
        emulator.stop()


def connect(client: Client, emu: Discord, discord_user: str) -> Any:
    """Drive allauth's connect flow: our page → the emulator's authorize page → callback."""
    emu.emu.authorize_as(discord_user)
    start = client.post(discord.connect_url())
    assert start.status_code == 302, start.content.decode()[:500]
    authorize = start["Location"]
    assert authorize.startswith(f"{emu.emu.url}/oauth2/authorize?"), (
        f"allauth redirected to {authorize}: is SOCIALACCOUNT_PROVIDERS['discord']"
        f"['provider_class'] = {PROVIDER_CLASS!r} set?")
    query = parse_qs(urlsplit(authorize).query)
    assert set(query["scope"][0].split()) == {"identify", "guilds.join"}
    approved = httpx.get(authorize, follow_redirects=False)
    assert approved.status_code == 302
    callback = urlsplit(approved.headers["Location"])
    assert callback.path == "/accounts/discord/login/callback/"
    return client.get(f"{callback.path}?{callback.query}")


def _raw_tokens(user: User) -> tuple[str, str]:
    with connection.cursor() as cur:
        cur.execute("SELECT access_token, refresh_token FROM accounts_discordlink "
                    "WHERE user_id = %s", [user.pk])
        row = cur.fetchone()
    assert row is not None
    return str(row[0]), str(row[1])


def test_the_provider_class_setting_points_allauth_at_coachgate(settings):
    assert settings.SOCIALACCOUNT_PROVIDERS["discord"].get("provider_class") == PROVIDER_CLASS
    assert settings.SOCIALACCOUNT_STORE_TOKENS is False


def test_connect_flow_links_with_encrypted_tokens_then_joins_the_guild(
        db, emu, django_capture_on_commit_callbacks):
    from django.test import override_settings
    from django_tasks import task_backends

    student = make_student()
    discord_user = emu.emu.create_user("ada", global_name="Ada L.")
    client = Client()
    client.force_login(student)
    assert discord.verification_state(student) == "not_connected"

    with override_settings(TASKS={"default": {
            "BACKEND": "django_tasks.backends.dummy.DummyBackend"}}):
        with django_capture_on_commit_callbacks(execute=True):
            done = connect(client, emu, discord_user)
        # Linking wakes the task that adds the member to the guild (run below by hand).
        [woken] = task_backends["default"].results
    assert done.status_code == 302
    assert (woken.task.name, woken.args) == ("join_discord_guild", [student.pk])

    link = DiscordLink.objects.get(user=student)
    assert (link.discord_user_id, link.username) == (discord_user, "Ada L.")
    assert set(link.scopes.split()) == {"identify", "guilds.join"}
    assert link.token_expires_at is not None and link.token_expires_at > datetime.now(UTC)
    raw_access, raw_refresh = _raw_tokens(student)
    access, refresh = crypto.decrypt(raw_access), crypto.decrypt(raw_refresh)
    assert access and refresh and access not in raw_access and refresh not in raw_refresh
    assert emu.whoami(access) == discord_user  # the stored token is the real grant
    # allauth knows the account but keeps no token of its own.
    assert SocialAccount.objects.filter(user=student, provider="discord",
                                        uid=discord_user).exists()
    assert not SocialToken.objects.exists()

    assert discord.verification_state(student) == "connected_not_in_guild"
    assert discord_user not in emu.member_ids()
    assert join_discord_guild.call(student.pk) == "verified"
    assert discord_user in emu.member_ids()
    assert discord.verification_state(student) == "verified"
    assert discord.ensure_in_guild(student, now=datetime.now(UTC)) == "verified"
    r = Api(token_for(student)).get("/me/discord")
    assert r.json_body["state"] == "verified" and r.json_body["discord_user_id"] == discord_user


def test_reconnecting_refreshes_tokens_and_keeps_one_account(db, emu):
    student = make_student()
    discord_user = emu.emu.create_user("ada")
    client = Client()
    client.force_login(student)
    connect(client, emu, discord_user)
    discord.ensure_in_guild(student, now=datetime.now(UTC))
    first = _raw_tokens(student)
    connect(client, emu, discord_user)
    assert _raw_tokens(student) != first
    assert SocialAccount.objects.filter(user=student).count() == 1
    assert discord.verification_state(student) == "verified"  # same account: still a member


def test_a_discord_account_linked_to_someone_else_is_refused(db, emu):
    alice, bob = make_student("alice@test.example"), make_student("bob@test.example")
    discord_user = emu.emu.create_user("shared")
    alice_client, bob_client = Client(), Client()
    alice_client.force_login(alice)
    bob_client.force_login(bob)
    connect(alice_client, emu, discord_user)
    alice_tokens = _raw_tokens(alice)
    connect(bob_client, emu, discord_user)
    assert not DiscordLink.objects.filter(user=bob).exists()
    assert _raw_tokens(alice) == alice_tokens  # Bob's grant did not overwrite Alice's
    assert SocialAccount.objects.get(uid=discord_user).user == alice


def test_discord_is_never_a_way_to_log_in_or_sign_up(db, emu):
    emu.emu.authorize_as(emu.emu.create_user("stranger"))
    anonymous = Client()
    r = anonymous.post("/accounts/discord/login/")
    assert r.status_code == 302 and r["Location"].startswith("/accounts/login/")
    r = anonymous.post("/accounts/discord/login/?process=connect")
    assert r.status_code == 302 and r["Location"].startswith("/accounts/login/")
    student = make_student()
    client = Client()
    client.force_login(student)
    r = client.post("/accounts/discord/login/?process=login")
    assert r.status_code == 302 and r["Location"] == "/"
    assert User.objects.count() == 1 and not SocialAccount.objects.exists()


def test_unlink_removes_the_link_and_allauths_account(db, emu):
    student = make_student()
    discord_user = emu.emu.create_user("ada")
    client = Client()
    client.force_login(student)
    connect(client, emu, discord_user)
    assert Api(token_for(student)).delete("/me/discord").status_code == 204
    assert not DiscordLink.objects.exists() and not SocialAccount.objects.exists()
    assert discord.verification_state(student) == "not_connected"
    # Linking again works.
    connect(client, emu, discord_user)
    assert discord.verification_state(student) == "connected_not_in_guild"


def _direct_link(student: User, emu: Discord, *, scopes: tuple[str, ...] = (
        "identify", "guilds.join"), expires_at: datetime | None = None) -> tuple[str, dict]:
    discord_user = emu.emu.create_user("grace")
    grant = emu.emu.issue_user_token(discord_user, scopes, client_id=CLIENT_ID)
    discord.link_discord_account(
        student, discord_user_id=discord_user, username="grace",
        access_token=grant["access_token"], refresh_token=grant["refresh_token"],
        expires_at=expires_at or datetime.now(UTC) + timedelta(days=7),
        scopes=" ".join(scopes), now=datetime.now(UTC))
    return discord_user, grant


def test_ensure_in_guild_refreshes_an_expired_token_first(db, emu):
    student = make_student()
    now = datetime.now(UTC)
    discord_user, grant = _direct_link(student, emu, expires_at=now - timedelta(minutes=1))
    emu.emu.expire_user_tokens(discord_user)  # the old access token no longer works
    assert discord.ensure_in_guild(student, now=now) == "verified"
    assert discord_user in emu.member_ids()
    link = DiscordLink.objects.get(user=student)
    access, refresh = crypto.decrypt(link.access_token), crypto.decrypt(link.refresh_token)
    assert access != grant["access_token"] and refresh != grant["refresh_token"]
    assert link.token_expires_at is not None and link.token_expires_at > now
    assert emu.whoami(access) == discord_user
    assert link.checked_at == now


def test_a_member_already_in_the_server_needs_no_token(db, emu):
    student = make_student()
    discord_user, _ = _direct_link(student, emu)
    emu.emu.add_member(emu.guild_id, discord_user)
    DiscordLink.objects.filter(user=student).update(access_token="", refresh_token="")
    assert discord.ensure_in_guild(student, now=datetime.now(UTC)) == "verified"


def test_discord_errors_reach_the_caller_with_stable_codes(db, emu):
    student = make_student()
    _direct_link(student, emu, scopes=("identify",))  # no guilds.join grant
    with pytest.raises(ActionRequired):
        discord.ensure_in_guild(student, now=datetime.now(UTC))
    api = Api(token_for(student))
    r = api.post("/me/discord/join")
    assert r.status_code == 409 and r.json_body["code"] == "discord_action_required"
    emu.emu.outage(True)
    with pytest.raises(RetryLater):
        discord.ensure_in_guild(student, now=datetime.now(UTC))
    r = api.post("/me/discord/join")
    assert r.status_code == 503 and r.json_body["code"] == "discord_unavailable"
    assert discord.verification_state(student) == "connected_not_in_guild"


def test_the_cards_join_button_adds_the_member(db, emu):
    student = make_student()
    discord_user, _ = _direct_link(student, emu)
    client = Client()
    client.force_login(student)
    assert 'data-state="connected_not_in_guild"' in client.get("/sessions/").content.decode()
    r = client.post("/discord/join")
    assert r.status_code == 302
    assert discord_user in emu.member_ids()
    assert 'data-state="verified"' in client.get("/sessions/").content.decode()

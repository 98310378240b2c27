"""The platform's Discord configuration, the link API and its permissions (no network)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from django.test import Client

from coachgate.accounts import discord
from coachgate.accounts.models import DiscordGuildConfig, DiscordLink
from coachgate.kit import crypto
from coachgate.kit.errors import Forbidden, InvalidInput
from coachgate.kit.metrics import DISCORD_CALLS
from tests.clients import Api
from tests.factories import make_admin, make_student, token_for

NOW = datetime(2031, 3, 1, 12, 0, tzinfo=UTC)
BOT_TOKEN = "bot-secret-token-" + "x" * 40


@pytest.fixture
def no_env_guild(settings):
    settings.COACHGATE = {**settings.COACHGATE, "DISCORD_GUILD_ID": "", "DISCORD_BOT_TOKEN": "",
                          "DISCORD_API_URL": "https://discord.com/api/v10"}


def _link(user, discord_id: str = "111", member: bool = False) -> DiscordLink:
    link = discord.link_discord_account(
        user, discord_user_id=discord_id, username=f"user{discord_id}",
        access_token=f"access-{discord_id}", refresh_token=f"refresh-{discord_id}",
        expires_at=NOW + timedelta(days=7), scopes="identify guilds.join", now=NOW)
    if member:
        discord.record_guild_membership(discord_id, True, now=NOW)
    return link


def test_guild_settings_come_from_the_admin_row_with_the_environment_as_fallback(
        db, settings, no_env_guild):
    assert discord.guild_settings() is None and discord.bot_client() is None
    settings.COACHGATE = {**settings.COACHGATE, "DISCORD_GUILD_ID": "900",
                          "DISCORD_BOT_TOKEN": "env-token"}
    gs = discord.guild_settings()
    assert gs is not None and (gs.guild_id, gs.bot_token) == ("900", "env-token")
    assert gs.api_url == "https://discord.com/api/v10"
    discord.save_guild_config(guild_id="901", bot_token=BOT_TOKEN, category_id="55",
                              api_url="http://127.0.0.1:9/api/v10/")
    gs = discord.guild_settings()
    assert gs is not None
    assert (gs.guild_id, gs.bot_token, gs.category_id, gs.api_url) == (
        "901", BOT_TOKEN, "55", "http://127.0.0.1:9/api/v10")
    assert BOT_TOKEN not in repr(gs) and "env-token" not in repr(gs)
    stored = DiscordGuildConfig.objects.get()
    assert BOT_TOKEN not in stored.bot_token and crypto.decrypt(stored.bot_token) == BOT_TOKEN
    # Clearing a field brings the environment back; None leaves it alone.
    discord.save_guild_config(bot_token="", guild_id=None)
    gs = discord.guild_settings()
    assert gs is not None and (gs.guild_id, gs.bot_token) == ("901", "env-token")
    assert discord.oauth_authorize_url() == "http://127.0.0.1:9/oauth2/authorize"


def test_guild_config_is_validated_and_admin_only(db, no_env_guild):
    student = make_student()
    with pytest.raises(Forbidden):
        discord.save_guild_config(guild_id="1", actor=student)
    with pytest.raises(InvalidInput):
        discord.save_guild_config(guild_id="not-a-snowflake")
    with pytest.raises(InvalidInput):
        discord.save_guild_config(api_url="ftp://example.com")


def test_bot_client_counts_every_call_and_chains_on_call(db, no_env_guild):
    discord.save_guild_config(guild_id="901", bot_token=BOT_TOKEN,
                              api_url="http://discord.test/api/v10")
    seen: list[object] = []

    def answer(request: httpx.Request) -> httpx.Response:
        assert request.headers["Authorization"] == f"Bot {BOT_TOKEN}"
        return httpx.Response(200, json={"id": "901", "name": "g"})

    before = DISCORD_CALLS.labels("GET", "/guilds/{guild_id}", "200")._value.get()
    client = discord.bot_client(transport=httpx.MockTransport(answer), on_call=seen.append)
    assert client is not None
    with client:
        assert client.get_guild("901")["name"] == "g"
    assert DISCORD_CALLS.labels("GET", "/guilds/{guild_id}", "200")._value.get() == before + 1
    assert len(seen) == 1 and BOT_TOKEN not in repr(client)


def test_states_come_from_the_link_without_network(db, no_env_guild):
    student = make_student()
    assert discord.verification_state(student) == "not_connected"
    assert discord.discord_user_id(student) is None
    assert discord.ensure_in_guild(student, now=NOW) == "not_connected"
    link = _link(student)
    assert discord.verification_state(student) == "connected_not_in_guild"
    assert discord.discord_user_id(student) == "111"
    assert "access-111" not in link.access_token and "refresh-111" not in link.refresh_token
    assert "access-111" not in repr(link)
    with pytest.raises(discord.DiscordNotConfigured):
        discord.ensure_in_guild(student, now=NOW)  # needs the guild to add the member
    discord.record_guild_membership("111", True, now=NOW)
    assert discord.verification_state(student) == "verified"
    assert discord.ensure_in_guild(student, now=NOW) == "verified"  # no call needed
    # Linking another Discord account replaces the link and forgets the membership.
    _link(student, "222")
    assert DiscordLink.objects.get().discord_user_id == "222"
    assert discord.verification_state(student) == "connected_not_in_guild"


def test_me_discord_api_is_personal_and_needs_authentication(db, no_env_guild):
    alice, bob = make_student("alice@test.example"), make_student("bob@test.example")
    _link(alice, "111", member=True)
    assert Api().get("/me/discord").status_code == 401
    assert Api().delete("/me/discord").status_code == 401
    assert Api().post("/me/discord/join").status_code == 401
    mine = Api(token_for(alice)).get("/me/discord")
    assert mine.status_code == 200
    assert mine.json_body == {"state": "verified", "username": "user111",
                              "discord_user_id": "111",
                              "connect_url": "/accounts/discord/login/?process=connect"}
    theirs = Api(token_for(bob)).get("/me/discord").json_body
    assert theirs["state"] == "not_connected" and theirs["discord_user_id"] is None
    # Bob unlinking touches only Bob.
    assert Api(token_for(bob)).delete("/me/discord").status_code == 204
    assert DiscordLink.objects.filter(user=alice).exists()
    joined = Api(token_for(bob)).post("/me/discord/join")
    assert joined.status_code == 200 and joined.json_body["state"] == "not_connected"
    assert Api(token_for(alice)).delete("/me/discord").status_code == 204
    assert Api(token_for(alice)).get("/me/discord").json_body["state"] == "not_connected"


def test_join_without_a_configured_guild_answers_a_stable_code(db, no_env_guild):
    student = make_student()
    _link(student)
    r = Api(token_for(student)).post("/me/discord/join")
    assert r.status_code == 503 and r.json_body["code"] == "discord_not_configured"


def test_admin_guild_config_api_never_returns_the_token(db, no_env_guild):
    admin, student = make_admin(), make_student()
    body = {"guild_id": "901", "bot_token": BOT_TOKEN, "category_id": "77",
            "api_url": "http://127.0.0.1:9/api/v10"}
    assert Api().get("/admin/discord").status_code == 401
    assert Api(token_for(student)).get("/admin/discord").status_code == 403
    r = Api(token_for(student)).put("/admin/discord", body)
    assert r.status_code == 403 and r.json_body["code"] == "forbidden"
    assert not DiscordGuildConfig.objects.exists()
    api = Api(token_for(admin))
    r = api.put("/admin/discord", body)
    assert r.status_code == 200, r.content
    assert r.json_body["bot_token_set"] is True and r.json_body["configured"] is True
    assert r.json_body["guild_id"] == "901" and r.json_body["category_id"] == "77"
    for response in (r, api.get("/admin/discord")):
        assert BOT_TOKEN not in response.content.decode()
        assert "bot_token" not in response.json_body
    stored = DiscordGuildConfig.objects.get().bot_token
    assert stored and stored not in api.get("/admin/discord").content.decode()
    # Changing another field keeps the token.
    api.put("/admin/discord", {"category_id": ""})
    assert discord.guild_settings().bot_token == BOT_TOKEN  # type: ignore[union-attr]
    for bad in ({"guild_id": "abc"}, {"api_url": "http://"}, {"api_url": "javascript:x"},
                {"bot_token": "a b\nX-Injected: 1"}, {"category_id": "١٢٣"}):
        r = api.put("/admin/discord", bad)
        assert r.status_code == 422 and r.json_body["code"] == "invalid_input", bad
    assert discord.guild_settings().bot_token == BOT_TOKEN  # type: ignore[union-attr]


def test_admin_pages_never_show_tokens(db, no_env_guild):
    admin = make_admin()
    student = make_student()
    _link(student)
    client = Client()
    client.force_login(admin)
    r = client.post("/admin/accounts/discordguildconfig/add/", {
        "guild_id": "901", "new_bot_token": BOT_TOKEN, "category_id": "",
        "archive_category_id": "", "api_url": "http://127.0.0.1:9/api/v10"})
    assert r.status_code == 302, r.content.decode()[:2000]
    row = DiscordGuildConfig.objects.get()
    assert crypto.decrypt(row.bot_token) == BOT_TOKEN
    page = client.get(f"/admin/accounts/discordguildconfig/{row.pk}/change/").content.decode()
    assert "Bot token stored" in page
    assert BOT_TOKEN not in page and row.bot_token not in page
    # Saving the form with an empty token field keeps the token.
    r = client.post(f"/admin/accounts/discordguildconfig/{row.pk}/change/", {
        "guild_id": "902", "new_bot_token": "", "category_id": "", "archive_category_id": "",
        "api_url": ""})
    assert r.status_code == 302
    gs = discord.guild_settings()
    assert gs is not None and (gs.guild_id, gs.bot_token) == ("902", BOT_TOKEN)
    r = client.post(f"/admin/accounts/discordguildconfig/{row.pk}/change/", {
        "guild_id": "not-digits", "new_bot_token": "", "category_id": "",
        "archive_category_id": "", "api_url": ""})
    assert r.status_code == 200 and "snowflake" in r.content.decode()
    link = DiscordLink.objects.get()
    page = client.get(f"/admin/accounts/discordlink/{link.pk}/change/").content.decode()
    assert "user111" in page
    assert link.access_token not in page and link.refresh_token not in page
    assert "access-111" not in page and "refresh-111" not in page


def test_the_sessions_page_shows_the_verification_card(db, no_env_guild):
    student = make_student()
    client = Client()
    client.force_login(student)
    page = client.get("/sessions/").content.decode()
    assert 'data-state="not_connected"' in page
    assert "/accounts/discord/login/?process=connect" in page
    _link(student)
    page = client.get("/sessions/").content.decode()
    assert 'data-state="connected_not_in_guild"' in page and "user111" in page
    discord.record_guild_membership("111", True, now=NOW)
    assert 'data-state="verified"' in client.get("/sessions/").content.decode()

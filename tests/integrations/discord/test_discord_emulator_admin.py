"""``coachgate emulator`` can be driven from outside: users, members, OAuth2 grants and
applications are made over HTTP under /_emulator/, and its audit log is read there."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from coachgate.integrations.discord.emulator import DiscordEmulator


def test_an_outside_tool_makes_users_and_grants_and_reads_the_audit_log(
        served: dict[str, Any]) -> None:
    guild, admin_url = served["guild_id"], served["admin_url"]
    assert admin_url == served["url"] + "/_emulator"
    bot = {"Authorization": f"Bot {served['bot_token']}"}
    with httpx.Client(timeout=5.0) as http:
        about = http.get(admin_url).json()
        assert about["guilds"] == [{"id": guild, "name": "outside"}]
        assert about["bot_user_id"] == served["bot_user_id"]

        bob = http.post(f"{admin_url}/users", json={"username": "bob", "guild_ids": [guild]})
        assert bob.status_code == 201 and bob.json()["username"] == "bob"
        carol = http.post(f"{admin_url}/users", json={"username": "carol"}).json()
        grant = http.post(f"{admin_url}/oauth2/grants", json={
            "user_id": carol["id"], "scopes": ["identify", "guilds.join"]})
        assert grant.status_code == 201
        token = grant.json()
        assert token["token_type"] == "Bearer" and token["scope"] == "identify guilds.join"

        # The grant works on Discord's own routes: as the user, and for the bot to add them.
        me = http.get(f"{served['base_url']}/users/@me",
                      headers={"Authorization": f"Bearer {token['access_token']}"})
        assert me.json()["id"] == carol["id"]
        added = http.put(f"{served['base_url']}/guilds/{guild}/members/{carol['id']}",
                         json={"access_token": token["access_token"]}, headers=bot)
        assert added.status_code == 201
        member = http.get(f"{served['base_url']}/guilds/{guild}/members/{bob.json()['id']}",
                          headers=bot)
        assert member.status_code == 200

        log = http.get(f"{admin_url}/audit-log").json()
        joins = [(e["user_id"], e["details"]["actor"]) for e in log["entries"]
                 if e["action"] == "member_add"]
        assert (bob.json()["id"], "setup") in joins and (carol["id"], "bot") in joins
        assert coach_joined(log, served["users"]["coach"])
        assert [e["position"] for e in log["entries"]] == list(range(1, log["next"] + 1))
        # Paging: only what happened after a position.
        page = http.get(f"{admin_url}/audit-log", params={"after": log["next"] - 1,
                                                           "limit": 5}).json()
        assert [e["position"] for e in page["entries"]] == [log["next"]]
        assert page["next"] == log["next"]


def coach_joined(log: dict[str, Any], coach: str) -> bool:
    return any(e["action"] == "member_add" and e["user_id"] == coach for e in log["entries"])


@pytest.fixture
def emu() -> Iterator[DiscordEmulator]:
    with DiscordEmulator() as emulator:
        yield emulator


@pytest.mark.parametrize(("method", "path", "body", "status", "code"), [
    ("POST", "/users", {"username": ""}, 400, 50035),
    ("POST", "/users", {"username": "x" * 33}, 400, 50035),
    ("POST", "/users", {"username": "x", "guild_ids": "1"}, 400, 50035),
    ("POST", "/users", {"username": "x", "guild_ids": ["999"]}, 404, 10004),
    ("POST", "/users", [1, 2], 400, 50035),
    ("POST", "/oauth2/grants", {"user_id": "999"}, 404, 10013),
    ("POST", "/oauth2/grants", {"user_id": None}, 400, 50035),
    ("POST", "/oauth2/grants", {"user_id": "BOT", "scopes": []}, 400, 50035),
    ("POST", "/oauth2/grants", {"user_id": "BOT", "expires_in": -1}, 400, 50035),
    ("POST", "/oauth2/applications", {"client_id": "x"}, 400, 50035),
    ("POST", "/guilds/999/members", {"user_id": "BOT"}, 404, 10004),
    ("POST", "/guilds/GUILD/members", {"user_id": "1"}, 404, 10013),
    ("POST", "/guilds/GUILD/members", {"user_id": "BOT", "role_ids": ["5"]}, 400, 50035),
    ("GET", "/audit-log?limit=0", None, 400, 50035),
    ("GET", "/audit-log?after=x", None, 400, 50035),
    ("GET", "/nothing-here", None, 404, 0),
])
def test_bad_admin_requests_are_4xx_with_discords_codes(
        emu: DiscordEmulator, method: str, path: str, body: Any, status: int,
        code: int) -> None:
    guild = emu.create_guild()
    path = path.replace("GUILD", guild)
    if isinstance(body, dict):
        body = {k: (emu.bot_user_id if v == "BOT" else v) for k, v in body.items()}
    before = len(emu.log)
    r = httpx.request(method, f"{emu.url}/_emulator{path}", json=body, timeout=5.0)
    assert (r.status_code, r.json()["code"]) == (status, code)
    assert len(emu.log) == before  # nothing changed


def test_invalid_json_is_refused(emu: DiscordEmulator) -> None:
    r = httpx.post(f"{emu.url}/_emulator/users", content=b"{nope",
                   headers={"Content-Type": "application/json"}, timeout=5.0)
    assert (r.status_code, r.json()["code"]) == (400, 50109)


def test_members_and_applications_over_http(emu: DiscordEmulator) -> None:
    guild = emu.create_guild()
    role = emu.create_role(guild, "helpers")
    user = httpx.post(f"{emu.url}/_emulator/users", json={"username": "dan"}).json()
    joined = httpx.post(f"{emu.url}/_emulator/guilds/{guild}/members",
                        json={"user_id": user["id"], "role_ids": [role]})
    assert joined.status_code == 201 and joined.json()["roles"] == [role]
    assert any(m["user"]["id"] == user["id"] for m in emu.members(guild))
    app = httpx.post(f"{emu.url}/_emulator/oauth2/applications", json={
        "client_id": "tool", "client_secret": "s3cret",
        "redirect_uris": ["http://127.0.0.1:9/cb"]})
    assert app.status_code == 201
    assert "tool" in httpx.get(f"{emu.url}/_emulator").json()["oauth_client_ids"]
    # The application's flow works: authorize as the user, then trade the code.
    emu.authorize_as(user["id"])
    page = httpx.get(f"{emu.url}/oauth2/authorize", params={
        "client_id": "tool", "redirect_uri": "http://127.0.0.1:9/cb",
        "response_type": "code", "scope": "identify"})
    assert page.status_code == 302 and "code=" in page.headers["Location"]

"""The emulator answers as Discord's official OpenAPI document says Discord does, and
coachgate asks as it says Discord accepts.

The schemas are Discord's own (tests/specs/discord, cut unchanged from
github.com/discord/discord-api-spec). Every exchange coachgate's real client has with the
emulator is recorded at the transport (request body and answer), matched to its operation
in the document and validated: the request body against the operation's request schema,
a 2xx answer against its response schema, a 4xx against ``ErrorResponse`` and a 429
against ``RatelimitedResponse``. A few routes are also driven over plain HTTP, for what
coachgate's client never sends (``with_counts=1``, an overwrite typed ``"member"``) and
for ``GET /oauth2/applications/@me``, which third-party libraries call.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator

from coachgate.integrations.discord import permissions as P
from coachgate.integrations.discord.client import (
    ActionRequired,
    DiscordClient,
    DiscordNotFound,
    RetryLater,
)
from coachgate.integrations.discord.emulator import DiscordEmulator

SPEC_PATH = Path(__file__).parents[2] / "specs" / "discord" / "openapi-subset.json"


@cache
def spec() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SPEC_PATH.read_text())
    return loaded


@cache
def _operations() -> list[tuple[str, re.Pattern[str], str]]:
    out = []
    for template, item in spec()["paths"].items():
        pattern = re.sub(r"\\\{\w+\\\}", r"[^/]+", re.escape(template))
        for method in item:
            if method != "parameters":
                out.append((method.upper(), re.compile(f"^{pattern}$"), template))
    return out


def operation(method: str, path: str) -> tuple[str, dict[str, Any]]:
    """The document's (template, operation) for a request path under /api/v10."""
    for m, pattern, template in _operations():
        if m == method and pattern.match(path):
            return template, spec()["paths"][template][method.lower()]
    raise AssertionError(f"{method} {path} is not an operation of Discord's document")


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str):
        _, section, name = ref.removeprefix("#/").split("/")
        resolved: dict[str, Any] = spec()["components"][section][name]
        return resolved
    return node


def errors_against(schema: dict[str, Any], instance: Any) -> list[str]:
    """Every way ``instance`` breaks ``schema`` (refs resolve inside the document)."""
    root = {**spec(), **schema, "$schema": "https://json-schema.org/draft/2020-12/schema"}
    validator = Draft202012Validator(root)
    out = []
    for error in sorted(validator.iter_errors(instance), key=lambda e: list(e.path)):
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        # A oneOf failure says little alone: show the branch that came closest.
        detail = error.message[:300]
        if error.context:
            best = min(error.context, key=lambda e: len(list(e.absolute_path)) * -1)
            detail += f" [closest: {'/'.join(map(str, best.absolute_path))}: " \
                      f"{best.message[:200]}]"
        out.append(f"{where}: {detail}")
    return out


def response_schema(op: dict[str, Any], status: int) -> dict[str, Any] | None:
    responses = op["responses"]
    answer = responses.get(str(status))
    if answer is None and 400 <= status < 500:
        answer = responses.get("4XX")
    assert answer is not None, f"status {status} is not an answer of this operation"
    content = _resolve(answer).get("content")
    if content is None:
        return None
    schema: dict[str, Any] = content["application/json"]["schema"]
    return schema


def request_schema(op: dict[str, Any]) -> dict[str, Any] | None:
    body = op.get("requestBody")
    if body is None:
        return None
    schema: dict[str, Any] = body["content"]["application/json"]["schema"]
    return schema


# --- Recording what coachgate's client sends and gets --------------------------------


@dataclass
class Exchange:
    method: str
    path: str  # after /api/v10
    request: Any
    status: int
    response: Any


class RecordingTransport(httpx.HTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.exchanges: list[Exchange] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        response.read()
        ctype = request.headers.get("content-type", "")
        body: Any = None
        if request.content and ctype.startswith("application/json"):
            body = json.loads(request.content)
        path = request.url.path.removeprefix("/api/v10")
        answer = json.loads(response.content) if response.content else None
        self.exchanges.append(Exchange(request.method, path, body, response.status_code,
                                       answer))
        return response


#: Form errors (a 50035's ``errors``) as Discord sends them: its reference's example and
#: every real answer carry a string code per field ("BASE_TYPE_REQUIRED"), where the
#: document reuses its integer-coded ``Error``. Only that one leaf differs from
#: ``ErrorDetails``; the rest of the answer is checked against the document.
FORM_ERRORS = {
    "$defs": {
        "details": {"oneOf": [
            {"type": "object", "additionalProperties": {"$ref": "#/$defs/details"},
             "not": {"required": ["_errors"]}},
            {"type": "object", "additionalProperties": False, "required": ["_errors"],
             "properties": {"_errors": {"type": "array", "minItems": 1, "items": {
                 "type": "object", "required": ["code", "message"],
                 "properties": {"code": {"type": "string", "pattern": "^[A-Z0-9_]+$"},
                                "message": {"type": "string"}}}}}},
        ]},
    },
    "$ref": "#/$defs/details",
}


def form_errors_violations(errors: Any) -> list[str]:
    validator = Draft202012Validator(FORM_ERRORS)
    return [f"errors/{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}"
            for e in validator.iter_errors(errors)]


def violations(exchanges: list[Exchange]) -> list[str]:
    out = []
    for ex in exchanges:
        if ex.path == "/oauth2/token":  # not in Discord's document (see the README)
            continue
        template, op = operation(ex.method, ex.path)
        where = f"{ex.method} {template} -> {ex.status}"
        req = request_schema(op)
        if ex.request is not None:
            assert req is not None, f"{where}: coachgate sends a body this route has not"
            out += [f"{where} request: {e}" for e in errors_against(req, ex.request)]
        schema = response_schema(op, ex.status)
        if schema is None:
            if ex.response is not None:
                out.append(f"{where}: an answer body where Discord sends none")
            continue
        answer = ex.response
        if ex.status >= 400 and isinstance(answer, dict) and "errors" in answer:
            out += [f"{where} answer: {e}" for e in form_errors_violations(answer["errors"])]
            answer = {k: v for k, v in answer.items() if k != "errors"}
        out += [f"{where} answer: {e}" for e in errors_against(schema, answer)]
    return out


@dataclass
class Setup:
    emu: DiscordEmulator
    client: DiscordClient
    transport: RecordingTransport
    guild_id: str
    coach: str
    student: str


@pytest.fixture
def setup() -> Iterator[Setup]:
    with DiscordEmulator() as emu:
        guild_id = emu.create_guild("fidelity")
        coach, student = emu.create_user("coach"), emu.create_user("student")
        emu.add_member(guild_id, coach)
        transport = RecordingTransport()
        with DiscordClient(emu.base_url, emu.bot_token, timeout=5.0, max_retry_wait=0.5,
                           transport=transport) as client:
            yield Setup(emu, client, transport, guild_id, coach, student)


def drive_everything_coachgate_does(s: Setup) -> None:
    """Every call coachgate makes (access provisioning in its three modes, archive and
    delete, linking a student, DMs), and the errors it meets."""
    c, g = s.client, s.guild_id
    bot = c.get_current_user()["id"]
    grant = s.emu.issue_user_token(s.student)
    assert c.get_current_user(bearer_token=grant["access_token"])["id"] == s.student
    c.get_user(s.student)
    c.get_guild(g)
    c.add_guild_member(g, s.student, grant["access_token"], reason="link")
    assert c.add_guild_member(g, s.student, grant["access_token"]) is None  # already in
    c.get_guild_member(g, s.student)
    everyone_deny = P.VIEW_CHANNEL | P.CONNECT
    member_allow = P.VIEW_CHANNEL | P.CONNECT | P.SPEAK
    bot_allow = P.VIEW_CHANNEL | P.CONNECT | P.MANAGE_CHANNELS
    base = [{"id": g, "type": 0, "allow": 0, "deny": everyone_deny},
            {"id": bot, "type": 1, "allow": bot_allow, "deny": 0}]
    category = c.create_channel(g, name="coachgate sessions 1", type=4,
                                permission_overwrites=base, reason="category")
    archive = c.create_channel(g, name="archive", type=4, permission_overwrites=base)
    voice = c.create_channel(
        g, name="cg-1-coach", type=2, parent_id=category["id"], reason="private channel",
        permission_overwrites=[*base, {"id": s.coach, "type": 1, "allow": member_allow,
                                       "deny": 0}])
    c.edit_channel_permissions(voice["id"], s.student, allow=member_allow, deny=0, type=1,
                               reason="grant")
    c.delete_channel_permission(voice["id"], s.student, reason="revoke")
    c.list_guild_channels(g)
    c.get_channel(voice["id"])
    # session_role / offer_role modes
    role = c.create_role(g, name="cg-1 session", reason="session role")
    c.list_guild_roles(g)
    c.add_member_role(g, s.student, role["id"], reason="grant")
    c.remove_member_role(g, s.student, role["id"], reason="revoke")
    c.delete_role(g, role["id"], reason="delete role")
    # archive: access closed, moved, renamed
    c.modify_channel(voice["id"], reason="archive", parent_id=archive["id"],
                     permission_overwrites=base)
    c.modify_channel(voice["id"], reason="archive", name="archived-cg-1-session")
    c.modify_channel(voice["id"], name="archived-again")  # the second rename in 10 minutes
    with pytest.raises(RetryLater):  # the third: Discord's hidden limit
        c.modify_channel(voice["id"], name="archived-thrice")
    # messages: a DM and a channel message
    dm = c.create_dm(s.student)
    c.send_message(dm["id"], "Your session starts in 15 minutes.")
    text = c.create_channel(g, name="announcements", type=0)
    c.send_message(text["id"], "hello")
    c.delete_channel(text["id"])
    c.delete_channel(voice["id"], reason="revoke and delete")
    # the errors coachgate meets: gone, forbidden, malformed, rate limited
    with pytest.raises(DiscordNotFound):
        c.delete_channel(voice["id"])
    with pytest.raises(DiscordNotFound):
        c.remove_member_role(g, s.student, "1")
    with pytest.raises(ActionRequired):  # 50035: a voice channel is no category
        c.create_channel(g, name="x", type=2, parent_id=voice["id"])
    s.emu.set_bot_permissions(g, P.VIEW_CHANNEL)
    with pytest.raises(ActionRequired):
        c.create_role(g, name="nope")
    s.emu.rate_limit_storm(1, retry_after=0.01)
    c.get_guild(g)  # one 429, retried


def test_every_exchange_of_coachgate_matches_discords_schemas(setup: Setup) -> None:
    drive_everything_coachgate_does(setup)
    statuses = {ex.status for ex in setup.transport.exchanges}
    assert {200, 201, 204, 400, 403, 404, 429} <= statuses
    routes = {operation(ex.method, ex.path)[0] for ex in setup.transport.exchanges}
    used = set(spec()["paths"]) - {"/oauth2/applications/@me"}
    assert routes == used, "every vendored operation coachgate uses is exercised"
    assert violations(setup.transport.exchanges) == []


def test_the_validator_catches_a_missing_field(setup: Setup) -> None:
    """The check above can fail: a user without ``username`` breaks the schema."""
    _, op = operation("GET", "/users/1")
    schema = response_schema(op, 200)
    assert schema is not None
    user = setup.client.get_user(setup.coach)
    assert errors_against(schema, user) == []
    broken = {k: v for k, v in user.items() if k != "username"}
    assert any("username" in e for e in errors_against(schema, broken))


# --- Over plain HTTP: what coachgate's client does not send -----------------------------


def _http(s: Setup) -> httpx.Client:
    return httpx.Client(base_url=s.emu.base_url, timeout=5.0,
                        headers={"Authorization": f"Bot {s.emu.bot_token}"})


def _check(method: str, path: str, response: httpx.Response, request: Any = None) -> None:
    template, _ = operation(method, path)
    ex = Exchange(method, path, request, response.status_code,
                  response.json() if response.content else None)
    assert violations([ex]) == [], f"{method} {template}"


def test_get_guild_with_counts_1_counts(setup: Setup) -> None:
    with _http(setup) as http:
        for flag in ("1", "true", "True"):
            r = http.get(f"/guilds/{setup.guild_id}", params={"with_counts": flag})
            assert r.status_code == 200
            _check("GET", f"/guilds/{setup.guild_id}", r)
            # the owner, the bot and the coach
            assert r.json()["approximate_member_count"] == 3, flag
            assert isinstance(r.json()["approximate_presence_count"], int)
        plain = http.get(f"/guilds/{setup.guild_id}", params={"with_counts": "false"})
        assert "approximate_member_count" not in plain.json()


def test_an_overwrite_typed_member_is_refused_as_discord_v10_does(setup: Setup) -> None:
    g = setup.guild_id
    with _http(setup) as http:
        ch = http.post(f"/guilds/{g}/channels", json={"name": "x", "type": 2}).json()
        for kind in ("member", "role", True, 2, None):
            r = http.put(f"/channels/{ch['id']}/permissions/{setup.coach}",
                         json={"type": kind, "allow": str(P.VIEW_CHANNEL), "deny": "0"})
            assert r.status_code == 400, kind
            assert r.json()["code"] == 50035
            _check("PUT", f"/channels/{ch['id']}/permissions/{setup.coach}", r)
        r = http.post(f"/guilds/{g}/channels", json={
            "name": "y", "type": 2,
            "permission_overwrites": [{"id": setup.coach, "type": "member", "allow": "0"}]})
        assert r.status_code == 400 and r.json()["code"] == 50035
        ok = http.put(f"/channels/{ch['id']}/permissions/{setup.coach}",
                      json={"type": 1, "allow": P.VIEW_CHANNEL, "deny": 0})
        assert ok.status_code == 204
    stored = setup.emu.channel(ch["id"])
    assert stored is not None and stored["permission_overwrites"][0]["type"] == 1


def test_current_application_and_users_answer_per_schema(setup: Setup) -> None:
    with _http(setup) as http:
        app = http.get("/oauth2/applications/@me")
        assert app.status_code == 200
        _check("GET", "/oauth2/applications/@me", app)
        assert app.json()["bot"]["id"] == setup.emu.bot_user_id
        me = http.get("/users/@me")
        _check("GET", "/users/@me", me)
        assert me.json()["mfa_enabled"] is False and me.json()["locale"]
        unauthorized = httpx.get(f"{setup.emu.base_url}/oauth2/applications/@me")
        assert unauthorized.status_code == 401
        _check("GET", "/oauth2/applications/@me", unauthorized)

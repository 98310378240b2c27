"""The emulator answers as Zoom's published API description says Zoom does, and coachgate
asks as it says Zoom accepts.

The schemas are Zoom's own (tests/specs/zoom, cut unchanged from github.com/zoom/api's
``openapi.v2.json``, MIT). Every exchange coachgate's real client has with the emulator is
recorded at the transport, matched to its operation and validated: the request body
against the operation's ``body`` parameter, a 2xx answer against its response schema, an
error against Zoom's documented error body ``{"code", "message"}``.

That document dates from November 2018. Two of its types have changed since, and the
test checks them as Zoom answers today (its 2023 Meeting API reference, which carries no
open licence and so is not vendored): a meeting's ``id`` and a user's ``pmi`` are
integers (int64), not strings. Everything else is checked as the document says.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft4Validator

from coachgate.integrations.zoom.client import (
    ActionRequired,
    RetryLater,
    ZoomClient,
    ZoomNotFound,
)
from coachgate.integrations.zoom.emulator import ZoomEmulator

from .conftest import CLIENT_ID, T0

SPEC_PATH = Path(__file__).parents[2] / "specs" / "zoom" / "openapi-subset.json"

#: Zoom's error body (https://developers.zoom.us/docs/api/rest/errors/, not in the document).
ERROR = {"type": "object", "required": ["code", "message"],
         "properties": {"code": {"type": "integer"}, "message": {"type": "string"}}}


def _as_int64(node: dict[str, Any]) -> None:
    assert node.get("type") == "string", "the document changed: look at this override again"
    node["type"] = "integer"


@cache
def spec() -> dict[str, Any]:
    """The vendored document with the two types Zoom has changed since 2018 (see above)."""
    doc: dict[str, Any] = copy.deepcopy(json.loads(SPEC_PATH.read_text()))
    for path, method in (("/users/{userId}/meetings", "post"),
                         ("/meetings/{meetingId}", "get")):
        answer = doc["paths"][path][method]["responses"]["201" if method == "post" else "200"]
        _as_int64(answer["schema"]["allOf"][0]["properties"]["id"])
    _as_int64(doc["definitions"]["User"]["properties"]["pmi"])
    return doc


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
    for m, pattern, template in _operations():
        if m == method and pattern.match(path):
            return template, spec()["paths"][template][method.lower()]
    raise AssertionError(f"{method} {path} is not an operation of Zoom's document")


def errors_against(schema: dict[str, Any], instance: Any) -> list[str]:
    """Every way ``instance`` breaks ``schema`` (refs resolve inside the document)."""
    root = {**schema, "definitions": spec()["definitions"]}
    out = []
    for error in sorted(Draft4Validator(root).iter_errors(instance),
                        key=lambda e: list(e.absolute_path)):
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        out.append(f"{where}: {error.message[:300]}")
    return out


def body_schema(op: dict[str, Any]) -> dict[str, Any] | None:
    for parameter in op.get("parameters", []):
        if parameter.get("in") == "body":
            schema: dict[str, Any] = parameter["schema"]
            return schema
    return None


@dataclass
class Exchange:
    method: str
    path: str  # after /v2
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
        body = json.loads(request.content) if request.content else None
        answer = json.loads(response.content) if response.content else None
        # The raw (still encoded) path: a meeting uuid may hold "/" (encode_uuid).
        path = request.url.raw_path.decode().split("?")[0].removeprefix("/v2")
        self.exchanges.append(Exchange(request.method, path, body, response.status_code,
                                       answer))
        return response


def violations(exchanges: list[Exchange]) -> list[str]:
    out = []
    for ex in exchanges:
        template, op = operation(ex.method, ex.path)
        where = f"{ex.method} {template} -> {ex.status}"
        if ex.request is not None:
            schema = body_schema(op)
            assert schema is not None, f"{where}: coachgate sends a body this route has not"
            out += [f"{where} request: {e}" for e in errors_against(schema, ex.request)]
        if ex.status >= 400:
            out += [f"{where} error: {e}" for e in errors_against(ERROR, ex.response)]
            continue
        answer = op["responses"].get(str(ex.status))
        assert answer is not None, f"{where}: not an answer of this operation"
        if "schema" not in answer:
            if ex.response is not None:
                out.append(f"{where}: an answer body where Zoom sends none")
            continue
        out += [f"{where} answer: {e}" for e in errors_against(answer["schema"], ex.response)]
    return out


@dataclass
class Setup:
    emu: ZoomEmulator
    client: ZoomClient
    http: httpx.Client
    transport: RecordingTransport


@pytest.fixture
def setup() -> Iterator[Setup]:
    with ZoomEmulator() as emu:
        emu.set_clock(T0)
        emu.register_app(CLIENT_ID, "secret", webhook_secret_token="w")
        coach = emu.create_user("coach@example.com")
        tokens = emu.issue_tokens(coach, CLIENT_ID)
        transport = RecordingTransport()
        with httpx.Client(transport=transport, timeout=5.0) as http, \
                ZoomClient(tokens["access_token"], api_base=emu.api_base, http=http,
                           clock=emu.now) as client:
            yield Setup(emu, client, http, transport)


def test_the_document_is_the_vendored_one() -> None:
    doc = json.loads(SPEC_PATH.read_text())
    assert doc["swagger"] == "2.0" and doc["info"]["license"]["name"] == "MIT"
    assert {(m, p) for p, item in doc["paths"].items() for m in item} == {
        ("get", "/users/{userId}"), ("post", "/users/{userId}/meetings"),
        ("get", "/meetings/{meetingId}"), ("patch", "/meetings/{meetingId}"),
        ("delete", "/meetings/{meetingId}"), ("get", "/past_meetings/{meetingId}/instances"),
        ("get", "/past_meetings/{meetingUUID}/participants")}


def test_every_exchange_of_a_lesson_matches_the_document(setup: Setup) -> None:
    emu, c = setup.emu, setup.client
    me = c.me()
    assert me["type"] == 2
    host_id = me["id"]
    start = T0 + timedelta(hours=1)
    m = c.create_meeting(topic="Lesson", start_time=start, duration_minutes=45,
                         timezone="Europe/Paris", password="Ab3-x_9*", waiting_room=True,
                         join_before_host=False, agenda="Endgames")
    c.get_meeting(m["id"])
    c.update_meeting(m["id"], start_time=start + timedelta(minutes=30), duration=60,
                     topic="Lesson (moved)")
    emu.start_meeting(m["id"], start + timedelta(minutes=30))
    emu.join(m["id"], "Coach", "coach@example.com", start + timedelta(minutes=30))
    emu.join(m["id"], "Ann", "ann@example.com", start + timedelta(minutes=31))
    emu.end_meeting(m["id"], start + timedelta(minutes=50))
    fresh = emu.issue_tokens(host_id, CLIENT_ID)  # an hour on: a fresh token
    c = ZoomClient(fresh["access_token"], api_base=emu.api_base, http=setup.http)
    [instance] = c.meeting_instances(m["id"])
    assert len(c.past_participants(instance["uuid"], page_size=1)) == 2  # two pages
    c.delete_meeting(m["id"])
    with pytest.raises(ZoomNotFound):
        c.get_meeting(m["id"])

    exchanges = setup.transport.exchanges
    assert [(e.method, e.status) for e in exchanges] == [
        ("GET", 200), ("POST", 201), ("GET", 200), ("PATCH", 204), ("GET", 200),
        ("GET", 200), ("GET", 200), ("DELETE", 204), ("GET", 404)]
    assert violations(exchanges) == []


def test_error_answers_match_zooms_error_body(setup: Setup) -> None:
    emu, c = setup.emu, setup.client
    emu.set_daily_limit(1)
    with pytest.raises(ActionRequired):
        c.create_meeting(topic="t", start_time=T0, duration_minutes=30, timezone="UTC",
                         password="far too long a passcode", waiting_room=False,
                         join_before_host=False)
    c.create_meeting(topic="t", start_time=T0, duration_minutes=30, timezone="UTC",
                     password="abc", waiting_room=False, join_before_host=False)
    with pytest.raises(RetryLater):
        c.create_meeting(topic="t", start_time=T0, duration_minutes=30, timezone="UTC",
                         password="abc", waiting_room=False, join_before_host=False)
    statuses = [e.status for e in setup.transport.exchanges]
    assert statuses == [400, 201, 429]
    # The document states no passcode rule (Zoom's reference does: at most 10 characters
    # from a-z A-Z 0-9 @ - _ *), so even the refused request is a valid body.
    assert violations(setup.transport.exchanges) == []


def test_the_check_catches_a_wrong_answer() -> None:
    _, op = operation("GET", "/meetings/123")
    schema = op["responses"]["200"]["schema"]
    assert errors_against(schema, {"id": "123", "duration": "45",
                                   "settings": {"waiting_room": "yes"}})
    assert errors_against(schema, {"id": 123, "duration": 45}) == []

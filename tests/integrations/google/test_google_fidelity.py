"""The emulator answers as Google's Meet v2 discovery document says Meet does, and the
client asks as it says Meet accepts.

The document is Google's own (tests/specs/google/meet-v2.json, unchanged; see the README
there). Every exchange the real MeetClient has with the emulator during a full scenario is
recorded at the transport and matched to its method in the document: the HTTP method and
path must be the document's, every query parameter one it lists, the request body valid
against its request schema and the answer against its response schema — no field the
schema does not name, types and enums as it gives them, timestamps in RFC 3339 — with the
fields a resource always carries present. The emulator's scopes per route are the
document's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from coachgate.integrations.google import emulator as E
from coachgate.integrations.google.client import MeetClient, parse_timestamp

from .conftest import T0, World

SPEC_PATH = Path(__file__).parents[2] / "specs" / "google" / "meet-v2.json"

#: Fields a resource always carries (the document has no "required"; these are what its
#: descriptions call "always set" or what every answer of that kind has).
ALWAYS = {
    "Space": {"name", "meetingUri", "meetingCode", "config"},
    "SpaceConfig": {"accessType", "entryPointAccess"},
    "ConferenceRecord": {"name", "startTime", "space"},
    "Participant": {"name", "earliestStartTime"},
    "ParticipantSession": {"name", "startTime"},
}
#: One of these identifies a participant.
PARTICIPANT_KINDS = {"signedinUser", "anonymousUser", "phoneUser"}


@cache
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SPEC_PATH.read_text())
    return loaded


def _methods(resources: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for resource in resources.values():
        yield from resource.get("methods", {}).values()
        yield from _methods(resource.get("resources", {}))


@cache
def _operations() -> list[tuple[str, re.Pattern[str], str]]:
    out = []
    for method in _methods(document()["resources"]):
        pattern = re.sub(r"\\\{\w+\\\}", r"[^/:]+", re.escape("/" + method["flatPath"]))
        out.append((method["httpMethod"], re.compile(f"^{pattern}$"), method["id"]))
    return out


def operation(http_method: str, path: str) -> dict[str, Any]:
    for m, pattern, method_id in _operations():
        if m == http_method and pattern.match(path):
            return next(x for x in _methods(document()["resources"]) if x["id"] == method_id)
    raise AssertionError(f"{http_method} {path} is not a method of the Meet v2 document")


def problems(schema_name: str, value: Any, where: str = "", *,
             answer: bool = True) -> list[str]:
    """Every way ``value`` departs from the document's schema ``schema_name``; for an
    ``answer``, also the fields of ALWAYS that are missing (a request sends only some)."""
    schema = document()["schemas"][schema_name]
    return _check(schema, value, where or schema_name, schema_name, answer)


def _check(schema: dict[str, Any], value: Any, where: str, name: str | None,
           answer: bool) -> list[str]:
    if "$ref" in schema:
        return problems(schema["$ref"], value, where, answer=answer)
    kind = schema.get("type")
    out: list[str] = []
    if kind == "object":
        if not isinstance(value, dict):
            return [f"{where}: not an object"]
        props = schema.get("properties", {})
        out += [f"{where}.{k}: not in the document" for k in value if k not in props]
        if answer:
            out += [f"{where}.{k}: missing" for k in sorted(ALWAYS.get(name or "", set()))
                    if k not in value]
        for k, v in value.items():
            if k in props:
                out += _check(props[k], v, f"{where}.{k}", None, answer)
    elif kind == "array":
        if not isinstance(value, list):
            return [f"{where}: not an array"]
        for i, item in enumerate(value):
            out += _check(schema["items"], item, f"{where}[{i}]", None, answer)
    elif kind == "string":
        if not isinstance(value, str):
            return [f"{where}: not a string"]
        if "enum" in schema and value not in schema["enum"]:
            out.append(f"{where}: {value!r} is not one of {schema['enum']}")
        if schema.get("format") == "google-datetime":
            try:
                parse_timestamp(value)
            except ValueError:
                out.append(f"{where}: {value!r} is not RFC 3339")
    elif kind == "integer":
        if not isinstance(value, int) or isinstance(value, bool):
            out.append(f"{where}: not an integer")
    elif kind == "boolean" and not isinstance(value, bool):
        out.append(f"{where}: not a boolean")
    return out


@pytest.fixture
def exchanges(world: World) -> Iterator[tuple[MeetClient, list[httpx.Response]]]:
    seen: list[httpx.Response] = []

    def keep(response: httpx.Response) -> None:
        response.read()
        seen.append(response)

    tokens = world.connect()
    with httpx.Client(event_hooks={"response": [keep]}) as http:
        yield MeetClient(tokens.access_token, api_base=world.emu.api_base, http=http), seen


def _scenario(world: World, meet: MeetClient) -> None:
    emu = world.emu
    emu.set_page_size(2)
    name = meet.create_space({"accessType": "OPEN", "entryPointAccess": "ALL"})["name"]
    meet.create_space()
    minute = timedelta(minutes=1)
    emu.join(name, "Casey Coach", email="coach@example.com", at=T0)
    emu.join(name, "Sam Student", email="sam@example.com", at=T0 + minute)
    emu.join(name, "Guest", signed_in=False, at=T0 + 2 * minute)
    emu.join(name, "Dial-in", phone=True, at=T0 + 3 * minute)
    meet.get_space(name)  # with its active conference
    emu.leave(name, email="sam@example.com", at=T0 + 4 * minute)
    emu.join(name, "Sam Student", email="sam@example.com", at=T0 + 5 * minute)
    emu.advance(50 * 60)
    meet.end_active_conference(name)
    emu.join(name, "Casey Coach", email="coach@example.com")  # a second conference, on
    meet.patch_space(name, {"accessType": "TRUSTED"}, "config.accessType")
    for record in meet.conference_records(name):
        meet.get_conference_record(record["name"])
        for participant in meet.participants(record["name"]):
            meet.participant_sessions(participant["name"])
    meet.conference_records()
    meet.close_space(name)


def test_every_exchange_follows_the_discovery_document(
        world: World, exchanges: tuple[MeetClient, list[httpx.Response]]) -> None:
    meet, seen = exchanges
    _scenario(world, meet)
    methods = set()
    bad: list[str] = []
    for response in seen:
        request = response.request
        path = urlsplit(str(request.url)).path
        op = operation(request.method, path)
        methods.add(op["id"])
        where = f"{request.method} {path}"
        assert response.status_code == 200, f"{where}: {response.text}"
        for key, _ in parse_qsl(urlsplit(str(request.url)).query):
            if key not in op.get("parameters", {}):
                bad.append(f"{where}: query parameter {key} is not the method's")
        if "request" in op:
            bad += problems(op["request"]["$ref"], json.loads(request.content or b"{}"),
                            f"{where} request", answer=False)
        bad += problems(op["response"]["$ref"], response.json(), f"{where} answer")
    assert bad == []
    assert methods == {
        "meet.spaces.create", "meet.spaces.get", "meet.spaces.patch",
        "meet.spaces.endActiveConference", "meet.conferenceRecords.list",
        "meet.conferenceRecords.get", "meet.conferenceRecords.participants.list",
        "meet.conferenceRecords.participants.participantSessions.list"}
    participants = [p for r in seen if r.request.url.path.endswith("/participants")
                    for p in r.json().get("participants", [])]
    assert {k for p in participants for k in p} & PARTICIPANT_KINDS == PARTICIPANT_KINDS
    assert all(len(set(p) & PARTICIPANT_KINDS) == 1 for p in participants)
    assert any("nextPageToken" in r.json() for r in seen)  # pagination was exercised


def test_the_checker_finds_unknown_and_missing_fields() -> None:
    """The fidelity test would catch an emulator that invents or drops fields."""
    assert problems("Space", {"config": {"accessType": "OPEN"}}, answer=False) == []
    assert problems("Space", {"name": "spaces/x", "meetingUri": "u", "meetingCode": "c",
                              "config": {"accessType": "OPEN", "entryPointAccess": "ALL"},
                              "owner": "me"}) == ["Space.owner: not in the document"]
    assert problems("ParticipantSession", {"name": "n", "startTime": "noon"}) == [
        "ParticipantSession.startTime: 'noon' is not RFC 3339"]
    assert problems("ConferenceRecord", {"name": "conferenceRecords/x"}) == [
        "ConferenceRecord.space: missing", "ConferenceRecord.startTime: missing"]
    assert problems("SpaceConfig", {"accessType": "PUBLIC", "entryPointAccess": "ALL"}) == [
        "SpaceConfig.accessType: 'PUBLIC' is not one of ['ACCESS_TYPE_UNSPECIFIED', 'OPEN', "
        "'TRUSTED', 'RESTRICTED']"]


def test_emulator_routes_and_scopes_are_the_documents() -> None:
    for route in E._ROUTES:
        if not route.rpc:  # OAuth and userinfo: not Meet's
            continue
        path = "/v2" + re.sub(r"\{\w+\}", "abc", route.template)
        op = operation(route.method, path)
        assert set(route.scopes or ()) == set(op["scopes"]), route.template


def test_the_emulators_config_enums_are_the_documents() -> None:
    props = document()["schemas"]["SpaceConfig"]["properties"]
    for key, values in E.SPACE_CONFIG_ENUMS.items():
        assert set(values) == set(props[key]["enum"]) - {
            v for v in props[key]["enum"] if v.endswith("_UNSPECIFIED")}, key
    assert set(E.SPACE_CONFIG_ENUMS) | set(E.SPACE_CONFIG_OBJECTS) == set(props)
    assert set(E.SPACE_FIELDS) == set(document()["schemas"]["Space"]["properties"])

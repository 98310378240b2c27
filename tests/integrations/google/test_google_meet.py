"""The real MeetClient against the real GoogleEmulator (HTTP on 127.0.0.1, no mocks):
spaces, conferences simulated in the emulator and read back, and errors sorted."""

from __future__ import annotations

import threading
from datetime import timedelta
from email.utils import format_datetime

import httpx
import pytest

from coachgate.integrations.google.client import (
    MEET_SPACE_CREATED,
    OPENID,
    ActionRequired,
    CallRecord,
    GoogleNotFound,
    MeetClient,
    RetryLater,
    Unauthenticated,
    parse_timestamp,
)

from .conftest import CLIENT_ID, T0, World


@pytest.fixture
def meet(world: World) -> MeetClient:
    return world.meet(world.connect())


def test_create_get_and_patch_a_space(world: World, meet: MeetClient) -> None:
    space = meet.create_space({"accessType": "OPEN"})
    name, code = space["name"], space["meetingCode"]
    assert name.startswith("spaces/") and len(name) > len("spaces/")
    assert space["meetingUri"] == f"https://meet.google.com/{code}"
    assert space["config"] == {"accessType": "OPEN", "entryPointAccess": "ALL"}
    assert "activeConference" not in space
    assert meet.get_space(name) == space
    assert meet.get_space(f"spaces/{code}")["name"] == name  # the meeting code is an alias
    patched = meet.patch_space(name, {"accessType": "RESTRICTED", "moderation": "ON"},
                               ["config.accessType"])
    assert patched["config"] == {"accessType": "RESTRICTED", "entryPointAccess": "ALL"}
    assert meet.get_space(name)["config"]["accessType"] == "RESTRICTED"
    assert [(r.method, r.route) for r in world.records[-5:]] == [
        ("POST", "/spaces"), ("GET", "/spaces/{space}"), ("GET", "/spaces/{space}"),
        ("PATCH", "/spaces/{space}"), ("GET", "/spaces/{space}")]
    default = meet.create_space()
    assert default["config"]["accessType"] == "TRUSTED" and default["name"] != name


def test_an_invalid_config_is_action_required(meet: MeetClient) -> None:
    with pytest.raises(ActionRequired) as exc:
        meet.create_space({"accessType": "EVERYONE"})
    assert (exc.value.status, exc.value.reason) == (400, "INVALID_ARGUMENT")
    with pytest.raises(ActionRequired) as exc:
        meet.create_space({"colour": "blue"})
    assert "Unknown name" in exc.value.message


def test_unknown_space_is_not_found(world: World, meet: MeetClient) -> None:
    with pytest.raises(GoogleNotFound) as exc:
        meet.get_space("spaces/doesNotExist")
    assert (exc.value.status, exc.value.reason) == (404, "NOT_FOUND")
    assert exc.value.route == "/spaces/{space}" and "doesNotExist" not in exc.value.route
    assert world.records[-1].status == 404


def test_someone_elses_space_is_permission_denied(world: World, meet: MeetClient) -> None:
    student = world.emu.create_user("student@example.com")
    theirs = world.emu.create_space(student, CLIENT_ID)
    with pytest.raises(ActionRequired) as exc:
        meet.get_space(theirs)
    assert not isinstance(exc.value, GoogleNotFound)
    assert (exc.value.status, exc.value.reason) == (403, "PERMISSION_DENIED")


def test_missing_meet_scope_is_403_action_required(world: World) -> None:
    world.emu.authorize_as(world.coach, withhold=[MEET_SPACE_CREATED])
    meet = world.meet(world.connect())
    with pytest.raises(ActionRequired) as exc:
        meet.create_space()
    assert not isinstance(exc.value, RetryLater | GoogleNotFound | Unauthenticated)
    assert (exc.value.status, exc.value.reason) == (403, "PERMISSION_DENIED")
    assert exc.value.details == ("ACCESS_TOKEN_SCOPE_INSUFFICIENT",)
    assert world.emu.spaces(world.coach) == []


def test_an_expired_access_token_is_401_action_required(world: World) -> None:
    tokens = world.connect()
    meet = world.meet(tokens)
    name = meet.create_space()["name"]
    world.emu.expire_tokens(world.coach)
    with pytest.raises(ActionRequired) as exc:
        meet.get_space(name)
    assert isinstance(exc.value, Unauthenticated)
    assert (exc.value.status, exc.value.reason) == (401, "UNAUTHENTICATED")
    assert exc.value.details == ("ACCESS_TOKEN_EXPIRED",)
    assert tokens.access_token not in str(exc.value)
    assert tokens.refresh_token is not None
    fresh = world.oauth.refresh(tokens.refresh_token, now=world.emu.now)
    assert world.meet(fresh).get_space(name)["name"] == name


def test_end_the_active_conference_and_close_the_space(world: World, meet: MeetClient) -> None:
    emu = world.emu
    name = meet.create_space()["name"]
    assert meet.end_conference_if_active(name) is False  # nothing on yet
    emu.join(name, "Casey Coach", email="coach@example.com", at=T0)
    emu.join(name, "Sam Student", email="sam@example.com", at=T0 + timedelta(minutes=2))
    record = meet.get_space(name)["activeConference"]["conferenceRecord"]
    emu.advance(50 * 60)  # within the access token's hour
    meet.end_active_conference(name)
    assert "activeConference" not in meet.get_space(name)
    got = meet.get_conference_record(record)
    ended = T0 + timedelta(minutes=50)
    assert parse_timestamp(got["endTime"]) == ended
    assert parse_timestamp(got["expireTime"]) == ended + timedelta(days=30)
    people = meet.participants(record)
    assert len(people) == 2
    assert all(parse_timestamp(p["latestEndTime"]) == ended for p in people)
    with pytest.raises(ActionRequired) as exc:
        meet.end_active_conference(name)
    assert exc.value.reason == "FAILED_PRECONDITION"
    emu.join(name, "Casey Coach", email="coach@example.com")
    closed = meet.close_space(name)
    assert closed["config"]["accessType"] == "RESTRICTED"
    assert "activeConference" not in closed
    assert len(meet.conference_records(name)) == 2


def test_conference_records_are_filtered_by_space_and_paginated(world: World,
                                                                 meet: MeetClient) -> None:
    emu = world.emu
    emu.set_page_size(2)
    a = meet.create_space()["name"]
    b = meet.create_space()["name"]
    started = []
    for day in range(3):  # three sessions held in space a, one in b
        at = T0 + timedelta(days=day)
        started.append(emu.start_conference(a, at=at))
        emu.end_conference(a, at=at + timedelta(minutes=50))
    only_b = emu.start_conference(b, at=T0 + timedelta(hours=5))
    before = len(world.records)
    records = meet.conference_records(a)
    assert [r["name"] for r in records] == started[::-1]  # newest first
    assert {r["space"] for r in records} == {a}
    assert [(r.route, r.status) for r in world.records[before:]] == [
        ("/conferenceRecords", 200), ("/conferenceRecords", 200)]  # two pages of two
    on_b = meet.conference_records(b)
    assert [r["name"] for r in on_b] == [only_b] and "endTime" not in on_b[0]
    assert len(meet.conference_records()) == 4
    # Another app's spaces of the same user are not seen with meetings.space.created.
    emu.register_client("other-app", "s2")
    emu.create_space(world.coach, "other-app")
    theirs = emu.start_conference(emu.spaces(world.coach)[-1]["name"])
    assert theirs not in {r["name"] for r in meet.conference_records()}


def test_participants_and_their_sessions(world: World, meet: MeetClient) -> None:
    emu = world.emu
    emu.set_page_size(2)
    name = meet.create_space()["name"]
    minute = timedelta(minutes=1)
    emu.join(name, "Casey Coach", email="coach@example.com", at=T0)
    emu.join(name, "Sam Student", email="sam@example.com", at=T0 + 3 * minute)
    emu.leave(name, email="sam@example.com", at=T0 + 10 * minute)
    emu.join(name, "Sam Student", email="sam@example.com", at=T0 + 12 * minute)
    emu.join(name, "Guest", signed_in=False, at=T0 + 20 * minute)
    emu.join(name, "Dial-in", phone=True, at=T0 + 21 * minute)
    emu.join(name, "Pat Parent", email="pat@example.com", at=T0 + 22 * minute)
    emu.leave(name, "Guest", at=T0 + 25 * minute)
    record = emu.end_conference(name, at=T0 + 60 * minute)

    people = meet.participants(record)
    assert len(people) == 5  # three pages of at most two
    by_name = {(p.get("signedinUser") or p.get("anonymousUser") or p["phoneUser"])[
        "displayName"]: p for p in people}
    assert list(by_name) == ["Pat Parent", "Dial-in", "Guest", "Sam Student", "Casey Coach"]
    assert by_name["Casey Coach"]["signedinUser"]["user"] == f"users/{world.coach}"
    assert "anonymousUser" in by_name["Guest"] and "signedinUser" not in by_name["Guest"]
    sam = by_name["Sam Student"]
    assert parse_timestamp(sam["earliestStartTime"]) == T0 + 3 * minute
    assert parse_timestamp(sam["latestEndTime"]) == T0 + 60 * minute
    assert parse_timestamp(by_name["Guest"]["latestEndTime"]) == T0 + 25 * minute
    sessions = meet.participant_sessions(sam["name"])
    assert [(parse_timestamp(s["startTime"]), parse_timestamp(s["endTime"]))
            for s in sessions] == [(T0 + 12 * minute, T0 + 60 * minute),
                                   (T0 + 3 * minute, T0 + 10 * minute)]
    assert all(s["name"].startswith(sam["name"] + "/participantSessions/") for s in sessions)


def test_a_participant_still_in_has_no_end(world: World, meet: MeetClient) -> None:
    name = meet.create_space()["name"]
    participant = world.emu.join(name, "Casey Coach", email="coach@example.com", at=T0)
    record = participant.split("/participants/")[0]
    (person,) = meet.participants(record)
    assert "latestEndTime" not in person
    (session,) = meet.participant_sessions(participant)
    assert "endTime" not in session and parse_timestamp(session["startTime"]) == T0
    assert "endTime" not in meet.get_conference_record(record)


def test_records_expire_thirty_days_after_the_end(world: World, meet: MeetClient) -> None:
    name = meet.create_space()["name"]
    record = world.emu.start_conference(name, at=T0)
    world.emu.end_conference(name, at=T0 + timedelta(hours=1))
    world.emu.set_time(T0 + timedelta(days=30, minutes=59))
    meet = world.meet(world.connect())  # a month later: a new access token
    assert [r["name"] for r in meet.conference_records(name)] == [record]
    world.emu.set_time(T0 + timedelta(days=30, hours=1))
    assert meet.conference_records(name) == []
    with pytest.raises(GoogleNotFound):
        meet.get_conference_record(record)


def test_429_with_retry_after_is_retry_later(world: World, meet: MeetClient) -> None:
    world.emu.fail_next("POST", "/spaces", 429, retry_after=7)
    with pytest.raises(RetryLater) as exc:
        meet.create_space()
    assert (exc.value.status, exc.value.reason) == (429, "RESOURCE_EXHAUSTED")
    assert exc.value.retry_after == 7.0
    assert exc.value.retry_at == world.emu.now + timedelta(seconds=7)
    assert world.emu.spaces(world.coach) == []  # nothing was made
    assert meet.create_space()["name"].startswith("spaces/")  # the fault was used up


def test_resource_exhausted_without_retry_after(world: World, meet: MeetClient) -> None:
    world.emu.fail_next("GET", "/conferenceRecords", 429)
    with pytest.raises(RetryLater) as exc:
        meet.conference_records()
    assert exc.value.retry_at is None and exc.value.details == ("RATE_LIMIT_EXCEEDED",)


def test_5xx_is_retry_later(world: World, meet: MeetClient) -> None:
    name = meet.create_space()["name"]
    world.emu.fail_next("GET", "/spaces/{space}", 500, times=2)
    for _ in range(2):
        with pytest.raises(RetryLater) as exc:
            meet.get_space(name)
        assert (exc.value.status, exc.value.reason, exc.value.retry_at) == (
            500, "INTERNAL", None)
    assert meet.get_space(name)["name"] == name
    assert [r.status for r in world.records[-3:]] == [500, 500, 200]


def test_no_answer_is_retry_later() -> None:
    records: list[object] = []
    with MeetClient("token", api_base="http://127.0.0.1:9/v2", timeout=2.0,
                    on_call=records.append) as meet, pytest.raises(RetryLater) as exc:
        meet.create_space()
    assert exc.value.status is None and "connection failed" in exc.value.message
    assert len(records) == 1


def test_resource_names_are_checked_before_any_request(world: World,
                                                      meet: MeetClient) -> None:
    before = len(world.emu.calls)
    for bad in ("spaces/../conferenceRecords", "conferenceRecords/x", "spaces/a/b", ""):
        with pytest.raises(ValueError):
            meet.get_space(bad)
    with pytest.raises(ValueError):
        meet.conference_records('spaces/x" OR space.name = "y')
    with pytest.raises(ValueError):
        meet.participants("spaces/abc")
    assert len(world.emu.calls) == before


def test_an_unknown_or_missing_token_is_unauthenticated(world: World) -> None:
    with MeetClient("ya29.made-up", api_base=world.emu.api_base) as meet, \
            pytest.raises(Unauthenticated) as exc:
        meet.create_space()
    assert exc.value.details == () and exc.value.reason == "UNAUTHENTICATED"
    with pytest.raises(ValueError):
        MeetClient("", api_base=world.emu.api_base)
    answer = httpx.post(world.emu.api_base + "/spaces", json={})  # no Authorization at all
    assert answer.status_code == 401
    assert answer.json()["error"]["details"][0]["reason"] == "CREDENTIALS_MISSING"
    assert answer.headers["www-authenticate"].startswith("Bearer realm=")


def test_an_openid_only_token_cannot_read_meet(world: World) -> None:
    meet = world.meet(world.connect((OPENID,)))
    with pytest.raises(ActionRequired) as exc:
        meet.conference_records()
    assert exc.value.status == 403


def test_parse_timestamp_reads_googles_forms() -> None:
    assert parse_timestamp("2026-03-02T09:00:00Z") == T0
    assert parse_timestamp("2026-03-02T09:00:00.123456789Z") == T0 + timedelta(
        microseconds=123456)
    assert parse_timestamp("2026-03-02T10:00:00.5+01:00") == T0 + timedelta(
        microseconds=500000)
    with pytest.raises(ValueError):
        parse_timestamp("yesterday")


def test_a_403_rate_limit_is_retry_later(world: World, meet: MeetClient) -> None:
    world.emu.fail_next("POST", "/spaces", 403, detail="userRateLimitExceeded",
                        message="Rate limit exceeded.")
    with pytest.raises(RetryLater) as exc:
        meet.create_space()
    assert exc.value.status == 403 and exc.value.details == ("userRateLimitExceeded",)


def test_retry_after_as_an_http_date(world: World, meet: MeetClient) -> None:
    at = world.emu.now + timedelta(minutes=2)
    world.emu.fail_next("GET", "/conferenceRecords", 503,
                        retry_after=format_datetime(at, usegmt=True))
    with pytest.raises(RetryLater) as exc:
        meet.conference_records()
    assert exc.value.retry_at == at and exc.value.retry_after == 120.0


def test_a_late_answer_is_retry_later_and_the_space_may_exist(world: World) -> None:
    tokens = world.connect()
    with MeetClient(tokens.access_token, api_base=world.emu.api_base, timeout=0.3) as meet:
        world.emu.timeout_next("POST", "/spaces", 2.0)  # Google made it; the answer is late
        with pytest.raises(RetryLater) as exc:
            meet.create_space()
        assert exc.value.status is None and "timed out" in exc.value.message
        assert len(world.emu.spaces(world.coach)) == 1  # an orphan: Meet has no idempotency
        world.emu.timeout_next("POST", "/spaces", 2.0, applied=False)
        with pytest.raises(RetryLater):
            meet.create_space()
        assert len(world.emu.spaces(world.coach)) == 1


def test_a_broken_on_call_hook_does_not_fail_the_call(world: World) -> None:
    def broken(record: CallRecord) -> None:
        raise RuntimeError("metrics are down")

    tokens = world.connect()
    with MeetClient(tokens.access_token, api_base=world.emu.api_base, on_call=broken) as meet:
        assert meet.create_space()["name"].startswith("spaces/")


def test_one_client_shared_by_threads(world: World, meet: MeetClient) -> None:
    names: list[str] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(5):
            made = meet.create_space()["name"]
            with lock:
                names.append(made)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert len(set(names)) == 40
    assert {s["name"] for s in world.emu.spaces(world.coach)} == set(names)
    assert sum(1 for r in world.records if r.route == "/spaces" and r.status == 200) == 40

"""The real ZoomClient and ZoomOAuth against the real ZoomEmulator (HTTP on 127.0.0.1, no
mocks). The emulator's clock is frozen at T0; the client reads the same clock."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from coachgate.integrations.zoom.client import (
    ActionRequired,
    CallRecord,
    InvalidGrant,
    RetryLater,
    TokenRejected,
    ZoomClient,
    ZoomError,
    ZoomNotFound,
    ZoomOAuth,
    encode_uuid,
    new_password,
    valid_password,
    zoom_time,
)
from coachgate.integrations.zoom.emulator import ZoomEmulator

from .conftest import CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, T0, World, authorize

START = T0 + timedelta(days=2, hours=3)


def create(world: World, client: ZoomClient | None = None, **overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "topic": "Session with Ann", "start_time": START, "duration_minutes": 45,
        "timezone": "Europe/Paris", "password": "Ab3-x_9*", "waiting_room": True,
        "join_before_host": False, "agenda": "Opening repertoire"}
    fields.update(overrides)
    return (client or world.client).create_meeting(**fields)


# --- OAuth ------------------------------------------------------------------------------


def test_code_exchange_gives_tokens_and_me(world: World) -> None:
    t = world.tokens
    assert t.expires_at == T0 + timedelta(seconds=3599)
    assert {"meeting:write:meeting", "user:read:user"} <= t.scopes
    me = world.client.me()
    assert me["id"] == world.coach and me["email"] == "coach@example.com"
    assert me["type"] == 2  # licensed
    assert "access_token" not in repr(t) and t.access_token not in repr(t)
    assert t.refresh_token not in repr(t)


def test_authorize_url_carries_what_zoom_needs(world: World) -> None:
    url = world.oauth.authorize_url("https://x.test/cb?a=1", "state 1")
    assert url.startswith(world.emu.oauth_base + "/oauth/authorize?response_type=code&")
    assert f"client_id={CLIENT_ID}" in url and "state=state+1" in url
    assert "redirect_uri=https%3A%2F%2Fx.test%2Fcb%3Fa%3D1" in url


def test_wrong_client_secret_is_refused(emu: ZoomEmulator) -> None:
    coach = emu.create_user("c2@example.com")
    with ZoomOAuth(CLIENT_ID, "wrong", oauth_base=emu.oauth_base) as bad:
        code = authorize(emu, bad, coach)
        with pytest.raises(ActionRequired) as exc:
            bad.exchange_code(code, REDIRECT_URI, now=emu.now())
    # Not TokenRejected: no refresh fixes a wrong client secret.
    assert exc.value.status == 401 and type(exc.value) is ActionRequired
    assert "wrong" not in str(exc.value) and CLIENT_SECRET not in str(exc.value)
    # The code was not spent by the refused request: the right secret still trades it.
    with ZoomOAuth(CLIENT_ID, CLIENT_SECRET, oauth_base=emu.oauth_base) as good:
        assert good.exchange_code(code, REDIRECT_URI, now=emu.now()).access_token


def test_a_code_works_once_and_only_with_its_redirect_uri(emu: ZoomEmulator) -> None:
    coach = emu.create_user("c3@example.com")
    with ZoomOAuth(CLIENT_ID, CLIENT_SECRET, oauth_base=emu.oauth_base) as oauth:
        code = authorize(emu, oauth, coach)
        oauth.exchange_code(code, REDIRECT_URI, now=emu.now())
        with pytest.raises(InvalidGrant) as exc:
            oauth.exchange_code(code, REDIRECT_URI, now=emu.now())
        assert exc.value.status == 400 and code not in str(exc.value)
        other = authorize(emu, oauth, coach)
        with pytest.raises(ActionRequired) as mismatch:
            oauth.exchange_code(other, "https://elsewhere.test/cb", now=emu.now())
        assert mismatch.value.status == 400 and not isinstance(mismatch.value, InvalidGrant)


def test_refresh_rotates_and_reuse_is_invalid_grant(world: World) -> None:
    first = world.tokens
    later = T0 + timedelta(minutes=50)
    second = world.oauth.refresh(first.refresh_token, now=later)
    assert second.refresh_token != first.refresh_token
    assert second.access_token != first.access_token
    assert second.expires_at == later + timedelta(seconds=3599)
    with pytest.raises(InvalidGrant) as exc:
        world.oauth.refresh(first.refresh_token, now=later)
    assert exc.value.status == 400 and exc.value.message == "Invalid Token!"
    assert first.refresh_token not in str(exc.value)
    third = world.oauth.refresh(second.refresh_token, now=later)  # the new one works once
    assert world.client_for(third).me()["id"] == world.coach


def test_an_error_echoing_a_token_is_redacted(world: World) -> None:
    rt = world.tokens.refresh_token
    world.emu.fail_next("POST", "/oauth/token", 400, code=4700,
                        message=f"Invalid refresh token {rt} for client {CLIENT_SECRET}")
    with pytest.raises(ActionRequired) as exc:
        world.oauth.refresh(rt, now=world.emu.now())
    assert rt not in str(exc.value) and rt not in repr(exc.value.args)
    assert CLIENT_SECRET not in str(exc.value) and "[redacted]" in exc.value.message
    at = world.tokens.access_token
    world.emu.fail_next("GET", "/users/me", 401, code=124, message=f"Bad token {at}.")
    with pytest.raises(TokenRejected) as rejected:
        world.client.me()
    assert at not in str(rejected.value) and rejected.value.message == "Bad token [redacted]."


def test_expired_access_token_is_token_rejected_then_refresh_fixes_it(world: World) -> None:
    world.emu.expire_tokens(world.coach)
    with pytest.raises(TokenRejected) as exc:
        world.client.me()
    assert isinstance(exc.value, ActionRequired) and not isinstance(exc.value, RetryLater)
    assert exc.value.status == 401 and exc.value.code == 124
    assert world.tokens.access_token not in str(exc.value)
    fresh = world.oauth.refresh(world.tokens.refresh_token, now=world.emu.now())
    assert world.client_for(fresh).me()["id"] == world.coach


def test_tokens_expire_with_the_emulator_clock(world: World) -> None:
    world.emu.advance_to(world.tokens.expires_at)
    with pytest.raises(TokenRejected):
        world.client.me()


def test_revoked_app_kills_access_and_refresh(world: World) -> None:
    world.emu.revoke(world.coach)
    with pytest.raises(TokenRejected):
        world.client.me()
    with pytest.raises(InvalidGrant):
        world.oauth.refresh(world.tokens.refresh_token, now=world.emu.now())


def test_missing_scope_is_action_required(emu: ZoomEmulator) -> None:
    emu.register_app("narrow", "narrow-secret", webhook_secret_token="w",
                     scopes=("user:read:user",))
    coach = emu.create_user("narrow@example.com")
    tokens = emu.issue_tokens(coach, "narrow")
    with ZoomClient(tokens["access_token"], api_base=emu.api_base) as client:
        assert client.me()["id"] == coach
        with pytest.raises(ActionRequired) as exc:
            client.create_meeting(topic="t", start_time=START, duration_minutes=30,
                                  timezone="UTC", password="abc", waiting_room=False,
                                  join_before_host=False)
    assert exc.value.code == 4711 and "meeting:write:meeting" in exc.value.message
    assert emu.meeting_ids() == []


# --- Meetings ---------------------------------------------------------------------------


def test_create_get_update_delete(world: World) -> None:
    c, emu = world.client, world.emu
    m = create(world)
    assert isinstance(m["id"], int) and m["uuid"] and m["join_url"] and m["start_url"]
    assert m["start_time"] == "2026-03-12T18:00:00Z" and m["timezone"] == "Europe/Paris"
    assert m["duration"] == 45 and m["password"] == "Ab3-x_9*" and m["type"] == 2
    assert m["settings"]["waiting_room"] is True and m["settings"]["join_before_host"] is False
    got = c.get_meeting(m["id"])
    assert got["uuid"] == m["uuid"] and got["topic"] == "Session with Ann"
    assert got["agenda"] == "Opening repertoire" and got["status"] == "waiting"

    moved = START + timedelta(hours=1)
    c.update_meeting(m["id"], start_time=moved, duration=60, topic="Moved")  # 204
    got = c.get_meeting(m["id"])
    assert (got["start_time"], got["duration"], got["topic"]) == (
        "2026-03-12T19:00:00Z", 60, "Moved")
    assert emu.daily_count(world.coach) == 2  # one create, one update

    c.delete_meeting(m["id"])
    assert emu.meeting(m["id"]) is None
    with pytest.raises(ZoomNotFound) as exc:
        c.delete_meeting(m["id"])
    assert exc.value.status == 404 and exc.value.code == 3001
    assert exc.value.route == "/meetings/{meetingId}"
    with pytest.raises(ZoomNotFound):
        c.get_meeting(m["id"])
    assert [(r.method, r.route, r.status) for r in world.records] == [
        ("POST", "/users/me/meetings", 201), ("GET", "/meetings/{meetingId}", 200),
        ("PATCH", "/meetings/{meetingId}", 204), ("GET", "/meetings/{meetingId}", 200),
        ("DELETE", "/meetings/{meetingId}", 204), ("DELETE", "/meetings/{meetingId}", 404),
        ("GET", "/meetings/{meetingId}", 404)]
    assert all(isinstance(r, CallRecord) and r.duration_s >= 0 for r in world.records)


def test_start_time_is_sent_in_utc_whatever_the_zone(world: World) -> None:
    paris = START.astimezone(ZoneInfo("Europe/Paris"))
    m = create(world, start_time=paris)
    assert m["start_time"] == "2026-03-12T18:00:00Z"
    assert zoom_time(paris) == "2026-03-12T18:00:00Z"
    with pytest.raises(ValueError, match="aware"):
        create(world, start_time=datetime(2026, 3, 12, 18, 0))  # noqa: DTZ001 - on purpose
    assert len(world.emu.meeting_ids()) == 1  # the naive one never left the client


def test_another_users_meeting_is_not_found(world: World) -> None:
    m = create(world)
    other = world.emu.create_user("other@example.com")
    tokens = world.emu.issue_tokens(other, CLIENT_ID)
    with ZoomClient(tokens["access_token"], api_base=world.emu.api_base) as theirs, \
            pytest.raises(ZoomNotFound):
        theirs.delete_meeting(m["id"])
    assert world.emu.meeting(m["id"]) is not None


@pytest.mark.parametrize(("overrides", "field"), [
    ({"password": "12345678901"}, "password"),  # 11 characters
    ({"password": "pass word"}, "password"),
    ({"password": "pässwort"}, "password"),
    ({"topic": "x" * 201}, "topic"),
    ({"duration_minutes": 0}, "duration"),
    ({"timezone": "Mars/Olympus"}, "timezone"),
])
def test_validation_errors(world: World, overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(ActionRequired) as exc:
        create(world, **overrides)
    err = exc.value
    assert err.status == 400 and err.code == 300 and not isinstance(err, ZoomNotFound)
    assert field in err.message and err.message.startswith("Validation Failed.")
    assert world.emu.meeting_ids() == [] and world.emu.daily_count(world.coach) == 0


def test_update_validation_changes_nothing(world: World) -> None:
    m = create(world)
    for bad in ({"start_time": "2026-03-12 18:00"}, {"type": 3}, {"duration": "45"},
                {"settings": {"waiting_room": "yes"}}):
        with pytest.raises(ActionRequired) as exc:
            world.client.update_meeting(m["id"], **bad)
        assert exc.value.code == 300
    got = world.client.get_meeting(m["id"])
    assert got["start_time"] == m["start_time"] and got["settings"]["waiting_room"] is True


def test_local_start_time_is_read_in_the_meeting_time_zone(world: World) -> None:
    m = create(world)  # Europe/Paris
    world.client.update_meeting(m["id"], start_time="2026-07-01T10:00:00")  # CEST, UTC+2
    assert world.client.get_meeting(m["id"])["start_time"] == "2026-07-01T08:00:00Z"


def test_body_that_is_not_json_is_code_300(world: World) -> None:
    answer = httpx.post(world.emu.api_base + "/users/me/meetings", content=b"{nope",
                        headers={"Authorization": f"Bearer {world.tokens.access_token}",
                                 "Content-Type": "application/json"})
    assert answer.status_code == 400
    assert answer.json() == {"code": 300,
                             "message": "Request Body should be a valid JSON object."}


def test_passwords() -> None:
    for _ in range(200):
        p = new_password()
        assert valid_password(p) and len(p) == 10
    assert len(new_password(6)) == 6
    assert valid_password("a@-_*Z09") and valid_password("x")
    for bad in ("", "12345678901", "has space", "é", "a+b", "a/b", "a\n"):
        assert not valid_password(bad)
    with pytest.raises(ValueError):
        new_password(11)


# --- Limits and failures ----------------------------------------------------------------


def test_daily_limit_is_retry_later_at_next_utc_midnight(world: World) -> None:
    emu = world.emu
    emu.set_daily_limit(3)
    m = create(world)
    create(world)
    world.client.update_meeting(m["id"], topic="third call")
    with pytest.raises(RetryLater) as exc:
        create(world)
    err = exc.value
    assert err.status == 429 and err.rate_limit_type == "Daily-limit"
    assert err.retry_at == datetime(2026, 3, 11, tzinfo=UTC)
    with pytest.raises(RetryLater):  # updates count too
        world.client.update_meeting(m["id"], topic="fourth call")
    assert world.client.get_meeting(m["id"])["topic"] == "third call"
    assert len(emu.meeting_ids()) == 2
    # A read is not limited; at midnight UTC the count starts again.
    emu.advance_to(datetime(2026, 3, 11, tzinfo=UTC))
    fresh = world.oauth.refresh(world.tokens.refresh_token, now=emu.now())  # 9 h later
    assert create(world, world.client_for(fresh))["id"]
    assert emu.daily_count(world.coach) == 1


def test_daily_limit_near_midnight_in_another_zone(emu: ZoomEmulator) -> None:
    emu.set_clock(datetime(2026, 3, 10, 23, 59, 30, tzinfo=UTC))
    emu.set_daily_limit(0)
    coach = emu.create_user("late@example.com")
    tokens = emu.issue_tokens(coach, CLIENT_ID)
    with ZoomClient(tokens["access_token"], api_base=emu.api_base, clock=emu.now) as c, \
            pytest.raises(RetryLater) as exc:
        c.create_meeting(topic="t", start_time=START, duration_minutes=30, timezone="UTC",
                         password="abc", waiting_room=False, join_before_host=False)
    assert exc.value.retry_at == datetime(2026, 3, 11, tzinfo=UTC)


def test_429_with_a_long_retry_after(world: World) -> None:
    world.emu.fail_next("POST", "/users/{userId}/meetings", 429, retry_after=30)
    with pytest.raises(RetryLater) as exc:
        create(world)
    assert exc.value.retry_at == T0 + timedelta(seconds=30)
    assert exc.value.rate_limit_type == "QPS" and exc.value.code == 429
    assert world.emu.meeting_ids() == []
    assert create(world)["id"]  # the fault is used up


def test_429_with_a_short_retry_after_is_waited_out(world: World) -> None:
    world.emu.fail_next("GET", "/users/me", 429, retry_after="0.2",
                        rate_limit_type="Per-second-Limit")
    started = time.monotonic()
    assert world.client.me()["id"] == world.coach
    assert time.monotonic() - started >= 0.2
    assert [r.status for r in world.records] == [429, 200]


def test_retry_after_as_a_date(world: World) -> None:
    world.emu.fail_next("GET", "/users/me", 429, retry_after="Wed, 11 Mar 2026 00:00:00 GMT")
    with pytest.raises(RetryLater) as exc:
        world.client.me()
    assert exc.value.retry_at == datetime(2026, 3, 11, tzinfo=UTC)


def test_xml_error_body_is_parsed(world: World) -> None:
    world.emu.fail_next("GET", "/meetings/{meetingId}", 404, xml=True, code=3001)
    with pytest.raises(ZoomNotFound) as exc:
        world.client.get_meeting(123)
    assert exc.value.code == 3001 and exc.value.message == "Request failed."
    world.emu.fail_next("GET", "/users/me", 401, xml=True, code=124)
    with pytest.raises(TokenRejected) as rejected:
        world.client.me()
    assert rejected.value.code == 124


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_retry_later(world: World, status: int) -> None:
    world.emu.fail_next("POST", "/users/{userId}/meetings", status)
    with pytest.raises(RetryLater) as exc:
        create(world)
    assert exc.value.status == status and exc.value.retry_at is None
    assert world.emu.meeting_ids() == []


def test_xml_server_error_is_retry_later_with_its_code(world: World) -> None:
    world.emu.fail_next("DELETE", "/meetings/{meetingId}", 503, xml=True, retry_after=5)
    with pytest.raises(RetryLater) as exc:
        world.client.delete_meeting(1)
    assert exc.value.code == 503 and exc.value.retry_at == T0 + timedelta(seconds=5)


def test_http_300_is_action_required(world: World) -> None:
    # Zoom's reference lists HTTP 300 for some create-meeting errors.
    world.emu.fail_next("POST", "/users/{userId}/meetings", 300, code=300)
    with pytest.raises(ActionRequired) as exc:
        create(world)
    assert exc.value.status == 300 and not isinstance(exc.value, RetryLater)


def test_403_is_action_required(world: World) -> None:
    world.emu.fail_next("GET", "/users/me", 403, code=200)
    with pytest.raises(ActionRequired) as exc:
        world.client.me()
    assert type(exc.value) is ActionRequired and exc.value.status == 403


def test_timeout_is_retry_later(world: World) -> None:
    world.emu.fail_next("GET", "/users/me", 200, hold_s=1.5)
    with ZoomClient(world.tokens.access_token, api_base=world.emu.api_base, timeout=0.3,
                    on_call=world.records.append) as quick:
        started = time.monotonic()
        with pytest.raises(RetryLater) as exc:
            quick.me()
        assert time.monotonic() - started < 1.2
    assert exc.value.status is None and "timed out" in exc.value.message
    assert world.records[-1].status == 0


def test_connection_refused_is_retry_later() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    records: list[CallRecord] = []
    with ZoomClient("tok", api_base=f"http://127.0.0.1:{port}/v2", timeout=1.0,
                    on_call=records.append) as c, pytest.raises(RetryLater) as exc:
        c.me()
    assert exc.value.status is None and records[0].status == 0


def test_errors_never_show_tokens(world: World) -> None:
    secret_token = world.tokens.access_token
    world.emu.revoke(world.coach)
    with pytest.raises(ZoomError) as exc:
        world.client.me()
    assert secret_token not in str(exc.value) and secret_token not in repr(exc.value)
    assert secret_token not in repr(world.client) and CLIENT_SECRET not in repr(world.oauth)


def test_broken_on_call_hook_does_not_fail_the_call(world: World) -> None:
    def broken(record: CallRecord) -> None:
        raise RuntimeError("metrics down")

    with world.client_for(world.tokens, on_call=broken) as c:
        assert c.me()["id"] == world.coach


# --- Past meetings ----------------------------------------------------------------------


def test_uuid_encoding() -> None:
    assert encode_uuid("abc+def==") == "abc%2Bdef%3D%3D"
    assert encode_uuid("ab/cd==") == "ab%2Fcd%3D%3D"
    assert encode_uuid("/abc==") == "%252Fabc%253D%253D"
    assert encode_uuid("ab//cd==") == "ab%252F%252Fcd%253D%253D"


@pytest.mark.parametrize("uuid", ["/starts+with/slash==", "has//double==", "plain+uuid=="])
def test_past_participants_with_awkward_uuids(world: World, uuid: str) -> None:
    emu = world.emu
    m = create(world)
    emu.start_meeting(m["id"], START, uuid=uuid)
    emu.join(m["id"], "Coach", "coach@example.com", START)
    emu.join(m["id"], "Ann", "ann@example.com", START + timedelta(minutes=1))
    emu.end_meeting(m["id"], START + timedelta(minutes=30))
    rows = world.api().past_participants(uuid)
    assert [(r["name"], r["user_email"], r["duration"]) for r in rows] == [
        ("Coach", "coach@example.com", 30 * 60), ("Ann", "ann@example.com", 29 * 60)]


def test_singly_encoded_awkward_uuid_is_not_found_as_on_zoom(world: World) -> None:
    emu = world.emu
    m = create(world)
    emu.start_meeting(m["id"], START, uuid="/abc==")
    emu.end_meeting(m["id"], START + timedelta(minutes=5))
    world.api()  # refreshes the token the meeting's hours outlived
    answer = httpx.get(emu.api_base + "/past_meetings/%2Fabc%3D%3D/participants",
                       headers={"Authorization": f"Bearer {world.tokens.access_token}"})
    assert answer.status_code == 404 and answer.json()["code"] == 3001


def test_a_meeting_with_one_participant_lists_nobody(world: World) -> None:
    # Zoom's reference: no results when only one person was in the meeting (the coach
    # waited alone): attendance must come from the webhooks, not from this list alone.
    emu = world.emu
    m = create(world)
    emu.start_meeting(m["id"], START)
    emu.join(m["id"], "Coach", "coach@example.com", START)
    emu.leave(m["id"], "Coach", START + timedelta(minutes=10))
    emu.join(m["id"], "Coach", "coach@example.com", START + timedelta(minutes=11))  # rejoin
    emu.end_meeting(m["id"], START + timedelta(minutes=20))
    assert world.api().past_participants(m["uuid"]) == []
    assert len(world.api().meeting_instances(m["id"])) == 1


def test_past_participants_need_a_paid_host(emu: ZoomEmulator) -> None:
    free = emu.create_user("free@example.com", plan="basic")
    tokens = emu.issue_tokens(free, CLIENT_ID)
    with ZoomClient(tokens["access_token"], api_base=emu.api_base) as c:
        m = c.create_meeting(topic="t", start_time=START, duration_minutes=30,
                             timezone="UTC", password="abc", waiting_room=False,
                             join_before_host=True)
        emu.join(m["id"], "Ann", None, emu.now())
        emu.join(m["id"], "Bob", None, emu.now())
        emu.end_meeting(m["id"], emu.now() + timedelta(minutes=5))
        fresh = emu.issue_tokens(free, CLIENT_ID)
    with ZoomClient(fresh["access_token"], api_base=emu.api_base) as c:
        with pytest.raises(ActionRequired) as exc:
            c.past_participants(m["uuid"])
        assert exc.value.status == 400 and exc.value.code == 200
        assert len(c.meeting_instances(m["id"])) == 1  # instances are served


def test_a_meeting_in_progress_cannot_be_deleted(world: World) -> None:
    m = create(world)
    world.emu.start_meeting(m["id"], world.emu.now())
    with pytest.raises(ActionRequired) as exc:
        world.client.delete_meeting(m["id"])
    assert exc.value.code == 3002 and not isinstance(exc.value, ZoomNotFound)
    world.emu.end_meeting(m["id"], world.emu.now())
    world.client.delete_meeting(m["id"])
    assert world.emu.meeting(m["id"]) is None


def test_daily_limit_worded_as_zooms_http_300(world: World) -> None:
    # Zoom's reference lists the daily limit under HTTP 300 (code 300) too.
    world.emu.fail_next("PATCH", "/meetings/{meetingId}", 300, code=300, message=(
        "A maximum of 100 meetings can be created/updated for a single user in one day."))
    with pytest.raises(RetryLater) as exc:
        world.client.update_meeting(1, topic="x")
    assert exc.value.retry_at == datetime(2026, 3, 11, tzinfo=UTC)
    assert exc.value.rate_limit_type == "Daily-limit" and exc.value.status == 300


def test_participants_are_paged(world: World) -> None:
    emu = world.emu
    m = create(world)
    emu.start_meeting(m["id"], START)
    for i in range(5):
        emu.join(m["id"], f"P{i}", None, START + timedelta(minutes=i))
    emu.end_meeting(m["id"], START + timedelta(minutes=20))
    uuid = world.api().meeting_instances(m["id"])[0]["uuid"]
    rows = world.api().past_participants(uuid, page_size=2)
    assert [r["name"] for r in rows] == ["P0", "P1", "P2", "P3", "P4"]
    assert [r.route for r in world.records].count(
        "/past_meetings/{meetingUUID}/participants") == 3


def test_list_meetings_pages_through_the_upcoming_ones(world: World) -> None:
    start = world.emu.now() + timedelta(days=1)
    made = [world.client.create_meeting(
        topic=f"Lesson · coachgate #{i}", start_time=start + timedelta(hours=i),
        duration_minutes=30, timezone="UTC", password="abc123", waiting_room=False,
        join_before_host=False)["id"] for i in range(5)]
    world.client.delete_meeting(made[2])
    listed = world.client.list_meetings(page_size=2)  # three pages
    assert [m["id"] for m in listed] == [made[0], made[1], made[3], made[4]]
    assert listed[0]["topic"] == "Lesson · coachgate #0" and listed[0]["join_url"]
    world.emu.advance_to(start + timedelta(days=2))  # all of them in the past now
    fresh = world.oauth.refresh(world.tokens.refresh_token, now=world.emu.now())
    assert world.client_for(fresh).list_meetings() == []

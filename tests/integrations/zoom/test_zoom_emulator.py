"""The emulator's meeting life: the webhook events Zoom sends, signed and POSTed over HTTP
to a real receiver that checks them with ``webhooks.verify``; instances, the 40-minute cut
of the free plan, and what the past-meeting routes then serve."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from coachgate.integrations.zoom import webhooks
from coachgate.integrations.zoom.client import ZoomClient, ZoomNotFound, ZoomOAuth
from coachgate.integrations.zoom.emulator import ZoomEmulator

from .conftest import CLIENT_ID, REDIRECT_URI, T0, WEBHOOK_SECRET, Receiver, World

START = T0 + timedelta(hours=1)


def meeting(client: ZoomClient, *, join_before_host: bool = False) -> dict[str, Any]:
    return client.create_meeting(topic="Lesson", start_time=START, duration_minutes=60,
                                 timezone="UTC", password="abc123", waiting_room=False,
                                 join_before_host=join_before_host)


def test_a_lesson_sends_signed_events_in_order(world: World, receiver: Receiver) -> None:
    emu, m = world.emu, meeting(world.client)
    emu.start_meeting(m["id"], START)
    emu.join(m["id"], "Ann", "ann@example.com", START + timedelta(minutes=2))
    emu.join(m["id"], "Coach", "coach@example.com", START + timedelta(minutes=3),
             zoom_user_id=world.coach)
    emu.leave(m["id"], "ann@example.com", START + timedelta(minutes=50))
    emu.end_meeting(m["id"], START + timedelta(minutes=55))

    got = receiver.received
    assert [r.event["event"] for r in got] == [
        "meeting.started", "meeting.participant_joined", "meeting.participant_joined",
        "meeting.participant_left", "meeting.participant_left", "meeting.ended"]
    assert all(r.verified for r in got)
    assert all(d.status == 200 for d in emu.deliveries)
    started, ann_in, _, ann_out, coach_out, ended = (r.event for r in got)
    obj = started["payload"]["object"]
    assert obj["id"] == str(m["id"]) and obj["uuid"] == m["uuid"]
    assert obj["host_id"] == world.coach and obj["start_time"] == "2026-03-10T16:00:00Z"
    person = ann_in["payload"]["object"]["participant"]
    assert person["user_name"] == "Ann" and person["email"] == "ann@example.com"
    assert person["join_time"] == "2026-03-10T16:02:00Z"
    assert ann_out["payload"]["object"]["participant"]["leave_time"] == "2026-03-10T16:50:00Z"
    assert ann_out["payload"]["object"]["participant"]["participant_uuid"] == \
        person["participant_uuid"]
    assert coach_out["payload"]["object"]["participant"]["leave_time"] == \
        "2026-03-10T16:55:00Z"
    assert ended["payload"]["object"]["end_time"] == "2026-03-10T16:55:00Z"
    assert started["event_ts"] == int(START.timestamp() * 1000)
    # Each occurrence has its own dedupe key; the bytes signed are the bytes sent.
    keys = {webhooks.natural_key(r.event) for r in got}
    assert None not in keys and len(keys) == 6
    assert [r.body for r in got] == [d.body for d in emu.deliveries]
    # The meeting is over: the past-meeting routes serve it.
    rows = world.api().past_participants(m["uuid"])
    assert [(r["name"], r["duration"]) for r in rows] == [("Ann", 48 * 60),
                                                          ("Coach", 52 * 60)]
    assert rows[1]["id"] == world.coach and rows[0]["id"] == ""


def test_a_tampered_delivery_is_refused_by_the_receiver(world: World,
                                                        receiver: Receiver) -> None:
    emu, m = world.emu, meeting(world.client)
    delivery = emu.start_meeting(m["id"], START)[0]
    assert delivery.status == 200
    forged = delivery.body.replace(b"Lesson", b"Lessor")
    answer = httpx.post(receiver.url, content=forged, headers=delivery.headers)
    assert answer.status_code == 401 and receiver.received[-1].verified is False
    # Replayed ten minutes later: the signature is right, the timestamp too old.
    emu.advance_to(START + timedelta(minutes=10))
    replay = httpx.post(receiver.url, content=delivery.body, headers=delivery.headers)
    assert replay.status_code == 401


def test_without_a_webhook_url_events_are_kept_for_the_test(world: World) -> None:
    emu, m = world.emu, meeting(world.client)
    [delivery] = emu.start_meeting(m["id"], START)
    assert delivery.status is None and delivery.name == "meeting.started"
    h = delivery.headers
    assert webhooks.verify(WEBHOOK_SECRET, h["x-zm-signature"], h["x-zm-request-timestamp"],
                           delivery.body, now=START)
    assert h["x-zm-request-timestamp"] == str(int(START.timestamp()))
    assert emu.start_meeting(m["id"], START + timedelta(minutes=1)) == []  # already live


def test_restart_after_end_is_a_new_instance(world: World, receiver: Receiver) -> None:
    emu, m = world.emu, meeting(world.client)
    emu.start_meeting(m["id"], START)
    emu.join(m["id"], "Coach", "coach@example.com", START)
    emu.join(m["id"], "Ann", None, START + timedelta(minutes=1))
    emu.end_meeting(m["id"], START + timedelta(minutes=10))  # dropped by mistake
    emu.start_meeting(m["id"], START + timedelta(minutes=12))
    emu.join(m["id"], "Coach", "coach@example.com", START + timedelta(minutes=12))
    emu.join(m["id"], "Ann", None, START + timedelta(minutes=13))
    emu.end_meeting(m["id"], START + timedelta(minutes=60))
    c = world.api()

    instances = c.meeting_instances(m["id"])
    assert len(instances) == 2 and instances[0]["uuid"] == m["uuid"]
    assert instances[0]["uuid"] != instances[1]["uuid"]
    assert [i["start_time"] for i in instances] == ["2026-03-10T16:00:00Z",
                                                    "2026-03-10T16:12:00Z"]
    second = c.past_participants(instances[1]["uuid"])
    assert [(r["name"], r["duration"]) for r in second] == [("Coach", 48 * 60),
                                                            ("Ann", 47 * 60)]
    started = [r.event for r in receiver.received if r.event["event"] == "meeting.started"]
    assert [e["payload"]["object"]["uuid"] for e in started] == [i["uuid"] for i in instances]
    assert c.get_meeting(m["id"])["id"] == m["id"]  # same meeting id throughout


def test_a_live_meeting_has_no_past_yet(world: World) -> None:
    emu, m = world.emu, meeting(world.client)
    emu.start_meeting(m["id"], START)
    c = world.api()
    assert c.meeting_instances(m["id"]) == []
    assert c.get_meeting(m["id"])["status"] == "started"
    with pytest.raises(ZoomNotFound):
        c.past_participants(m["uuid"])


def test_free_plan_meeting_is_cut_at_40_minutes(emu: ZoomEmulator, receiver: Receiver) -> None:
    free = emu.create_user("free@example.com", plan="basic")
    tokens = emu.issue_tokens(free, CLIENT_ID)
    with ZoomClient(tokens["access_token"], api_base=emu.api_base) as first:
        assert first.me()["type"] == 1
        m = meeting(first)
    emu.start_meeting(m["id"], START)
    emu.join(m["id"], "Ann", "ann@example.com", START + timedelta(minutes=5))
    later = emu.issue_tokens(free, CLIENT_ID)  # an hour on: a fresh token
    with ZoomClient(later["access_token"], api_base=emu.api_base) as c:
        assert emu.advance_to(START + timedelta(minutes=39)) == []
        assert c.get_meeting(m["id"])["status"] == "started"
        cut = emu.advance_to(START + timedelta(minutes=41))
        assert [d.name for d in cut] == ["meeting.participant_left", "meeting.ended"]
        ended = cut[-1].event["payload"]["object"]
        assert ended["end_time"] == "2026-03-10T16:40:00Z"
        assert c.get_meeting(m["id"])["status"] == "waiting"
        left = cut[0].event["payload"]["object"]["participant"]
        assert left["user_name"] == "Ann" and left["leave_time"] == "2026-03-10T16:40:00Z"
        assert [i["start_time"] for i in c.meeting_instances(m["id"])] == [
            "2026-03-10T16:00:00Z"]
        assert all(r.verified for r in receiver.received)


def test_licensed_meeting_is_not_cut(world: World) -> None:
    emu, m = world.emu, meeting(world.client)
    emu.start_meeting(m["id"], START)
    assert emu.advance_to(START + timedelta(hours=3)) == []
    assert world.api().get_meeting(m["id"])["status"] == "started"


def test_a_later_moment_applies_the_cut_first(emu: ZoomEmulator) -> None:
    free = emu.create_user("free2@example.com", plan="basic")
    tokens = emu.issue_tokens(free, CLIENT_ID)
    with ZoomClient(tokens["access_token"], api_base=emu.api_base) as c:
        m = meeting(c)
    emu.start_meeting(m["id"], START)
    # An hour later the host "restarts": the first instance was cut at 40 minutes.
    events = emu.start_meeting(m["id"], START + timedelta(minutes=60))
    assert [d.name for d in events] == ["meeting.ended", "meeting.started"]
    assert events[0].event["payload"]["object"]["end_time"] == "2026-03-10T16:40:00Z"


def test_join_before_host(world: World) -> None:
    emu = world.emu
    closed = meeting(world.client)
    opened = meeting(world.client, join_before_host=True)
    with pytest.raises(RuntimeError, match="not started"):
        emu.join(closed["id"], "Ann", None, START)
    events = emu.join(opened["id"], "Ann", None, START)
    assert [d.name for d in events] == ["meeting.started", "meeting.participant_joined"]


def test_url_validation_round_trip(world: World, receiver: Receiver) -> None:
    delivery = world.emu.send_url_validation(CLIENT_ID, "plain-123")
    assert delivery.status == 200
    assert delivery.answer == webhooks.url_validation_answer(WEBHOOK_SECRET, "plain-123")
    assert receiver.received[-1].event["payload"] == {"plainToken": "plain-123"}
    assert receiver.received[-1].verified


def test_deauthorization_is_sent_and_kills_tokens(world: World, receiver: Receiver) -> None:
    [delivery] = world.emu.revoke(world.coach)
    assert delivery.status == 200 and receiver.received[-1].verified
    payload = receiver.received[-1].event["payload"]
    assert payload["user_id"] == world.coach and payload["client_id"] == CLIENT_ID
    assert payload["deauthorization_time"] == "2026-03-10T15:00:00.000Z"
    assert webhooks.natural_key(receiver.received[-1].event) is not None
    assert world.emu.revoke(world.coach) == []  # nothing left to revoke


def test_authorize_refusal_and_unknown_client(emu: ZoomEmulator) -> None:
    emu.authorize_as(None)
    oauth = ZoomOAuth(CLIENT_ID, "x", oauth_base=emu.oauth_base)
    answer = httpx.get(oauth.authorize_url(REDIRECT_URI, "s"), follow_redirects=False)
    assert answer.status_code == 302
    assert answer.headers["location"] == REDIRECT_URI + "?error=access_denied&state=s"
    unknown = ZoomOAuth("nobody", "x", oauth_base=emu.oauth_base)
    assert httpx.get(unknown.authorize_url(REDIRECT_URI, "s")).status_code == 400


def test_calls_are_logged_with_templates(world: World) -> None:
    world.client.me()
    with pytest.raises(ZoomNotFound):
        world.client.get_meeting(42)
    tail = [(c.method, c.route, c.status) for c in world.emu.calls[-2:]]
    assert tail == [("GET", "/v2/users/me", 200), ("GET", "/v2/meetings/{meetingId}", 404)]
    token_calls = [c for c in world.emu.calls if c.route == "/oauth/token"]
    assert [c.status for c in token_calls] == [200]


def test_standalone_prints_how_to_reach_it() -> None:
    src = Path(__file__).resolve().parents[3] / "src"
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "coachgate.integrations.zoom.emulator", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        lines: queue.Queue[str] = queue.Queue()
        stdout = proc.stdout
        assert stdout is not None
        threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
        info = json.loads(lines.get(timeout=20))
        with ZoomOAuth(info["client_id"], info["client_secret"],
                       oauth_base=info["oauth_base"]) as oauth:
            answer = httpx.get(oauth.authorize_url(REDIRECT_URI, "x"), follow_redirects=False)
            code = parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]
            tokens = oauth.exchange_code(code, REDIRECT_URI, now=datetime.now(UTC))
        with ZoomClient(tokens.access_token, api_base=info["api_base"]) as client:
            assert client.me()["id"] == info["user_id"]
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover - never expected
            proc.kill()
            proc.communicate(timeout=5)

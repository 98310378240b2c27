"""The coach's Connections page against the Zoom emulator: connect through Zoom's consent
(the state checked), the account and plan learnt, a missing scope reported at once, a
Jitsi server saved, and a connection in use refused removal."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import time_machine
from django.contrib.messages import get_messages
from django.test import Client

from coachgate.kit import clock
from coachgate.meetings.models import VideoConnection
from tests.factories import make_admin, make_coach, make_offer
from tests.meetings.conftest import CLIENT_ID, CLIENT_SECRET, WEBHOOK

pytestmark = pytest.mark.django_db


def _coach_client():
    coach = make_coach(tz="UTC", admin=make_admin())
    client = Client()
    client.force_login(coach)
    return coach, client


def _consent(emu, client: Client) -> tuple[str, str]:
    """Press Connect, let the emulator's consent page answer; the callback path we get."""
    start = client.post("/coach/connections/zoom/connect")
    assert start.status_code == 302 and start["Location"].startswith(emu.oauth_base)
    query = parse_qs(urlsplit(start["Location"]).query)
    assert query["client_id"] == [CLIENT_ID] and query["response_type"] == ["code"]
    back = httpx.get(start["Location"], follow_redirects=False)
    assert back.status_code == 302
    location = back.headers["location"]
    assert location.startswith("http://testserver/coach/connections/zoom/callback?")
    return location.removeprefix("http://testserver"), query["state"][0]


def _messages(response) -> list[str]:
    return [m.message for m in get_messages(response.wsgi_request)]


def test_a_coach_connects_zoom_through_its_consent(emu) -> None:
    coach, client = _coach_client()
    zoom_user = emu.create_user(coach.email, plan="basic")
    emu.authorize_as(zoom_user)
    callback, _state = _consent(emu, client)
    done = client.get(callback)
    assert done.status_code == 302 and done["Location"] == "/coach/connections/"
    assert any("Zoom is connected" in m for m in _messages(done))
    conn = VideoConnection.objects.get(coach__user=coach, provider="zoom")
    assert (conn.account_id, conn.account_email, conn.plan, conn.state) == (
        zoom_user, coach.email, "basic", "active")
    page = client.get("/coach/connections/").content.decode()
    assert "Working" in page and "ends meetings after 40 minutes" in page
    # The same callback again (a replay, another tab): its state is used up.
    again = client.get(callback)
    assert any("did not start here" in m for m in _messages(again))


def test_a_callback_with_another_state_connects_nothing(emu) -> None:
    coach, client = _coach_client()
    emu.authorize_as(emu.create_user(coach.email))
    callback, state = _consent(emu, client)
    forged = callback.replace(state, "forged-state")
    r = client.get(forged)
    assert any("did not start here" in m for m in _messages(r))
    assert not VideoConnection.objects.exists()


def test_a_missing_delete_scope_is_reported_at_once(emu) -> None:
    emu.register_app(CLIENT_ID, CLIENT_SECRET, webhook_secret_token=WEBHOOK, scopes=(
        "meeting:write:meeting", "meeting:update:meeting", "meeting:read:meeting",
        "user:read:user"))
    coach, client = _coach_client()
    emu.authorize_as(emu.create_user(coach.email))
    callback, _ = _consent(emu, client)
    r = client.get(callback)
    assert any("without meeting:delete:meeting" in m for m in _messages(r))
    assert VideoConnection.objects.get(provider="zoom").missing_scopes == \
        "meeting:delete:meeting"


def test_jitsi_is_saved_and_a_used_connection_is_not_removed(emu) -> None:
    coach, client = _coach_client()
    r = client.post("/coach/connections/jitsi", {"base_url": "https://meet.example.org"})
    assert any("Jitsi server is connected" in m for m in _messages(r))
    emu.authorize_as(emu.create_user(coach.email))
    client.get(_consent(emu, client)[0])
    make_offer(coach, delivery="zoom")
    with time_machine.travel(clock.now(), tick=False):
        refused = client.post("/coach/connections/zoom/remove")
    assert any("1 published offers" in m for m in _messages(refused))
    assert VideoConnection.objects.filter(provider="zoom").exists()
    client.post("/coach/connections/jitsi/remove")
    assert not VideoConnection.objects.filter(provider="jitsi").exists()

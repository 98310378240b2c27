"""Zoom's webhooks at /api/v1/meetings/webhooks/zoom: signatures and their timestamps, the
URL validation, events stored once and processed into the meeting evidence settlement
reads (out of order and twice; a restart; the free plan's 40-minute cut), attendance, and
the app's deauthorization."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client

from coachgate.billing.models import Attendance, MeetingEvidence
from coachgate.integrations.zoom import webhooks as zoom_webhooks
from coachgate.kit import clock
from coachgate.kit.errors import VideoConnectionInvalid
from coachgate.meetings import gate, webhooks
from coachgate.meetings.models import Meeting, Participation, ProviderEvent
from tests.factories import make_admin, make_coach, make_offer, make_student
from tests.meetings.conftest import WEBHOOK, book, connect_zoom

pytestmark = pytest.mark.django_db
URL = "/api/v1/meetings/webhooks/zoom"


def _post(body: bytes, *, secret: str = WEBHOOK, ts: int | None = None):
    ts = int(time.time()) if ts is None else ts
    sig = zoom_webhooks.sign(secret, str(ts), body)
    return Client().post(URL, data=body, content_type="application/json",
                         headers={"x-zm-signature": sig, "x-zm-request-timestamp": str(ts)})


def test_the_url_validation_is_answered_with_the_hmac(emu) -> None:
    body = json.dumps({"event": "endpoint.url_validation", "event_ts": 1,
                       "payload": {"plainToken": "qgg8vlvZRS6UYooatFL8Aw"}}).encode()
    r = _post(body)
    assert r.status_code == 200
    assert r.json() == zoom_webhooks.url_validation_answer(WEBHOOK, "qgg8vlvZRS6UYooatFL8Aw")


@pytest.mark.parametrize("case", ["wrong secret", "stale", "future", "tampered", "missing"])
def test_a_bad_signature_is_401_and_stores_nothing(emu, case: str) -> None:
    body = json.dumps({"event": "meeting.started", "event_ts": 1,
                       "payload": {"object": {"id": "1", "uuid": "u"}}}).encode()
    if case == "wrong secret":
        r = _post(body, secret="not-the-secret")
    elif case == "stale":
        r = _post(body, ts=int(time.time()) - 301)
    elif case == "future":
        r = _post(body, ts=int(time.time()) + 301)
    elif case == "tampered":
        ts = int(time.time())
        r = Client().post(URL, data=body.replace(b'"1"', b'"2"'),
                          content_type="application/json",
                          headers={"x-zm-signature": zoom_webhooks.sign(WEBHOOK, str(ts), body),
                                   "x-zm-request-timestamp": str(ts)})
    else:
        r = Client().post(URL, data=body, content_type="application/json")
    assert r.status_code == 401 and r.json()["code"] == "invalid_signature"
    assert not ProviderEvent.objects.exists()


def test_garbage_with_a_good_signature_is_a_clear_4xx(emu) -> None:
    for body in (b"not json", b"[1, 2]", b'{"payload": {}}',
                 b'{"event": "endpoint.url_validation", "payload": {"plainToken": 5}}'):
        r = _post(body)
        assert r.status_code == 422 and r.json()["code"] == "invalid_input", body


def _deliver(deliveries, *, twice: bool = False) -> None:
    """Each delivery as it reaches us when Zoom sends it (its own time is our clock's)."""
    for d in deliveries:
        sent = datetime.fromtimestamp(d.event["event_ts"] / 1000, tz=UTC)
        for _ in range(2 if twice else 1):
            webhooks.receive_zoom(d.body, d.headers, now=sent)


def _process_all(*, now, reverse: bool = False) -> list[str]:
    pks = list(ProviderEvent.objects.filter(processed_at__isnull=True)
               .order_by("pk").values_list("pk", flat=True))
    return [webhooks.process_event(pk, now=now) for pk in (reversed(pks) if reverse else pks)]


def test_a_meetings_events_become_its_evidence_in_any_order_and_once(emu, booked) -> None:
    coach, student, _offer, session, _user_id, _conn = booked
    assert gate.converge(session.pk) == "created"
    zoom_id = int(Meeting.objects.get(pk=session.pk).external_id)
    start = session.starts_at
    events = [*emu.start_meeting(zoom_id, at=start - timedelta(minutes=2)),
              *emu.join(zoom_id, "Coach", email=coach.email, at=start - timedelta(minutes=2)),
              *emu.join(zoom_id, "Student", email=student.email, at=start + timedelta(minutes=1)),
              *emu.end_meeting(zoom_id, at=start + timedelta(minutes=25)),
              # the host restarts it: a second instance, ended at the scheduled end
              *emu.start_meeting(zoom_id, at=start + timedelta(minutes=27)),
              *emu.end_meeting(zoom_id, at=session.ends_at)]
    _deliver(events, twice=True)  # every delivery twice: stored once
    keys = {zoom_webhooks.natural_key(d.event) for d in events}
    assert ProviderEvent.objects.count() == len(keys)
    statuses = _process_all(now=session.ends_at + timedelta(minutes=5), reverse=True)
    assert "evidence" in statuses and "joined_student" in statuses
    ev = MeetingEvidence.objects.get(session=session)
    assert ev.started_at == start - timedelta(minutes=2)  # the first instance's start
    assert ev.ended_at == session.ends_at  # the last instance's end: not an early end
    assert set(Attendance.objects.filter(session=session).values_list("user_id", flat=True)) \
        == {coach.pk, student.pk}
    assert Participation.objects.filter(meeting_id=session.pk, role="student").count() == 1
    assert _process_all(now=session.ends_at) == []  # nothing is processed twice


def test_the_free_plans_cut_at_40_minutes_is_no_early_end(emu) -> None:
    coach = make_coach(tz="UTC", admin=make_admin())
    user_id, _conn = connect_zoom(emu, coach, plan="basic")
    offer = make_offer(coach, delivery="zoom", duration_minutes=90)
    session = book(coach, offer, make_student())
    assert gate.converge(session.pk) == "created"
    zoom_id = int(Meeting.objects.get(pk=session.pk).external_id)
    start = session.starts_at
    events = emu.start_meeting(zoom_id, at=start)
    emu.set_clock(start)
    events += emu.advance_to(start + timedelta(minutes=41))  # Zoom ends it at 40
    assert any(d.event["event"] == "meeting.ended" for d in events)
    _deliver(events)
    assert "cut_by_plan" in _process_all(now=start + timedelta(minutes=42))
    ev = MeetingEvidence.objects.get(session=session)
    assert (ev.started_at, ev.ended_at) == (start, None)
    assert user_id


def test_removing_the_app_in_zoom_invalidates_the_connection(emu, booked) -> None:
    coach, student, offer, _session, user_id, conn = booked
    body = json.dumps({"event": "app_deauthorized", "event_ts": int(time.time() * 1000),
                       "payload": {"account_id": "a", "user_id": user_id,
                                   "deauthorization_time": "2026-12-06T10:00:00Z",
                                   "client_id": "cg-zoom"}}).encode()
    assert _post(body).status_code == 200
    assert _process_all(now=clock.now()) == ["connection_invalidated"]
    conn.refresh_from_db()
    assert conn.state == "invalid" and "app_deauthorized" in conn.last_error
    with pytest.raises(VideoConnectionInvalid):
        book(coach, offer, student, day=4)

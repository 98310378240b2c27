"""A Zoom session's meeting follows it, through the real Zoom client against the local Zoom
emulator: created once when booked (adopted, never duplicated, after a crash), moved once
when rescheduled and not touched when nothing changed, deleted when cancelled; the
booking guard; the daily limit; the join link in the window; a rotated token."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from coachgate.kit import clock
from coachgate.kit.crypto import decrypt
from coachgate.kit.errors import VideoConnectionInvalid, VideoNotConnected
from coachgate.meetings import connections as conns
from coachgate.meetings import gate
from coachgate.meetings import services as meetings
from coachgate.meetings.models import Meeting, MeetingState, VideoConnection
from coachgate.meetings.rules import JoinState
from coachgate.scheduling import services as scheduling
from tests.factories import make_admin, make_coach, make_offer, make_student
from tests.meetings.conftest import book, connect_zoom

pytestmark = pytest.mark.django_db
def test_a_booked_session_gets_one_meeting_with_its_join_link(emu, booked) -> None:
    coach, student, _offer, session, user_id, _conn = booked
    row = Meeting.objects.get(pk=session.pk)
    assert (row.state, row.provider, row.external_id) == (MeetingState.PENDING, "zoom", "")
    assert gate.converge(session.pk) == "created"
    row.refresh_from_db()
    assert row.state == MeetingState.LIVE and emu.meeting_ids(user_id) == [int(row.external_id)]
    zoom_meeting = emu.meeting(int(row.external_id))
    assert zoom_meeting is not None
    assert zoom_meeting["topic"] == f"Zoom lesson · coachgate #{session.pk}"
    assert zoom_meeting["start_time"] == session.starts_at.astimezone(UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    assert zoom_meeting["duration"] == 60
    assert zoom_meeting["join_url"] not in row.join_url  # stored encrypted
    assert decrypt(row.join_url) == zoom_meeting["join_url"]
    assert gate.converge(session.pk) == "unchanged"
    # In the window the student is sent to the meeting, the coach to a fresh start link.
    inside = session.starts_at - timedelta(minutes=4)
    assert meetings.join(student, session.pk, now=inside).url == zoom_meeting["join_url"]
    host = meetings.join(coach, session.pk, now=inside)
    assert host.state == JoinState.OPEN and host.url is not None and "/s/" in host.url
    before = meetings.join(student, session.pk, now=inside - timedelta(minutes=2))
    assert (before.state, before.url) == (JoinState.EARLY, None)


def test_a_crash_after_zoom_answered_is_adopted_never_duplicated(emu, booked) -> None:
    _coach, _student, _offer, session, user_id, conn = booked
    api = gate.api_for(conn, now=clock.now())
    # Two earlier runs made a meeting each and crashed before recording it.
    for _ in range(2):
        api.create(topic=f"Zoom lesson · {gate.tag(session.pk)}", start=session.starts_at,
                   minutes=60, zone="UTC")
    assert len(emu.meeting_ids(user_id)) == 2
    assert gate.converge(session.pk) == "adopted"
    assert len(emu.meeting_ids(user_id)) == 1  # the duplicate is deleted
    row = Meeting.objects.get(pk=session.pk)
    assert [int(row.external_id)] == emu.meeting_ids(user_id)
    # Adopted without knowing its time: one update makes sure, then nothing.
    assert gate.converge(session.pk) == "updated"
    assert gate.converge(session.pk) == "unchanged"


def test_a_reschedule_moves_the_meeting_once_and_a_cancel_deletes_it(
        emu, booked, django_capture_on_commit_callbacks) -> None:
    coach, _student, offer, session, user_id, _conn = booked
    assert gate.converge(session.pk) == "created"
    meeting_id = emu.meeting_ids(user_id)[0]
    new_start = session.starts_at + timedelta(days=1)
    with django_capture_on_commit_callbacks(execute=True):  # session_changed is on commit
        scheduling.reschedule_session(coach, session.pk, new_start, now=clock.now())
    assert Meeting.objects.get(pk=session.pk).next_due_at is not None  # made due
    patches = len([c for c in emu.calls if c.method == "PATCH"])
    assert gate.converge(session.pk) == "updated"
    assert gate.converge(session.pk) == "unchanged"
    assert len([c for c in emu.calls if c.method == "PATCH"]) == patches + 1
    assert emu.meeting(meeting_id)["start_time"] == new_start.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert emu.meeting_ids(user_id) == [meeting_id]  # the same meeting, moved
    scheduling.cancel_booking(coach, session.pk, now=clock.now())
    assert gate.converge(session.pk) == "deleted"
    assert emu.meeting(meeting_id) is None
    assert Meeting.objects.get(pk=session.pk).state == MeetingState.DELETED
    assert offer.pk  # the offer is untouched


def test_a_meeting_deleted_in_zoom_is_made_again_when_the_session_moves(emu, booked) -> None:
    coach, _student, _offer, session, user_id, _conn = booked
    assert gate.converge(session.pk) == "created"
    gone = emu.meeting_ids(user_id)[0]
    gate.api_for(Meeting.objects.get(pk=session.pk).connection, now=clock.now()).delete(
        str(gone))
    scheduling.reschedule_session(coach, session.pk, session.starts_at + timedelta(days=1),
                                  now=clock.now())
    assert gate.converge(session.pk) == "created"
    assert len(emu.meeting_ids(user_id)) == 1 and emu.meeting_ids(user_id) != [gone]


def test_zooms_daily_limit_waits_until_midnight_utc(emu, booked) -> None:
    _coach, _student, _offer, session, _user_id, _conn = booked
    emu.set_daily_limit(0)
    now = clock.now()
    assert gate.converge(session.pk, now=now) == "waiting"
    row = Meeting.objects.get(pk=session.pk)
    midnight = datetime.combine(emu.now().date() + timedelta(days=1), datetime.min.time(),
                                UTC)
    assert row.next_due_at == midnight and "Retrying at" in row.last_error
    assert row.state == MeetingState.PENDING


def test_an_expired_token_is_refreshed_with_zooms_rotation(emu, booked) -> None:
    _coach, _student, _offer, session, _user_id, conn = booked
    VideoConnection.objects.filter(pk=conn.pk).update(
        token_expires_at=clock.now() - timedelta(minutes=1))
    old_refresh = decrypt(conn.refresh_token)
    assert gate.converge(session.pk) == "created"
    conn.refresh_from_db()
    assert conn.state == "active" and decrypt(conn.refresh_token) != old_refresh


def test_a_zoom_offer_is_booked_only_with_a_working_connection(emu) -> None:
    admin = make_admin()
    coach = make_coach(tz="UTC", admin=admin)
    offer = make_offer(coach, delivery="zoom")
    student = make_student()
    with pytest.raises(VideoNotConnected) as exc:
        book(coach, offer, student)
    assert (exc.value.status, exc.value.code) == (409, "video_not_connected")
    _user_id, conn = connect_zoom(emu, coach)
    conns.mark_invalid(conn.pk, "revoked in Zoom", now=clock.now())
    with pytest.raises(VideoConnectionInvalid):
        book(coach, offer, student)
    assert not Meeting.objects.exists()

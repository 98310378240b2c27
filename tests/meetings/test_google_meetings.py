"""A Google Meet session's space, through the real Meet client against the local Google
emulator: made when booked, kept when the session moves (a space has no time), closed
when it is cancelled; the student is sent to its meeting link in the window."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from coachgate.integrations.google.emulator import GoogleEmulator
from coachgate.kit import clock
from coachgate.meetings import connections as conns
from coachgate.meetings import gate
from coachgate.meetings import services as meetings
from coachgate.meetings.models import Meeting, MeetingState, Provider
from coachgate.scheduling import services as scheduling
from tests.factories import coach_profile, make_admin, make_coach, make_offer, make_student
from tests.meetings.conftest import book

pytestmark = pytest.mark.django_db
CLIENT, SECRET = "cg-google", "cg-google-secret"


@pytest.fixture
def google(settings) -> Iterator[GoogleEmulator]:
    with GoogleEmulator() as g:
        g.register_client(CLIENT, SECRET)
        settings.COACHGATE = {**settings.COACHGATE, "GOOGLE_CLIENT_ID": CLIENT,
                              "GOOGLE_CLIENT_SECRET": SECRET, "GOOGLE_AUTH_URL": g.auth_base,
                              "GOOGLE_TOKEN_URL": g.token_url,
                              "GOOGLE_MEET_API_URL": g.api_base}
        yield g


def test_a_meet_session_gets_a_space_kept_when_moved_and_closed_when_cancelled(
        google) -> None:
    coach = make_coach(tz="UTC", admin=make_admin())
    sub = google.create_user(coach.email)
    answer = google.issue_tokens(sub, CLIENT, sorted(conns.GOOGLE_SCOPES))

    class Tokens:
        access_token = answer["access_token"]
        refresh_token = answer["refresh_token"]
        expires_at = clock.now() + timedelta(seconds=int(answer["expires_in"]))

    conns.store_grant(coach_profile(coach).pk, Provider.GOOGLE_MEET, tokens=Tokens(),
                      scopes=frozenset(answer["scope"].split()), needed=conns.GOOGLE_SCOPES,
                      account_id=sub, account_email=coach.email, now=clock.now())
    offer = make_offer(coach, delivery="google_meet")
    student = make_student()
    session = book(coach, offer, student)
    assert gate.converge(session.pk) == "created"
    row = Meeting.objects.get(pk=session.pk)
    space = google.space(row.external_id)
    assert space["config"]["accessType"] == "TRUSTED"
    assert gate.converge(session.pk) == "unchanged"
    url = meetings.join(student, session.pk, now=session.starts_at).url
    assert url == space["meetingUri"]
    scheduling.reschedule_session(coach, session.pk, session.starts_at + timedelta(days=1),
                                  now=clock.now())
    assert gate.converge(session.pk) == "updated"
    assert Meeting.objects.get(pk=session.pk).external_id == row.external_id  # same space
    scheduling.cancel_booking(coach, session.pk, now=clock.now())
    assert gate.converge(session.pk) == "deleted"
    assert google.space(row.external_id)["config"]["accessType"] == "RESTRICTED"
    assert Meeting.objects.get(pk=session.pk).state == MeetingState.DELETED
    assert len(google.spaces(sub)) == 1  # never a second space

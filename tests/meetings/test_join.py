"""coachgate's own join link, /sessions/{id}/join: who may use it, the window, the Jitsi room
and its token, and the pages before and after the window."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import time_machine
from django.test import Client

from coachgate.access import services as access
from coachgate.kit.errors import NotFound
from coachgate.meetings import connections as conns
from coachgate.meetings import services as meetings
from coachgate.meetings.rules import JoinState
from coachgate.scheduling import services as scheduling
from tests.factories import MONDAY, make_admin, make_coach, make_offer, make_student

pytestmark = pytest.mark.django_db
START = MONDAY.replace(hour=10)
BOOKED_AT = MONDAY - timedelta(days=2)
SECRET = "jitsi-secret-of-32-characters-xx"


@pytest.fixture
def booked():
    with time_machine.travel(BOOKED_AT, tick=False):
        admin = make_admin()
        coach = make_coach(admin=admin)
        student = make_student()
        offer = make_offer(coach)  # delivery jitsi
        session = scheduling.book_session(student, offer.pk, START, now=BOOKED_AT).session
    return coach, student, admin, session


def test_before_the_window_a_countdown_then_the_room_then_over(booked) -> None:
    coach, student, _, session = booked
    early = meetings.join(student, session.pk, now=START - timedelta(minutes=6))
    assert (early.state, early.url) == (JoinState.EARLY, None)
    assert early.opens_in(START - timedelta(minutes=6)) == timedelta(minutes=1)
    inside = meetings.join(student, session.pk, now=START - timedelta(minutes=5))
    assert inside.state == JoinState.OPEN
    room = meetings.jitsi_room_name(session.pk)
    assert inside.url == f"https://meet.jit.si/{room}"  # the platform's server
    assert meetings.join(coach, session.pk, now=START).url == inside.url  # one room
    over = meetings.join(student, session.pk, now=session.ends_at + timedelta(hours=1))
    assert (over.state, over.url) == (JoinState.OVER, None)


def test_rooms_are_unguessable_stable_and_differ_per_session(booked) -> None:
    _, _, _, session = booked
    room = meetings.jitsi_room_name(session.pk)
    assert room == meetings.jitsi_room_name(session.pk)
    assert room != meetings.jitsi_room_name(session.pk + 1)
    secret_part = room.rsplit("-", 1)[1]
    assert len(secret_part) >= 24 and secret_part.isalnum()


def test_a_coachs_jwt_jitsi_server_gets_a_token_valid_in_the_window_only(booked) -> None:
    coach, student, _, session = booked
    conns.connect_jitsi(coach, base_url="https://meet.example.org", app_id="cg",
                        app_secret=SECRET, now=BOOKED_AT)
    url = meetings.join(student, session.pk, now=START).url
    assert url is not None and url.startswith("https://meet.example.org/coachgate-")
    token = parse_qs(urlsplit(url).query)["jwt"][0]
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience="jitsi",
                        options={"verify_nbf": False, "verify_exp": False})
    assert claims["nbf"] == int((START - timedelta(minutes=5)).timestamp())
    assert claims["exp"] == int((session.ends_at + timedelta(hours=1)).timestamp())
    assert claims["room"] == meetings.jitsi_room_name(session.pk)
    assert claims["context"]["user"]["moderator"] == "false"
    assert claims["context"]["user"]["email"] == student.email
    coach_token = parse_qs(urlsplit(meetings.join(coach, session.pk, now=START).url or "")
                           .query)["jwt"][0]
    assert jwt.decode(coach_token, SECRET, algorithms=["HS256"], audience="jitsi",
                      options={"verify_nbf": False, "verify_exp": False}
                      )["context"]["user"]["moderator"] == "true"
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, "another-secret-of-32-characters!", algorithms=["HS256"],
                   audience="jitsi")


def test_only_the_coach_a_booked_student_and_admins_may_join(booked) -> None:
    _, student, admin, session = booked
    assert meetings.join(admin, session.pk, now=START).state == JoinState.OPEN
    with pytest.raises(NotFound):
        meetings.join(make_student("stranger@test.example"), session.pk, now=START)
    with pytest.raises(NotFound):
        meetings.join(make_coach("other@test.example", admin=admin), session.pk, now=START)
    scheduling.cancel_booking(student, session.pk, now=BOOKED_AT)
    with pytest.raises(NotFound):
        meetings.join(student, session.pk, now=START)


def test_a_cancelled_session_has_nothing_to_join(booked) -> None:
    coach, _, _, session = booked
    scheduling.cancel_booking(coach, session.pk, now=BOOKED_AT)
    assert meetings.join(coach, session.pk, now=START).state == JoinState.CANCELLED


def test_e_mails_and_reminders_carry_coachgates_join_link_not_the_rooms(booked) -> None:
    _, _, _, session = booked
    row = access.access_row(session)
    assert row is not None
    assert access.channel_link(row).endswith(f"/sessions/{session.pk}/join")
    assert meetings.jitsi_room_name(session.pk) not in access.channel_link(row)


def test_the_join_page_redirects_in_the_window_and_counts_down_before(booked) -> None:
    _, student, _, session = booked
    client = Client()
    with time_machine.travel(START - timedelta(minutes=30), tick=False):
        client.force_login(student)  # a login of that day: sessions expire
        page = client.get(f"/sessions/{session.pk}/join")
    assert page.status_code == 200
    text = page.content.decode()
    assert "Not open yet" in text and 'data-opens="' in text and "Opens in 25:00" in text
    with time_machine.travel(START, tick=False):
        went = client.get(f"/sessions/{session.pk}/join")
    assert went.status_code == 302
    assert went["Location"] == f"https://meet.jit.si/{meetings.jitsi_room_name(session.pk)}"
    with time_machine.travel(session.ends_at + timedelta(hours=2), tick=False):
        over = client.get(f"/sessions/{session.pk}/join")
    assert over.status_code == 200 and "This session is over" in over.content.decode()

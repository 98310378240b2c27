"""The coach dashboard's overview and sessions pages (/coach/, /coach/sessions/ and a
session's page), with real bookings and settlements made through the services."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from coachgate.billing import services as billing
from coachgate.billing.models import Settlement
from coachgate.scheduling import services as scheduling
from coachgate.scheduling.models import Session
from tests.factories import MONDAY, make_coach, make_offer, make_student

START = MONDAY + timedelta(hours=10)  # 10:00 UTC = 10:00 in London (GMT in March)
M = timedelta(minutes=1)
INTAKE = [{"label": "What do you want to work on?", "type": "text", "required": True},
          {"label": "Level", "type": "choice", "choices": ["beginner", "advanced"]}]


@pytest.fixture
def booked(coach, student, now, django_capture_on_commit_callbacks):
    offer = make_offer(coach, title="Python review", intake_fields=INTAKE)
    with django_capture_on_commit_callbacks(execute=True):
        session = scheduling.book_session(
            student, offer.pk, START, now=now,
            intake={"what_do_you_want_to_work_on": "Async <b>code</b>", "level": "advanced"},
        ).session
    return session


def _client(user) -> Client:
    c = Client()
    c.force_login(user)
    return c


def test_the_list_shows_students_intake_answers_and_status(booked, coach, student, now):
    student.display_name = "Ada Student"
    student.save()
    with time_machine.travel(now, tick=False):
        page = _client(coach).get("/coach/sessions/")
    assert page.status_code == 200
    text = page.text
    assert "Ada Student" in text and "Python review" in text
    assert "What do you want to work on?" in text and "Async &lt;b&gt;code&lt;/b&gt;" in text
    assert "Level" in text and "advanced" in text
    assert "Scheduled" in text and "Europe/London" in text
    assert "Monday 3 March, 10:00–11:00" in text  # the coach's zone (London = UTC in March)
    assert f'href="/coach/sessions/{booked.pk}/"' in text
    assert "No past sessions yet" in text
    # Not started: no outcome buttons, the join link is not handed out.
    assert "Student absent" not in text and "Join now" not in text


def test_times_follow_the_viewers_zone(booked, coach, now):
    coach.timezone = "Asia/Tokyo"
    coach.save()
    with time_machine.travel(now, tick=False):
        text = _client(coach).get("/coach/sessions/").text
    assert "Monday 3 March, 19:00–20:00" in text and "Asia/Tokyo" in text


def test_outcome_buttons_appear_with_the_wait_and_settle_with_the_payout(booked, coach):
    detail = f"/coach/sessions/{booked.pk}/"
    with time_machine.travel(START + 5 * M, tick=False):
        c = _client(coach)  # logged in "now": a login from today has expired by 2031
        text = c.get(detail).text
        assert "Happening now" in text and "End session" in text
        assert f'action="/sessions/{booked.pk}/no-show"' not in text
        assert "“Student absent” from 10:20" in text
        assert "Join now" in text  # inside the join window
    with time_machine.travel(START + 21 * M, tick=False):
        text = c.get(detail).text
        assert f'action="/sessions/{booked.pk}/no-show"' in text
        assert f'name="next" value="{detail}"' in text
        r = c.post(f"/sessions/{booked.pk}/no-show", {"next": detail})
        assert r.status_code == 302 and r.url == detail
        text = c.get(detail).text
        listing = c.get("/coach/sessions/").text
    settlement = Settlement.objects.get(session=booked)
    assert (settlement.charge_minor, settlement.payout_minor) == (2500, 2250)
    assert "Student absent" in text and "Your payout: <strong class=\"payout\">" in text
    assert "22.50" in text and "charged" in text and "25.00" in text
    assert "End session" not in text
    assert "No upcoming sessions" in listing
    past = listing.split('id="past-h"')[1]
    assert "Student absent" in past and "22.50" in past


def test_an_unsafe_next_is_not_followed(booked, coach):
    with time_machine.travel(START + 21 * M, tick=False):
        r = _client(coach).post(f"/sessions/{booked.pk}/no-show",
                                {"next": "https://evil.example/coach/sessions/"})
    assert r.status_code == 302 and r.url == "/sessions/"


def test_the_detail_page_shows_the_audit_trail_and_the_gate_timeline(booked, coach, student):
    with time_machine.travel(START + 45 * M, tick=False):
        billing.complete(coach, booked.pk, now=START + 45 * M)
        text = _client(coach).get(f"/coach/sessions/{booked.pk}/").text
    assert "Audit trail" in text and "Booked" in text and "Completed" in text
    assert re.search(r"by\s+you", text)
    assert "scheduled → completed" in text
    # The gates, planned from the policy the session was booked under, in the viewer's zone.
    assert "Access timeline" in text
    assert "Join button opens" in text and "Mon 3 Mar, 09:55" in text
    assert "Access closes" in text and "Mon 3 Mar, 12:00" in text  # the scheduled end + 1 h
    assert "Private channel" not in text  # a Jitsi session has no channel to make
    assert "Reminder 24 hours before" in text
    assert "times in Europe/London" in text
    assert "Completed" in text and "40.50" not in text
    assert "45.00" in text  # 90 % of 50.00


def test_another_coachs_session_is_not_found(booked, admin, now):
    other = make_coach("other@test.example", admin=admin)
    with time_machine.travel(now, tick=False):
        c = _client(other)
        assert c.get(f"/coach/sessions/{booked.pk}/").status_code == 404
        assert c.get("/coach/sessions/99999999999999999999/").status_code == 404
        assert booked.offer.title not in c.get("/coach/sessions/").text


def test_a_coach_with_many_sessions_gets_pages_in_a_bounded_number_of_queries(
        coach, now, django_capture_on_commit_callbacks):
    offer = make_offer(coach, title="Many")
    students = [make_student(f"s{i}@test.example") for i in range(3)]
    for day in range(30):
        for hour in (9, 11):
            scheduling.book_session(students[(day + hour) % 3], offer.pk,
                                    MONDAY + timedelta(days=day, hours=hour), now=now)
    assert Session.objects.count() == 60
    with time_machine.travel(now, tick=False):
        c = _client(coach)
        c.get("/coach/sessions/")  # warm the caches (site settings, sessions)
        with CaptureQueriesContext(connection) as first:
            page = c.get("/coach/sessions/")
        with CaptureQueriesContext(connection) as later:
            c.get("/coach/sessions/?up=3")
    assert page.status_code == 200
    assert page.text.count('class="card session-card"') == 20
    assert "Page 1 of 3" in page.text
    assert len(first) <= 20, [q["sql"] for q in first]
    assert len(later) == len(first)


def test_the_overview_guides_a_new_coach(admin, now):
    from coachgate.accounts import services as accounts
    from coachgate.catalog import services as catalog

    user = accounts.create_user(email="new@test.example", password="pw-new-12345")
    app = accounts.apply_as_coach(user, display_name="Newbie", bio="", specialties=[],
                                  timezone="UTC")
    catalog.approve_application(admin, app.pk)
    user.refresh_from_db()
    with time_machine.travel(now, tick=False):
        c = _client(user)
        text = c.get("/coach/").text
        assert "Get started" in text and "3 steps left" in text
        for href in ("/coach/profile/", "/coach/availability/", "/coach/offers/"):
            assert f'href="{href}"' in text
        assert "No sessions booked yet" in text
        assert "Connect Discord" not in text  # no Discord offer
        make_offer(user, publish=False, delivery="discord_voice")
        text = c.get("/coach/").text
        assert "Connect Discord" in text and "Publish a draft" in text and "4 steps left" in text


def test_the_overview_shows_next_sessions_counts_and_balance(booked, coach, student, now):
    with time_machine.travel(now, tick=False):
        c = _client(coach)
        text = c.get("/coach/").text
    assert "Get started" not in text  # the factory's coach has it all
    assert "Python review" in text and "Mon 3 Mar, 10:00" in text
    # Friday noon: Monday's session is next week, not this week.
    assert re.search(r'class="stat">0</p><p class="stat-label">upcoming this week', text)
    with time_machine.travel(START - timedelta(hours=1), tick=False):
        text = c.get("/coach/").text
        assert re.search(r'class="stat">1</p><p class="stat-label">upcoming this week', text)
    with time_machine.travel(START + 45 * M, tick=False):
        text = c.get("/coach/").text
        assert re.search(r'class="stat">1</p><p class="stat-label">started, waiting', text)
        billing.complete(coach, booked.pk, now=START + 45 * M)
        text = c.get("/coach/").text
    assert "45.00" in text and "owed to you" in text


def test_a_discord_sessions_timeline_shows_when_each_gate_was_done(coach, student, now,
                                                                    discord):
    from coachgate.access import services as access

    discord.link(coach, now=now)
    discord.link(student, now=now)
    offer = make_offer(coach, delivery="discord_voice")
    session = scheduling.book_session(student, offer.pk, START, now=now).session
    grant = START - timedelta(hours=2)  # the default policy: grant 2 h before the start
    with time_machine.travel(grant + 7 * timedelta(seconds=1), tick=False):
        access.converge(session.pk)
        c = _client(coach)
        text = c.get(f"/coach/sessions/{session.pk}/").text
    assert "Private channel made (hidden)" in text and "open to the participants" in text
    rows = text.split('<table class="stack gates">')[1].split("</table>")[0]
    granted = rows.split("Access granted to coach and students")[1].split("</tr>")[0]
    assert "Mon 3 Mar, 08:00" in granted and "Mon 3 Mar, 08:00:07" in granted
    assert "badge-ok" in granted
    revoked = rows.split("Access revoked")[1].split("</tr>")[0]
    assert "upcoming" in revoked
    with time_machine.travel(START + timedelta(hours=2, minutes=3), tick=False):
        billing.complete(coach, session.pk, now=START + 50 * M)
        access.converge(session.pk)
        text = c.get(f"/coach/sessions/{session.pk}/").text
    rows = text.split('<table class="stack gates">')[1].split("</table>")[0]
    revoked = rows.split("Access revoked")[1].split("</tr>")[0]
    assert "Mon 3 Mar, 12:00" in revoked and "Mon 3 Mar, 12:03:00" in revoked
    assert "closed for good" in text


def test_a_group_session_marks_each_absent_student_on_their_own(coach, now):
    offer = make_offer(coach, title="Group", capacity=3)
    ann, bob = make_student("ann@test.example"), make_student("bob@test.example")
    session = scheduling.book_session(ann, offer.pk, START, now=now).session
    scheduling.book_session(bob, offer.pk, START, now=now)
    detail = f"/coach/sessions/{session.pk}/"
    with time_machine.travel(START + 21 * M, tick=False):
        c = _client(coach)
        text = c.get(detail).text
        assert "ann@test.example is absent" in text and "bob@test.example is absent" in text
        assert text.count(f'action="/sessions/{session.pk}/no-show"') == 2
        r = c.post(f"/sessions/{session.pk}/no-show", {"next": detail, "student_id": ann.pk})
        assert r.status_code == 302 and r.url == detail
        text = c.get(detail).text
    assert "ann@test.example is absent" not in text and "bob@test.example is absent" in text
    [s] = Settlement.objects.filter(session=session)
    assert (s.student_id, s.outcome, s.payout_minor) == (ann.pk, "no_show_student", 2250)
    assert "A student marked absent" in text and "22.50 USD" in text


def test_a_cancelled_session_shows_what_was_not_needed(booked, coach, now,
                                                       django_capture_on_commit_callbacks):
    with time_machine.travel(now, tick=False):
        with django_capture_on_commit_callbacks(execute=True):  # access reacts on commit
            scheduling.cancel_booking(coach, booked.pk, now=now)
        c = _client(coach)
        text = c.get(f"/coach/sessions/{booked.pk}/").text
        listing = c.get("/coach/sessions/").text
    rows = text.split('<table class="stack gates">')[1].split("</table>")[0]
    opens = rows.split("Access opens to coach and students")[1].split("</tr>")[0]
    assert "not needed" in opens
    closes = rows.split("Access closes")[1].split("</tr>")[0]
    assert "badge-ok" in closes and "closed for good" in text
    assert "Cancelled" in text and "scheduled → cancelled" in text
    assert "Join" not in text.split('id="gates-h"')[0].split("session-actions")[1]
    past = listing.split('id="past-h"')[1]
    assert "Cancelled" in past and "No upcoming sessions" in listing


def test_a_session_whose_policies_cannot_be_read_still_renders(booked, coach, now):
    """Policies stored before validation existed: the pages say so instead of a 500."""
    Session.objects.filter(pk=booked.pk).update(access_policy={"grant_before_s": "soon"},
                                                money_policy={"no_show_wait_ratio": []})
    with time_machine.travel(START + 30 * M, tick=False):
        c = _client(coach)
        listing = c.get("/coach/sessions/")
        detail = c.get(f"/coach/sessions/{booked.pk}/")
    assert listing.status_code == 200 and "Access unavailable" in listing.text
    assert detail.status_code == 200 and "access settings cannot be read" in detail.text

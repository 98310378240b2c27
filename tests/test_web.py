"""Server-rendered pages: browse, see slots in your zone, book and cancel from the web."""

from __future__ import annotations

import time_machine

from coachgate.scheduling.models import Booking
from tests.factories import MONDAY


def test_browse_offer_book_and_cancel_in_the_browser(client, offer, student, now):
    with time_machine.travel(now, tick=False):
        home = client.get("/")
        assert home.status_code == 200 and offer.coach.display_name in home.text
        page = client.get(f"/offers/{offer.pk}/?tz=Asia/Tokyo")
        assert page.status_code == 200 and "Asia/Tokyo" in page.text
        assert "Log in as a student" in page.text
        client.force_login(student)
        page = client.get(f"/offers/{offer.pk}/")
        start = MONDAY.replace(hour=9).isoformat()
        assert f'value="{start}"' in page.text
        r = client.post(f"/offers/{offer.pk}/book", {"start": start})
        assert r.status_code == 302 and r.url == "/sessions/"
        booking = Booking.objects.get()
        assert booking.student == student
        listing = client.get("/sessions/")
        assert offer.title in listing.text
        r = client.post(f"/sessions/{booking.session_id}/cancel")
        booking.refresh_from_db()
        assert booking.status == "cancelled"
        # A bad start is a message, not a 500.
        r = client.post(f"/offers/{offer.pk}/book", {"start": "not-a-time"}, follow=True)
        assert r.status_code == 200 and "not valid" in r.text


def test_healthz(client, db):
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json()["status"] == "ok"


def test_pages_show_times_in_the_viewers_zone(client, offer, student, now):
    """London 09:00 (UTC in March) is 18:00 in Tokyo: the label must say so, not just the
    heading. Caught by looking at a screenshot: template filters convert to the active zone."""
    with time_machine.travel(now, tick=False):
        page = client.get(f"/offers/{offer.pk}/?tz=Asia/Tokyo").text
        assert "Monday 03 March 2031" in page
        assert ">18:00<" in page and ">09:00<" not in page
        assert ">09:00<" in client.get(f"/offers/{offer.pk}/?tz=Europe/London").text
        assert ">09:00<" in client.get(f"/offers/{offer.pk}/?tz=Nowhere/Atlantis").text  # UTC
        student.timezone = "America/New_York"
        student.save()
        client.force_login(student)
        client.post(f"/offers/{offer.pk}/book", {"start": MONDAY.replace(hour=9).isoformat()})
        listing = client.get("/sessions/").text
        assert "Mon 03 Mar 2031 04:00" in listing and "America/New_York" in listing



def test_join_button_opens_with_the_window(client, coach, student, now, discord):
    from datetime import timedelta

    from coachgate.access import services as access
    from coachgate.scheduling import services as scheduling
    from tests.factories import make_offer

    discord.link(coach, now=now)
    discord.link(student, now=now)
    offer = make_offer(coach, delivery="discord_voice")
    start = MONDAY.replace(hour=10)
    session = scheduling.book_session(student, offer.pk, start, now=now).session
    with time_machine.travel(start - timedelta(minutes=6), tick=False):
        client.force_login(student)
        access.converge(session.pk)
        page = client.get("/sessions/").text
        assert "Join now" not in page and "data-opens=" in page
    with time_machine.travel(start - timedelta(minutes=5), tick=False):
        page = client.get("/sessions/").text
        link = access.channel_link(access.SessionAccess.objects.get(pk=session.pk))
        assert "Join now" in page and link in page and "discord.com/channels/" in link
    with time_machine.travel(start + timedelta(hours=2), tick=False):
        access.converge(session.pk)
        assert "Join now" not in client.get("/sessions/").text


def test_no_show_button_appears_after_the_wait(client, offer, coach, student, now):
    from datetime import timedelta

    from coachgate.billing.models import Settlement
    from coachgate.scheduling import services as scheduling

    start = MONDAY.replace(hour=9)
    session = scheduling.book_session(student, offer.pk, start, now=now).session
    with time_machine.travel(start + timedelta(minutes=10), tick=False):
        client.force_login(coach)
        page = client.get("/sessions/")
        assert "Student absent" not in page.text and "no-show button from 09:20" in page.text
        r = client.post(f"/sessions/{session.pk}/no-show", follow=True)
        assert "can be marked absent from 09:20" in r.text and not Settlement.objects.exists()
    with time_machine.travel(start + timedelta(minutes=20), tick=False):
        assert "Student absent" in client.get("/sessions/").text
        r = client.post(f"/sessions/{session.pk}/no-show", follow=True)
        assert r.status_code == 200 and "Marked the student absent." in r.text
        assert Settlement.objects.get().charge_minor == 2500
        client.force_login(student)
        page = client.get("/sessions/")
        assert "student no-show: charged 25.00 USD" in page.text
        r = client.post(f"/sessions/{session.pk}/teleport", follow=True)
        assert r.status_code == 200 and "Unknown action." in r.text

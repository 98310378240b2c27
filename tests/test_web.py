"""Server-rendered pages: browse, see slots in your zone, book and cancel from the web."""

from __future__ import annotations

import time_machine

from coachgate.scheduling.models import Booking
from tests.conftest import MONDAY


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

"""Become a coach from the web: apply, see the application's state, apply again after a
rejection; bad input changes nothing."""

from __future__ import annotations

import pytest

from coachgate.accounts import services as accounts
from coachgate.accounts.models import CoachApplication
from coachgate.catalog import services as catalog

pytestmark = pytest.mark.django_db

GOOD = {"display_name": "Grace", "bio": "I teach Go.", "specialties": ["Go", "tsumego"],
        "timezone": "Europe/Berlin", "motivation": "I love it."}


@pytest.fixture
def web(client, student):
    client.force_login(student)
    return client


def test_a_student_applies_and_sees_it_pending(web, student):
    page = web.get("/become-a-coach/")
    assert page.status_code == 200 and "Send application" in page.text
    r = web.post("/become-a-coach/", GOOD)
    assert r.status_code == 302 and r.url == "/become-a-coach/"
    app = CoachApplication.objects.get(user=student)
    assert (app.display_name, app.specialties, app.timezone, app.motivation) == (
        "Grace", ["Go", "tsumego"], "Europe/Berlin", "I love it.")
    page = web.get("/become-a-coach/")
    assert "Waiting for review" in page.text and "Send application" not in page.text
    again = web.post("/become-a-coach/", GOOD, follow=True)
    assert "waiting" in again.text and CoachApplication.objects.count() == 1


def test_a_rejection_shows_the_note_and_allows_applying_again(web, student, admin):
    web.post("/become-a-coach/", GOOD)
    app = CoachApplication.objects.get(user=student)
    accounts.reject_application(admin, app.pk, note="Tell us more about your teaching.")
    page = web.get("/become-a-coach/")
    assert "Not approved" in page.text and "Tell us more about your teaching." in page.text
    assert "Apply again" in page.text
    web.post("/become-a-coach/", GOOD | {"bio": "More about me."})
    assert CoachApplication.objects.filter(user=student, status="pending").count() == 1


def test_an_approved_coach_is_sent_to_the_dashboard(web, student, admin):
    web.post("/become-a-coach/", GOOD)
    catalog.approve_application(admin, CoachApplication.objects.get(user=student).pk,
                                note="Welcome!")
    page = web.get("/become-a-coach/")
    assert "Approved" in page.text and "Welcome!" in page.text and 'href="/coach/"' in page.text


@pytest.mark.parametrize(("change", "words"), [
    ({"display_name": ""}, "This field is required"),
    ({"specialties": ["a" * 41]}, "longer than 40"),
    ({"specialties": [str(i) for i in range(13)]}, "At most 12"),
    ({"timezone": "Nowhere/Land"}, "Select a valid choice"),
    ({"motivation": "m" * 2001}, "at most 2000"),
    ({"bio": "bell\x07"}, "control characters"),
])
def test_bad_applications_change_nothing(web, change, words):
    r = web.post("/become-a-coach/", GOOD | change)
    assert r.status_code == 200 and words in r.content.decode()
    assert not CoachApplication.objects.exists()


def test_the_home_page_links_students_to_it(web):
    assert 'href="/become-a-coach/"' in web.get("/").text

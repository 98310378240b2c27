"""The public and student pages on the design system: what a missing, draft, archived or
suspended coach's offer answers, the intake form's labelled inputs and typed answers, and
the bounded slot wall."""

from __future__ import annotations

import re
from datetime import timedelta

import time_machine

from coachgate.catalog import services as catalog
from coachgate.catalog.models import CoachProfile
from coachgate.scheduling.models import Booking
from tests.factories import MONDAY, make_coach, make_offer, make_student

INTAKE = [{"label": "Your goal", "type": "textarea", "required": True},
          {"label": "Years of practice", "type": "number"},
          {"label": "Level", "type": "choice", "choices": ["new", "advanced"]},
          {"label": "Portfolio", "type": "url"},
          {"label": "Reply to", "type": "email"},
          {"label": "I read the rules", "type": "checkbox", "required": True},
          {"label": "Nickname", "type": "text"}]


def test_archived_offers_and_suspended_coaches_answer_the_404_page(client, coach, offer,
                                                                 student, admin):
    archived = make_offer(coach, title="Old")
    catalog.set_offer_status(coach, archived.pk, "archived")
    for who in (None, student):
        if who:
            client.force_login(who)
        r = client.get(f"/offers/{archived.pk}/")
        assert r.status_code == 404 and "Page not found" in r.text
    # Its coach and the admins still see it, marked as not public, with no booking form.
    for who in (coach, admin):
        client.force_login(who)
        page = client.get(f"/offers/{archived.pk}/").text
        assert "Archived" in page and "only you and the platform" in page
        assert 'name="start"' not in page
    client.logout()
    CoachProfile.objects.filter(user=coach).update(status="suspended")
    for path in (f"/coaches/{coach.coach_profile.pk}/", f"/offers/{offer.pk}/"):
        r = client.get(path)
        assert r.status_code == 404 and "Page not found" in r.text, path
    assert client.get("/coaches/abc/").status_code == 404


def test_every_intake_input_is_labelled_and_typed_answers_book(client, coach, student, now):
    offer = make_offer(coach, intake_fields=INTAKE)
    with time_machine.travel(now, tick=False):
        client.force_login(student)
        page = client.get(f"/offers/{offer.pk}/").text
        ids = re.findall(r'<(?:input|textarea|select)[^>]* id="(intake-[^"]+)"', page)
        assert len(ids) == len(INTAKE)
        for fid in ids:
            assert f'<label for="{fid}"' in page, fid
        start = MONDAY.replace(hour=9).isoformat()
        keys = {f["label"]: f["key"] for f in offer.intake_fields}
        # Leaving out a required field: the service's message, nothing booked.
        r = client.post(f"/offers/{offer.pk}/book", {"start": start}, follow=True)
        flash = re.findall(r'<p class="flash flash-error">(.*?)</p>', r.text)
        assert flash and "Your goal" in flash[0], flash
        assert not Booking.objects.exists()
        r = client.post(f"/offers/{offer.pk}/book", {
            "start": start, f"intake_{keys['Your goal']}": "Ship it",
            f"intake_{keys['Years of practice']}": "7", f"intake_{keys['Level']}": "advanced",
            f"intake_{keys['I read the rules']}": "on", f"intake_{keys['Portfolio']}": ""})
        assert r.status_code == 302 and r.url == "/sessions/"
        answers = Booking.objects.get().intake_answers
        assert answers[keys["Years of practice"]] == 7
        assert answers[keys["I read the rules"]] is True
        assert keys["Portfolio"] not in answers
        # Text that is not a number is the service's message, not a 500.
        other = make_student("other@test.example")
        client.force_login(other)
        r = client.post(f"/offers/{offer.pk}/book", {
            "start": MONDAY.replace(hour=11).isoformat(),
            f"intake_{keys['Your goal']}": "x", f"intake_{keys['Years of practice']}": "lots"},
            follow=True)
        assert r.status_code == 200 and "must be a number" in r.text


def test_the_slot_wall_shows_a_week_of_days_then_later_times(client, db, admin, now):
    coach = make_coach("busy@test.example", tz="UTC", admin=admin)
    offer = make_offer(coach, duration_minutes=15, slot_step_minutes=15)
    with time_machine.travel(now, tick=False):
        page = client.get(f"/offers/{offer.pk}/?tz=UTC").text
        days = re.findall(r'<span class="day-name">(\w+day \d\d \w+ \d{4})</span>', page)
        assert len(days) == 7
        later = re.search(r'href="\?from=([^"]+)">Later times', page)
        assert later is not None
        more = client.get(f"/offers/{offer.pk}/?tz=UTC&from={later.group(1)}").text
        next_days = re.findall(r'<span class="day-name">(\w+day \d\d \w+ \d{4})</span>', more)
        assert next_days and next_days[0] not in days and "Soonest times" in more
        assert (now + timedelta(days=7)).strftime("%d %B") in next_days[0]

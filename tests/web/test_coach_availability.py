"""The availability editor: weekly ranges (add, move, remove, presets), date changes on a
calendar, and the preview of the next two weeks from the slot engine. Every action is a
plain form POST; a refused one says why and changes nothing."""

from __future__ import annotations

import re
from datetime import date, time, timedelta

import pytest
import time_machine
from django.contrib.messages import get_messages

from coachgate.scheduling import services as scheduling
from coachgate.scheduling.models import AvailabilityOverride, WeeklyAvailability
from tests.factories import coach_profile, make_coach, make_offer

pytestmark = pytest.mark.django_db


@pytest.fixture
def bare_coach(admin):
    """A coach in Europe/Paris with no weekly hours yet."""
    return make_coach("bare@test.example", tz="Europe/Paris", rules=[], admin=admin)


@pytest.fixture
def web(client, bare_coach, now):
    with time_machine.travel(now, tick=False):
        client.force_login(bare_coach)
        yield client


def _week(coach) -> list[tuple[int, str, str]]:
    return [(r.weekday, r.start_time.strftime("%H:%M"), r.end_time.strftime("%H:%M"))
            for r in WeeklyAvailability.objects.filter(coach__user=coach)]


def _said(r) -> list[str]:
    """The message of this action (earlier ones wait for a page to show them)."""
    return [m.message for m in get_messages(r.wsgi_request)][-1:]


def test_the_page_shows_the_week_in_the_coach_zone(web, bare_coach):
    page = web.get("/coach/availability/")
    assert page.status_code == 200
    assert "Europe/Paris" in page.text and "Closed" in page.text
    assert "You have no offer yet" in page.text


def test_add_move_and_remove_ranges(web, bare_coach):
    r = web.post("/coach/availability/ranges/add",
                 {"weekdays": ["0", "2"], "start": "09:00", "end": "12:00"})
    assert r.status_code == 302 and r.url == "/coach/availability/#weekly-hours"
    assert _week(bare_coach) == [(0, "09:00", "12:00"), (2, "09:00", "12:00")]
    page = web.get("/coach/availability/")
    assert "Added 09:00–12:00 on Monday, Wednesday." in page.text
    monday = WeeklyAvailability.objects.get(coach__user=bare_coach, weekday=0)
    r = web.post(f"/coach/availability/ranges/{monday.pk}/edit",
                 {"weekday": "1", "start": "10:00", "end": "13:30"})
    assert _week(bare_coach) == [(1, "10:00", "13:30"), (2, "09:00", "12:00")]
    tuesday = WeeklyAvailability.objects.get(coach__user=bare_coach, weekday=1)
    r = web.post(f"/coach/availability/ranges/{tuesday.pk}/remove")
    assert _week(bare_coach) == [(2, "09:00", "12:00")]
    assert _said(r) == ["Removed Tuesday 10:00–13:30."]


def test_presets_add_to_the_chosen_weekdays(web, bare_coach):
    web.post("/coach/availability/presets", {"preset": "morning", "weekdays": ["0", "1"]})
    web.post("/coach/availability/presets", {"preset": "evening", "weekdays": ["1"]})
    # Applying the same preset again is a no-op, not an overlap.
    r = web.post("/coach/availability/presets", {"preset": "morning", "weekdays": ["0"]})
    assert _said(r) == ["Morning (09:00–12:00) on Monday."]
    assert _week(bare_coach) == [(0, "09:00", "12:00"), (1, "09:00", "12:00"),
                                 (1, "18:00", "21:00")]


@pytest.mark.parametrize(("url", "data", "words"), [
    ("ranges/add", {"weekdays": ["0"], "start": "11:00", "end": "13:00"},
     "Monday 11:00–13:00 overlaps Monday 09:00–12:00."),
    ("ranges/add", {"weekdays": ["0"], "start": "13:00", "end": "12:00"},
     "The end must be after the start"),
    ("ranges/add", {"weekdays": ["0"], "start": "25:00", "end": "26:00"}, "Enter a valid time"),
    ("ranges/add", {"weekdays": [], "start": "13:00", "end": "14:00"}, "Choose at least one day"),
    ("ranges/add", {"weekdays": ["9"], "start": "13:00", "end": "14:00"}, "Monday to Sunday"),
    ("ranges/add", {"weekdays": ["x" * 5000], "start": "13:00", "end": "14:00"},
     "Monday to Sunday"),
    ("presets", {"preset": "afternoon", "weekdays": ["0"]}, "overlaps"),
    ("presets", {"preset": "midnight", "weekdays": ["0"]}, "morning, afternoon or evening"),
    ("ranges/999999/edit", {"weekday": "0", "start": "10:00", "end": "11:00"},
     "no longer there"),
    ("ranges/999999/remove", {}, "no longer there"),
    ("overrides/add", {"day": "2031-02-27", "kind": "blocked_day"}, "in the past"),
    ("overrides/add", {"day": "2031-03-10", "kind": "extra"}, "Give the hours"),
    ("overrides/add", {"day": "2031-03-10", "kind": "extra", "start": "15:00", "end": "14:00"},
     "end must be after"),
    ("overrides/add", {"day": "not a date", "kind": "blocked_day"}, "Enter a valid date"),
    ("overrides/add", {"day": "99999-01-01", "kind": "blocked_day"}, "Enter a valid date"),
    ("overrides/add", {"day": "2031-03-10", "kind": "holiday"}, "Choose what changes"),
    ("overrides/999999/remove", {}, "No such override"),
])
def test_refused_actions_say_why_and_change_nothing(web, bare_coach, url, data, words):
    web.post("/coach/availability/ranges/add",
             {"weekdays": ["0"], "start": "09:00", "end": "12:00"})
    # Monday 09:00-13:00 with the afternoon preset (13-17) would touch, so make it overlap.
    web.post(f"/coach/availability/ranges/"
             f"{WeeklyAvailability.objects.get(coach__user=bare_coach).pk}/edit",
             {"weekday": "0", "start": "09:00", "end": "14:00"} if url == "presets"
             else {"weekday": "0", "start": "09:00", "end": "12:00"})
    before = (_week(bare_coach), list(AvailabilityOverride.objects.values()))
    r = web.post(f"/coach/availability/{url}", data)
    assert r.status_code == 302, r.content[:300]
    said = _said(r)
    assert len(said) == 1 and words in said[0] and "Nothing was changed." in said[0], said
    assert (_week(bare_coach), list(AvailabilityOverride.objects.values())) == before
    page = web.get(r.url)
    assert words in page.text.replace("&#x27;", "'")


def test_date_changes_on_the_calendar(web, bare_coach):
    web.post("/coach/availability/presets", {"preset": "morning", "weekdays": ["1"]})
    r = web.post("/coach/availability/overrides/add", {"day": "2031-03-11", "kind": "blocked_day"})
    assert r.url == "/coach/availability/?month=2031-03#overrides"
    again = web.post("/coach/availability/overrides/add",
                     {"day": "2031-03-11", "kind": "blocked_day"})
    assert "already blocked" in _said(again)[0]
    web.post("/coach/availability/overrides/add",
             {"day": "2031-03-12", "kind": "extra", "start": "14:00", "end": "16:00"})
    overlapping = web.post("/coach/availability/overrides/add",
                           {"day": "2031-03-12", "kind": "extra", "start": "15:00",
                            "end": "17:00"})
    assert "overlap" in _said(overlapping)[0]
    kinds = list(AvailabilityOverride.objects.values_list("day", "kind", "start_time"))
    assert kinds == [(date(2031, 3, 11), "blocked", None),
                     (date(2031, 3, 12), "extra", time(14))]
    page = web.get("/coach/availability/?month=2031-03")
    assert "Tue 11 Mar 2031" in page.text and "Blocked all day" in page.text
    assert "Extra hours 14:00–16:00" in page.text
    assert 'class="mark mark-off"' in page.text and "March 2031" in page.text
    blocked = AvailabilityOverride.objects.get(day=date(2031, 3, 11))
    web.post(f"/coach/availability/overrides/{blocked.pk}/remove", {"month": "2031-03"})
    assert not AvailabilityOverride.objects.filter(pk=blocked.pk).exists()
    # A hostile month shows the current one.
    assert web.get("/coach/availability/?month=0000-99").status_code == 200
    assert web.get("/coach/availability/?month=9999-12").status_code == 200


def _preview_slots(text: str) -> list[str]:
    return re.findall(r'data-slot="([0-9T:-]+)"', text)


def test_the_preview_is_the_slot_engine_for_a_published_offer(web, bare_coach, now):
    web.post("/coach/availability/presets", {"preset": "morning", "weekdays": ["0", "1"]})
    web.post("/coach/availability/overrides/add", {"day": "2031-03-04", "kind": "blocked_day"})
    offer = make_offer(bare_coach, duration_minutes=45, min_notice_minutes=0)
    page = web.get(f"/coach/availability/?offer={offer.pk}")
    offer.refresh_from_db()
    from zoneinfo import ZoneInfo

    paris = ZoneInfo("Europe/Paris")
    expected = [s.start.astimezone(paris).strftime("%Y-%m-%dT%H:%M")
                for s in scheduling.list_slots(bare_coach, offer, start=now,
                                               end=now + timedelta(days=14), now=now)]
    shown = _preview_slots(page.text)
    assert shown == expected and shown
    assert "2031-03-04" not in " ".join(shown)  # the blocked Tuesday
    assert shown[:4] == ["2031-03-03T09:00", "2031-03-03T09:45", "2031-03-03T10:30",
                         "2031-03-03T11:15"]  # 45 minutes each, inside 09-12


def test_a_draft_previews_what_it_will_offer(web, bare_coach, now):
    web.post("/coach/availability/presets", {"preset": "evening", "weekdays": ["4"]})
    draft = make_offer(bare_coach, publish=False, duration_minutes=60)
    page = web.get(f"/coach/availability/?offer={draft.pk}")
    assert "This offer is a draft" in page.text
    # Fridays 18-21 in Paris, from this evening (now is Friday 28 February, noon UTC).
    assert _preview_slots(page.text) == [f"2031-{d}T{h}:00" for d in ("02-28", "03-07")
                                         for h in ("18", "19", "20")]


def test_without_an_offer_the_preview_shows_open_hours(web, bare_coach):
    web.post("/coach/availability/presets", {"preset": "afternoon", "weekdays": ["0"]})
    page = web.get("/coach/availability/")
    assert "You have no offer yet" in page.text
    assert 'data-slot="2031-03-03T13:00–17:00"' in page.text


def test_another_coachs_offer_is_not_previewed(web, admin):
    other = make_coach("other@test.example", admin=admin)
    theirs = make_offer(other)
    page = web.get(f"/coach/availability/?offer={theirs.pk}")
    assert page.status_code == 200 and theirs.title not in page.text.split("preview-offer")[1]


def test_the_editor_is_for_coaches(client, student):
    client.force_login(student)
    assert client.get("/coach/availability/").status_code == 403
    assert client.post("/coach/availability/presets").status_code == 403


def test_a_coach_profile_helper_exists(bare_coach):
    assert coach_profile(bare_coach).timezone == "Europe/Paris"


def test_preview_slots_is_for_the_offers_coach(bare_coach, admin, now):
    from coachgate.kit.errors import Forbidden, InvalidInput

    other = make_coach("nosy@test.example", admin=admin)
    draft = make_offer(bare_coach, publish=False)
    with pytest.raises(Forbidden):
        scheduling.preview_slots(other, draft, start=now, end=now + timedelta(days=1), now=now)
    with pytest.raises(InvalidInput):
        scheduling.preview_slots(bare_coach, draft, start=now, end=now, now=now)
    with pytest.raises(InvalidInput):
        scheduling.preview_slots(bare_coach, draft, start=now, end=now + timedelta(days=93),
                                 now=now)
    assert scheduling.preview_slots(admin, draft, start=now, end=now + timedelta(days=1),
                                    now=now).slots == []  # no weekly hours yet

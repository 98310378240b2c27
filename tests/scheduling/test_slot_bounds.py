"""Issue 9, item 5 (the anonymous slot listing is bounded: a page of slots with the next
page's start, a step of at least 5 minutes, an engine that stops once it has the page) and
item 6 (override days outside the years 1900-9000 are invalid input)."""

from __future__ import annotations

import time as walltime
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coachgate.scheduling import services
from coachgate.scheduling.models import AvailabilityOverride
from coachgate.scheduling.rules import BookingRules, DateOverride, WeeklyRule, compute_slots
from tests.clients import Api
from tests.factories import MONDAY, make_coach, make_offer, token_for

ALL_DAY = [(d, time(0), time(23, 59)) for d in range(7)]


@pytest.fixture(autouse=True)
def frozen(now):
    with time_machine.travel(now, tick=False):
        yield


@pytest.fixture
def crowded(admin):
    """The probe's offer: available all day, one-minute sessions, 500 seats."""
    coach = make_coach("crowded@test.example", tz="UTC", rules=ALL_DAY, admin=admin)
    return make_offer(coach, duration_minutes=1, capacity=500)


# --- the pure engine ------------------------------------------------------------------

NOW = datetime(2031, 3, 3, tzinfo=UTC)
LONDON = ZoneInfo("Europe/London")


def _engine(limit, *, tz=LONDON, step=5, days=92):
    return compute_slots(
        tz=tz, weekly=[WeeklyRule(d, time(0), time(23, 59)) for d in range(7)],
        overrides=[DateOverride(date(2031, 3, 10), "blocked")],
        rules=BookingRules(duration=timedelta(minutes=1), step=timedelta(minutes=step),
                           min_notice=timedelta(0), horizon=timedelta(days=days)),
        busy=[], now=NOW, window_end=NOW + timedelta(days=days), limit=limit)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(limit=st.integers(0, 3000), step=st.sampled_from([5, 7, 30, 61]),
       tz=st.sampled_from(["Europe/London", "America/Santiago", "Australia/Lord_Howe"]))
def test_the_first_n_slots_are_the_first_n_of_the_whole_listing(limit, step, tz):
    whole = _engine(None, tz=ZoneInfo(tz), step=step, days=40)
    assert _engine(limit, tz=ZoneInfo(tz), step=step, days=40) == whole[:limit]


def test_the_engine_stops_once_it_has_enough_slots():
    t0 = walltime.perf_counter()
    whole = _engine(None)
    full = walltime.perf_counter() - t0
    t0 = walltime.perf_counter()
    first = _engine(501)
    page = walltime.perf_counter() - t0
    assert len(whole) > 20_000 and first == whole[:501]
    assert page * 10 < full, (page, full)  # computing 92 days then slicing would be ~equal


# --- the API: pages --------------------------------------------------------------------

def test_a_slot_answer_is_one_bounded_page_with_the_next_pages_start(crowded):
    t0 = walltime.perf_counter()
    r = Api().get(f"/offers/{crowded.pk}/slots")
    assert walltime.perf_counter() - t0 < 2
    assert r.status_code == 200
    body = r.json_body
    assert len(body["slots"]) == services.DEFAULT_SLOT_LIMIT
    assert len(r.content) < 100_000
    starts = [datetime.fromisoformat(s["start"]) for s in body["slots"]]
    # Empty step with a one-minute duration: every 5 minutes, not every minute.
    assert {b - a for a, b in pairwise(starts)} == {timedelta(minutes=5)}
    assert datetime.fromisoformat(body["next"]) == starts[-1] + timedelta(minutes=5)
    assert all(s["seats_left"] == 500 for s in body["slots"])


def test_following_next_lists_every_slot_of_the_range_once(crowded):
    start, end = MONDAY, MONDAY + timedelta(days=3)
    query = f"to={quote(end.isoformat())}&limit=500"
    r = Api().get(f"/offers/{crowded.pk}/slots?from={quote(start.isoformat())}&{query}")
    seen: list[str] = []
    pages = 0
    while True:
        assert r.status_code == 200, r.json_body
        assert len(r.json_body["slots"]) <= 500
        seen += [s["start"] for s in r.json_body["slots"]]
        pages += 1
        if r.json_body["next"] is None:
            break
        r = Api().get(f"/offers/{crowded.pk}/slots?from={quote(r.json_body['next'])}&{query}")
    expected = [s.start for s in services.list_slots(None, crowded, start=start, end=end)]
    assert expected and len(expected) == 500  # list_slots is bounded too
    assert [datetime.fromisoformat(s) for s in seen[:500]] == expected
    assert len(seen) == len(set(seen)) == 3 * 24 * 12  # 00:00 to 23:55, every 5 minutes
    assert pages == 2


@pytest.mark.parametrize("limit", ["0", "-1", "501", "100000", "1e3", "x"])
def test_a_limit_outside_1_to_500_is_refused(crowded, limit):
    r = Api().get(f"/offers/{crowded.pk}/slots?limit={limit}")
    assert (r.status_code, r.json_body["code"]) == (422, "invalid_input")


def test_the_service_refuses_a_limit_outside_the_bound(crowded):
    from coachgate.kit.errors import InvalidInput

    for limit in (0, services.MAX_SLOT_LIMIT + 1, True):
        with pytest.raises(InvalidInput) as caught:
            services.slot_page(None, crowded, limit=limit)
        assert caught.value.details == {"field": "limit"}


def test_the_range_of_one_request_is_bounded(crowded):
    r = Api().get(f"/offers/{crowded.pk}/slots?from=2031-03-03T00:00:00Z"
                  "&to=2031-06-04T00:00:00Z")
    assert (r.status_code, r.json_body["code"]) == (422, "invalid_input")
    assert r.json_body["details"] == {"field": "to"}


def test_the_offer_page_links_to_later_slots(crowded):
    client = Client()
    r = client.get(f"/offers/{crowded.pk}/")
    assert r.status_code == 200
    html = r.content.decode()
    assert "Later times" in html
    assert html.count('class="slot"') == services.MAX_SLOT_LIMIT
    later = html.split('href="?from=')[1].split('"')[0]
    r = client.get(f"/offers/{crowded.pk}/?from={later}")
    assert r.status_code == 200 and "Later times" in r.content.decode()


# --- what an offer may configure -------------------------------------------------------

@pytest.mark.parametrize("step,status", [(1, 422), (4, 422), (5, 201), (1440, 201),
                                         (1441, 422)])
def test_the_slot_step_is_at_least_5_minutes(coach, step, status):
    api = Api(token_for(coach))
    body = {"title": "T", "price_minor": 100, "currency": "USD", "duration_minutes": 30,
            "delivery": "jitsi", "slot_step_minutes": step}
    r = api.post("/offers", body)
    assert r.status_code == status, r.json_body
    offer = make_offer(coach)
    r = api.patch(f"/offers/{offer.pk}", {"slot_step_minutes": step})
    assert r.status_code == (200 if status == 201 else 422), r.json_body


# --- item 6: override days -------------------------------------------------------------

@pytest.mark.parametrize("day", ["9999-12-31", "9000-01-01", "1899-12-31", "0001-01-01"])
def test_override_days_outside_1900_9000_are_invalid_input(coach, day):
    api = Api(token_for(coach))
    for body in ({"day": day, "kind": "blocked"},
                 {"day": day, "kind": "extra", "start": "10:00", "end": "11:00"}):
        r = api.post("/coach/overrides", body)
        assert (r.status_code, r.json_body["code"]) == (422, "invalid_input"), r.json_body
        assert r.json_body["details"] == {"field": "day"}
    assert not AvailabilityOverride.objects.exists()


def test_override_days_inside_the_range_are_kept(coach):
    api = Api(token_for(coach))
    for day in ("1900-01-01", "8999-12-31"):
        r = api.post("/coach/overrides", {"day": day, "kind": "blocked"})
        assert r.status_code == 201, r.json_body
    assert AvailabilityOverride.objects.count() == 2


def test_the_admin_refuses_override_days_outside_the_range(admin, coach):
    from django.contrib.admin.sites import site
    from django.test import RequestFactory

    request = RequestFactory().post("/admin/scheduling/availabilityoverride/add/")
    request.user = admin
    form_class = site._registry[AvailabilityOverride].get_form(request)
    base = {"coach": coach.coach_profile.pk, "kind": "blocked"}
    form = form_class(data={**base, "day": "9999-12-31"})
    assert not form.is_valid() and "day" in form.errors
    form = form_class(data={**base, "kind": "extra", "day": "2031-03-03", "start_time": "11:00",
                            "end_time": "10:00"})
    assert not form.is_valid()
    form = form_class(data={**base, "day": "2031-03-03"})
    assert form.is_valid(), form.errors

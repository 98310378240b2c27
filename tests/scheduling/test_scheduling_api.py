"""API tests: booking flow, slots in the viewer's zone, and invalid input answering 4xx
with a stable code while writing nothing."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import time_machine

from coachgate.scheduling.models import Booking, Session, SessionEvent
from tests.clients import Api
from tests.factories import MONDAY, make_offer, make_student, token_for

NINE = MONDAY.replace(hour=9)


@pytest.fixture(autouse=True)
def frozen(now):
    with time_machine.travel(now, tick=False):
        yield


def counts():
    return Session.objects.count(), Booking.objects.count(), SessionEvent.objects.count()


def test_book_list_cancel_flow(offer, student, coach):
    s_api, c_api = Api(token_for(student)), Api(token_for(coach))
    r = s_api.post("/bookings", {"offer_id": offer.pk, "start": "2031-03-03T09:00:00Z"})
    assert r.status_code == 201, r.json_body
    session = r.json_body
    assert session["starts_at"].startswith("2031-03-03T09:00:00")
    assert session["bookings"][0]["student_id"] == student.pk
    r = s_api.post("/bookings", {"offer_id": offer.pk, "start": "2031-03-03T10:00:00+01:00"})
    assert r.status_code == 409 and r.json_body["code"] == "slot_taken"
    assert [s["id"] for s in c_api.get("/sessions").json_body] == [session["id"]]
    events = s_api.get(f"/sessions/{session['id']}/events").json_body
    assert [e["kind"] for e in events] == ["booked"]
    r = s_api.post(f"/sessions/{session['id']}/cancel")
    assert r.status_code == 200 and r.json_body["status"] == "cancelled"
    assert r.json_body["bookings"][0]["cancellation_outcome"] == "free"


def test_slots_are_shown_in_the_viewers_time_zone(offer):
    r = Api().get(f"/offers/{offer.pk}/slots?from=2031-03-03T00:00:00Z"
                  f"&to=2031-03-04T00:00:00Z&tz=Asia/Tokyo")
    assert r.status_code == 200
    body = r.json_body
    assert body["timezone"] == "Asia/Tokyo"
    first = body["slots"][0]
    assert first["start"].startswith("2031-03-03T09:00:00")
    assert first["local_start"] == "2031-03-03T18:00:00+09:00"
    assert len(body["slots"]) == 8  # 09:00–17:00 London = UTC in March


def test_group_booking_through_api_shares_one_session(coach):
    offer = make_offer(coach, capacity=2)
    ids = set()
    for i in range(2):
        api = Api(token_for(make_student(f"g{i}@test.example")))
        r = api.post("/bookings", {"offer_id": offer.pk, "start": "2031-03-03T09:00:00Z"})
        assert r.status_code == 201
        ids.add(r.json_body["id"])
        assert len(r.json_body["bookings"]) == 1  # a student sees only their own seat
    assert len(ids) == 1
    r = Api(token_for(make_student("g3@test.example"))).post(
        "/bookings", {"offer_id": offer.pk, "start": "2031-03-03T09:00:00Z"})
    assert r.status_code == 409 and r.json_body["code"] == "session_full"


def test_reschedule_and_complete_through_api(offer, student, coach):
    s_api, c_api = Api(token_for(student)), Api(token_for(coach))
    sid = s_api.post("/bookings", {"offer_id": offer.pk,
                                   "start": "2031-03-03T09:00:00Z"}).json_body["id"]
    r = s_api.post(f"/sessions/{sid}/reschedule", {"start": "2031-03-03T11:00:00Z"})
    assert r.status_code == 200 and r.json_body["starts_at"].startswith("2031-03-03T11:00")
    r = c_api.post(f"/sessions/{sid}/complete")
    assert r.status_code == 409 and r.json_body["code"] == "invalid_transition"
    with time_machine.travel(NINE + timedelta(hours=2, minutes=1), tick=False):
        assert c_api.post(f"/sessions/{sid}/start").json_body["status"] == "in_progress"
    # Ending after the minimum payable time (40 of 60 minutes) completes the session.
    with time_machine.travel(NINE + timedelta(hours=2, minutes=40), tick=False):
        assert c_api.post(f"/sessions/{sid}/complete").json_body["status"] == "completed"


BOOKING_CASES = [
    # (description, raw body, status, code)
    ("malformed json", '{"offer_id": 1, "start": ', 400, "malformed_json"),
    ("not an object", "[1, 2]", 422, "invalid_input"),
    ("missing start", '{"offer_id": OFFER}', 422, "invalid_input"),
    ("wrong type", '{"offer_id": "abc", "start": "2031-03-03T09:00:00Z"}', 422, "invalid_input"),
    ("naive datetime", '{"offer_id": OFFER, "start": "2031-03-03T09:00:00"}', 422,
     "invalid_input"),
    ("garbage datetime", '{"offer_id": OFFER, "start": "tomorrow"}', 422, "invalid_input"),
    ("off-grid slot", '{"offer_id": OFFER, "start": "2031-03-03T09:10:00Z"}', 422,
     "slot_not_offered"),
    ("outside hours", '{"offer_id": OFFER, "start": "2031-03-03T22:00:00Z"}', 422,
     "slot_not_offered"),
    ("past slot", '{"offer_id": OFFER, "start": "2031-02-01T09:00:00Z"}', 422, "slot_in_past"),
    ("unknown offer", '{"offer_id": 999999, "start": "2031-03-03T09:00:00Z"}', 409,
     "offer_not_bookable"),
    ("draft offer", '{"offer_id": DRAFT, "start": "2031-03-03T09:00:00Z"}', 409,
     "offer_not_bookable"),
    ("intake not an object", '{"offer_id": OFFER, "start": "2031-03-03T09:00:00Z", '
     '"intake": "x"}', 422, "invalid_input"),
    ("unknown intake field", '{"offer_id": OFFER, "start": "2031-03-03T09:00:00Z", '
     '"intake": {"nope": 1}}', 422, "invalid_input"),
]


@pytest.mark.parametrize(("case", "raw", "status", "code"), BOOKING_CASES,
                         ids=[c[0] for c in BOOKING_CASES])
def test_invalid_bookings_answer_4xx_and_write_nothing(offer, coach, student, case, raw, status,
                                                      code):
    draft = make_offer(coach, publish=False)
    api = Api(token_for(student))
    r = api.post("/bookings", raw=raw.replace("OFFER", str(offer.pk)).replace("DRAFT",
                                                                              str(draft.pk)))
    assert (r.status_code, r.json_body["code"]) == (status, code), r.json_body
    assert r.json_body["message"] and isinstance(r.json_body["details"], dict)
    assert counts() == (0, 0, 0)


OFFER_CASES = [
    ("negative price", {"price_minor": -1}, "invalid_input"),
    ("duration zero", {"duration_minutes": 0}, "invalid_input"),
    ("unknown currency", {"currency": "XYZ"}, "invalid_input"),
    ("lowercase currency", {"currency": "usd"}, "invalid_input"),
    ("unknown delivery", {"delivery": "carrier_pigeon"}, "invalid_input"),
    ("capacity zero", {"capacity": 0}, "invalid_input"),
    ("price as text", {"price_minor": "ten"}, "invalid_input"),
    ("bad intake type", {"intake_fields": [{"label": "x", "type": "file"}]}, "invalid_input"),
    ("choice without choices", {"intake_fields": [{"label": "x", "type": "choice"}]},
     "invalid_input"),
    ("bad access policy", {"access_policy": {"grant_before_s": -5}}, "invalid_input"),
    ("unknown policy key", {"access_policy": {"teleport": 1}}, "invalid_input"),
    ("wait above payable", {"money_policy": {"no_show_wait_ratio": "3/4"}}, "invalid_input"),
    ("empty title", {"title": "   "}, "invalid_input"),
]


@pytest.mark.parametrize(("case", "change", "code"), OFFER_CASES, ids=[c[0] for c in OFFER_CASES])
def test_invalid_offers_answer_422_and_write_nothing(coach, case, change, code):
    from coachgate.catalog.models import Offer

    body = {"title": "T", "price_minor": 100, "currency": "USD", "duration_minutes": 30,
            "delivery": "jitsi", **change}
    r = Api(token_for(coach)).post("/offers", body)
    assert (r.status_code, r.json_body["code"]) == (422, code), r.json_body
    assert Offer.objects.count() == 0


def test_offer_patch_rejects_nulls_and_archived_changes(coach, offer):
    api = Api(token_for(coach))
    r = api.patch(f"/offers/{offer.pk}", {"title": None})
    assert (r.status_code, r.json_body["code"]) == (422, "invalid_input")
    assert api.patch(f"/offers/{offer.pk}", {"max_sessions_per_day": None}).status_code == 200
    api.post(f"/offers/{offer.pk}/archive")
    r = api.patch(f"/offers/{offer.pk}", {"title": "new"})
    assert r.status_code == 422
    r = api.post(f"/offers/{offer.pk}/publish")
    assert (r.status_code, r.json_body["code"]) == (422, "invalid_input")
    offer.refresh_from_db()
    assert (offer.title, offer.status) == ("Session", "archived")


@pytest.mark.parametrize(("path", "body", "code"), [
    ("/coach/availability", {"rules": [{"weekday": 0, "start": "10:00", "end": "09:00"}]},
     "invalid_input"),
    ("/coach/availability", {"rules": [{"weekday": 9, "start": "09:00", "end": "10:00"}]},
     "invalid_input"),
    ("/coach/availability", {"rules": [{"weekday": 0, "start": "9am", "end": "10:00"}]},
     "invalid_input"),
    # Found by the API fuzz test: a UTC offset on a wall time used to answer 500.
    ("/coach/availability", {"rules": [{"weekday": 0, "start": "09:00Z", "end": "10:00Z"}]},
     "invalid_input"),
])
def test_invalid_availability_writes_nothing(coach, path, body, code):
    from coachgate.scheduling.models import WeeklyAvailability

    before = list(WeeklyAvailability.objects.values_list("weekday", "start_time", "end_time"))
    r = Api(token_for(coach)).put(path, body)
    assert (r.status_code, r.json_body["code"]) == (422, code)
    assert list(WeeklyAvailability.objects.values_list(
        "weekday", "start_time", "end_time")) == before


@pytest.mark.parametrize("query,code", [
    ("tz=Mars/Olympus", "invalid_input"),
    ("from=2031-03-04T00:00:00Z&to=2031-03-03T00:00:00Z", "invalid_input"),
    ("from=2031-03-03T00:00:00", "invalid_input"),
    ("from=2031-01-01T00:00:00Z&to=2031-06-01T00:00:00Z", "invalid_input"),
])
def test_invalid_slot_queries(offer, query, code):
    r = Api().get(f"/offers/{offer.pk}/slots?{query}")
    assert (r.status_code, r.json_body["code"]) == (422, code), r.json_body


def test_unknown_timezone_on_profile_and_me(coach):
    api = Api(token_for(coach))
    r = api.patch("/coach/profile", {"timezone": "Europe/Atlantis"})
    assert (r.status_code, r.json_body["code"]) == (422, "invalid_input")
    r = api.patch("/me", {"timezone": "nowhere"})
    assert (r.status_code, r.json_body["code"]) == (422, "invalid_input")
    coach.refresh_from_db()
    assert coach.coach_profile.timezone == "Europe/London" and coach.timezone == "Europe/London"


def test_openapi_document_is_served():
    r = Api().get("/openapi.json")
    assert r.status_code == 200
    doc = json.loads(r.content)
    for path in ("/api/v1/bookings", "/api/v1/offers/{offer_id}/slots",
                 "/api/v1/sessions/{session_id}/cancel", "/api/v1/coach-applications"):
        assert path in doc["paths"]


@pytest.mark.parametrize("start", ["9999-12-31T23:59:59Z", "9999-12-31T23:59:59-14:00",
                                   "0001-01-01T00:00:00+14:00", "1899-12-31T23:00:00Z"])
def test_absurd_years_are_invalid_input_not_a_crash(offer, student, start):
    r = Api(token_for(student)).post("/bookings", {"offer_id": offer.pk, "start": start})
    assert r.status_code == 422 and r.json_body["code"] == "invalid_input", r.json_body
    assert r.json_body["details"]["field"] == "start"

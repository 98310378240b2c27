"""The pack routes: who may do what, the answers' shape, errors as stable 4xx codes."""

from __future__ import annotations

import pytest
import time_machine

from coachgate.catalog.models import CoachProfile
from coachgate.packs.models import Pack
from tests.clients import Api
from tests.factories import make_coach, make_offer, make_student, token_for
from tests.packs.helpers import make_pack_offer, slot


@pytest.fixture
def pack_offer(coach):
    return make_pack_offer(coach)


@pytest.fixture(autouse=True)
def _frozen(now):
    with time_machine.travel(now, tick=False):
        yield


@pytest.fixture
def as_student(student):
    return Api(token_for(student))


@pytest.fixture
def as_coach(coach):
    return Api(token_for(coach))


@pytest.fixture
def as_admin(admin):
    return Api(token_for(admin))


def test_student_buys_sees_and_books_from_a_pack(as_student, as_coach, as_admin, pack_offer,
                                                 student):
    r = as_student.post("/packs", {"offer_id": pack_offer.pk})
    assert r.status_code == 201, r.json_body
    pack = r.json_body
    assert pack["student_id"] == student.pk and pack["offer_title"] == "Mentorship pack"
    assert (pack["size"], pack["remaining"], pack["booked"], pack["available"]) == (4, 4, 0, 4)
    assert pack["price_minor"] == 20000 and pack["session_values_minor"] == [5000] * 4
    assert pack["status"] == "active" and pack["seat"]["status"] == "active"

    r = as_student.post(f"/packs/{pack['id']}/bookings",
                        {"start": slot(0).isoformat(), "intake": {}})
    assert r.status_code == 201, r.json_body
    session = r.json_body
    assert session["offer_id"] == pack_offer.pk and session["status"] == "scheduled"
    assert session["bookings"][0]["student_id"] == student.pk

    mine = as_student.get(f"/packs/{pack['id']}").json_body
    assert (mine["remaining"], mine["booked"], mine["available"]) == (4, 1, 3)
    assert [p["id"] for p in as_student.get("/packs").json_body] == [pack["id"]]
    assert [p["id"] for p in as_coach.get("/packs").json_body] == [pack["id"]]
    assert as_coach.get(f"/packs/{pack['id']}").status_code == 200
    assert [p["id"] for p in as_admin.get("/packs").json_body] == [pack["id"]]


def test_strangers_get_404_for_packs_that_are_not_theirs(as_student, pack_offer, admin):
    pack = as_student.post("/packs", {"offer_id": pack_offer.pk}).json_body
    stranger = Api(token_for(make_student("stranger@test.example")))
    other_coach = Api(token_for(make_coach("c2@test.example", admin=admin)))
    for api in (stranger, other_coach):
        r = api.get(f"/packs/{pack['id']}")
        assert r.status_code == 404 and r.json_body["code"] == "not_found"
        assert api.get("/packs").json_body == []
    r = stranger.post(f"/packs/{pack['id']}/bookings", {"start": slot(0).isoformat()})
    assert r.status_code == 404
    assert Api().get("/packs").status_code == 401


def test_the_coach_of_the_offer_cannot_book_from_a_students_pack(as_student, as_coach,
                                                                 pack_offer):
    pack = as_student.post("/packs", {"offer_id": pack_offer.pk}).json_body
    r = as_coach.post(f"/packs/{pack['id']}/bookings", {"start": slot(0).isoformat()})
    assert r.status_code == 403 and r.json_body["code"] == "forbidden"


def test_business_errors_are_stable_409s(as_student, coach, pack_offer):
    single = make_offer(coach)
    r = as_student.post("/packs", {"offer_id": single.pk})
    assert (r.status_code, r.json_body["code"]) == (409, "not_a_pack")
    r = as_student.post("/bookings", {"offer_id": pack_offer.pk, "start": slot(0).isoformat()})
    assert (r.status_code, r.json_body["code"]) == (409, "pack_required")
    CoachProfile.objects.filter(user=coach).update(seat_capacity=0)
    r = as_student.post("/packs", {"offer_id": pack_offer.pk})
    assert (r.status_code, r.json_body["code"]) == (409, "no_seat")
    assert "no free seat" in r.json_body["message"]
    coach_id = CoachProfile.objects.get(user=coach).pk
    r = as_student.post(f"/coaches/{coach_id}/waitlist")
    assert r.status_code == 201 and r.json_body["position"] == 1
    CoachProfile.objects.filter(user=coach).update(seat_capacity=5)
    pack = as_student.post("/packs", {"offer_id": pack_offer.pk}).json_body
    for day in range(4):
        assert as_student.post(f"/packs/{pack['id']}/bookings",
                               {"start": slot(day).isoformat()}).status_code == 201
    r = as_student.post(f"/packs/{pack['id']}/bookings", {"start": slot(5).isoformat()})
    assert (r.status_code, r.json_body["code"]) == (409, "pack_used_up")


@pytest.mark.parametrize("body", [
    {}, {"offer_id": "x"}, {"offer_id": 0}, {"offer_id": 2**70}, {"offer_id": -1},
    {"offer_id": 10**9}, {"offer_id": None}])
def test_bad_purchase_input_is_4xx_json(as_student, body):
    r = as_student.post("/packs", body)
    assert 400 <= r.status_code < 500 and r.json_body["code"]


@pytest.mark.parametrize("body", [
    {}, {"start": "tomorrow"}, {"start": "2031-03-03T09:00:00"}, {"start": 5},
    {"start": "2031-03-03T09:17:00Z"}, {"start": "1999-01-01T09:00:00Z"},
    {"start": "2031-03-03T09:00:00Z", "intake": "x"}, {"start": "9999-12-31T23:59:59Z"},
    {"start": "0001-01-01T00:00:00Z"}, {"start": "9999-12-31T23:59:59-14:00"}])
def test_bad_booking_input_is_4xx_json(as_student, pack_offer, body):
    pack = as_student.post("/packs", {"offer_id": pack_offer.pk}).json_body
    r = as_student.post(f"/packs/{pack['id']}/bookings", body)
    assert 400 <= r.status_code < 500 and r.json_body["code"], r.json_body


@pytest.mark.parametrize("path", ["/packs/0", "/packs/-1", f"/packs/{2**70}", "/packs/abc"])
def test_odd_pack_ids_are_4xx(as_student, path):
    r = as_student.get(path)
    assert 400 <= r.status_code < 500 and r.json_body["code"]


def test_financial_fields_cannot_be_set_by_the_buyer(as_student, pack_offer):
    r = as_student.post("/packs", {"offer_id": pack_offer.pk, "price_minor": 1,
                                   "remaining": 99, "size": 99})
    assert r.status_code == 201
    pack = Pack.objects.get(pk=r.json_body["id"])
    assert (pack.price_minor, pack.remaining, pack.size) == (20000, 4, 4)


def test_coach_seats_shows_capacity_held_and_free(as_student, as_coach, coach, pack_offer,
                                                  student):
    CoachProfile.objects.filter(user=coach).update(seat_capacity=3)
    as_student.post("/packs", {"offer_id": pack_offer.pk})
    view = as_coach.get("/coach/seats").json_body
    assert (view["seat_capacity"], view["held"], view["free"], view["waiting"]) == (3, 1, 2, 0)
    assert view["seats"][0]["student_id"] == student.pk
    assert view["seats"][0]["status"] == "active" and view["seats"][0]["remaining"] == 4
    r = as_student.get("/coach/seats")
    assert (r.status_code, r.json_body["code"]) == (403, "forbidden")


def test_waitlist_permissions_and_errors(as_student, as_coach, coach):
    coach_id = CoachProfile.objects.get(user=coach).pk
    r = as_student.post(f"/coaches/{coach_id}/waitlist")
    assert (r.status_code, r.json_body["code"]) == (409, "seat_free")
    r = as_coach.post(f"/coaches/{coach_id}/waitlist")
    assert r.status_code == 403
    for bad in (10**9, 2**70, 0):
        r = as_student.post(f"/coaches/{bad}/waitlist")
        assert r.status_code in (404, 422) and r.json_body["code"]


def test_the_routes_are_in_the_openapi_document():
    doc = Api().get("/openapi.json").json_body
    for path in ("/api/v1/packs", "/api/v1/packs/{pack_id}", "/api/v1/packs/{pack_id}/bookings",
                 "/api/v1/coach/seats", "/api/v1/coaches/{coach_id}/waitlist"):
        assert path in doc["paths"], path

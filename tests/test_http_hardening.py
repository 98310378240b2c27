"""Bodies and bytes (issue 9, item 6): oversized bodies answer 413, NUL characters 422,
integers are JSON integers, and unknown API paths answer the API's JSON 404."""

from __future__ import annotations

import json
import re
import typing
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from pydantic import BaseModel, Strict

from coachgate.api import api as ninja_api
from coachgate.catalog.models import Offer
from coachgate.scheduling.models import Session
from tests.clients import Api
from tests.factories import MONDAY, token_for

NINE = MONDAY.replace(hour=9)


def body_routes() -> Iterator[tuple[str, str]]:
    """Every route of /api/v1 that takes a body, with its path parameters filled in."""
    for path, operations in ninja_api.get_openapi_schema()["paths"].items():
        for method in operations:
            if method in ("post", "put", "patch"):
                yield method.upper(), re.sub(r"\{[^}]+\}", "1", path)


BODY_ROUTES = sorted(set(body_routes()))


def test_the_route_table_is_not_empty() -> None:
    paths = {p for _, p in BODY_ROUTES}
    assert "/api/v1/offers" in paths and "/api/v1/billing/webhooks/stripe" in paths


def send(method: str, path: str, body: bytes, token: str | None = None) -> Any:
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    return getattr(Client(), method.lower())(path, data=body,
                                             content_type="application/json", **headers)


def assert_error(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.content[:300]
    assert r["Content-Type"].startswith("application/json")
    body: dict[str, Any] = r.json()
    assert body["code"] == code and body["message"], body
    return body


# --- 413 ----------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), BODY_ROUTES)
def test_every_route_answers_413_to_an_oversized_body(db: None, admin: Any, settings: Any,
                                                      method: str, path: str) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4096
    body = json.dumps({"title": "x" * 5000, "display_name": "y"}).encode()
    auth = None if path.endswith("/webhooks/stripe") else token_for(admin)
    error = assert_error(send(method, path, body, auth), 413, "payload_too_large")
    assert error["details"]["max_bytes"] == 4096


def test_the_default_limit_refuses_and_writes_nothing(db: None, coach: Any) -> None:
    body = json.dumps({"title": "t", "price_minor": 5000, "currency": "USD",
                       "duration_minutes": 60, "bio": "x" * 3_000_000}).encode()
    before = Offer.objects.count()
    assert_error(send("POST", "/api/v1/offers", body, token_for(coach)), 413,
                 "payload_too_large")
    assert_error(send("POST", "/api/v1/billing/webhooks/stripe", body), 413,
                 "payload_too_large")
    assert Offer.objects.count() == before


def test_a_page_answers_413_to_an_oversized_form(db: None, settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    r = Client().post("/accounts/login/", {"login": "a@b.example", "password": "p" * 2000})
    assert r.status_code == 413


# --- NUL ------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), BODY_ROUTES)
def test_every_route_refuses_a_nul_in_its_body(db: None, admin: Any, method: str,
                                               path: str) -> None:
    body = json.dumps({"title": "a\x00b", "display_name": "a\x00b", "intake": {"k": "\x00"}})
    auth = None if path.endswith("/webhooks/stripe") else token_for(admin)
    error = assert_error(send(method, path, body.encode(), auth), 422, "invalid_input")
    locations = [e["location"] for e in error["details"]["errors"]]
    assert ["body", "title"] in locations and ["body", "intake", "k"] in locations


def offer_body(**overrides: Any) -> dict[str, Any]:
    return {"title": "Yoga", "price_minor": 5000, "currency": "USD", "duration_minutes": 60,
            "session_type": "video", "delivery": "jitsi",
            **overrides}


def test_a_nul_is_refused_and_nothing_is_written(db: None, coach: Any, offer: Offer,
                                                 student: Any, now: Any) -> None:
    as_coach, as_student = Api(token_for(coach)), Api(token_for(student))
    before = Offer.objects.count()
    r = as_coach.post("/offers", offer_body(title="Yo\x00ga"))
    assert_error(r, 422, "invalid_input")
    assert r.json_body["details"]["errors"][0]["location"] == ["body", "title"]
    assert "body.title" in r.json_body["message"]
    r = as_coach.post("/offers", offer_body(intake_fields=[{"key": "goal", "label": "\x00"}]))
    assert r.json_body["details"]["errors"][0]["location"] == ["body", "intake_fields", "0",
                                                               "label"]
    assert Offer.objects.count() == before

    sessions = Session.objects.count()
    for intake in ({"goal": "a\x00"}, {"go\x00al": "a"}):
        r = as_student.post("/bookings", {"offer_id": offer.pk, "start": NINE.isoformat(),
                                          "intake": intake})
        assert_error(r, 422, "invalid_input")
    assert Session.objects.count() == sessions
    assert_error(as_student.patch("/me", {"display_name": "S\x00"}), 422, "invalid_input")
    # A raw NUL byte in the body is refused the same way.
    assert_error(as_coach.call("POST", "/offers", raw='{"title": "a\x00"}'), 422,
                 "invalid_input")


def test_an_escaped_backslash_is_not_a_nul(db: None, coach: Any) -> None:
    title = "C:\\u0000 is text"  # a backslash, then "u0000": no NUL character
    r = Api(token_for(coach)).post("/offers", offer_body(title=title))
    assert r.status_code == 201, r.json_body
    assert Offer.objects.get(pk=r.json_body["id"]).title == title


def test_a_nul_in_a_query_or_path_parameter_is_refused(db: None, offer: Offer) -> None:
    client = Client()
    r = client.get("/api/v1/coaches", {"specialty": "py\x00"})
    assert assert_error(r, 422, "invalid_input")["details"]["errors"][0]["location"] == [
        "query", "specialty"]
    assert_error(client.get(f"/api/v1/offers/{offer.pk}/slots",
                            {"tz": "UTC\x00"}), 422, "invalid_input")
    assert_error(client.get(f"/api/v1/offers/{offer.pk}%00/slots"), 422, "invalid_input")
    assert_error(client.get("/api/v1/coaches?x%00=1"), 422, "invalid_input")


def test_web_forms_refuse_a_nul(db: None, offer: Offer, student: Any) -> None:
    client = Client()
    client.force_login(student)
    sessions = Session.objects.count()
    r = client.post(f"/offers/{offer.pk}/book", {"start": NINE.isoformat(),
                                                 "intake_goal": "a\x00b"})
    assert r.status_code == 400
    assert Session.objects.count() == sessions
    r = Client().post("/accounts/login/", {"login": "a\x00@b.example", "password": "x"})
    assert r.status_code == 400
    assert Client().get("/", {"specialty": "\x00"}).status_code == 400


# --- integers are JSON integers ---------------------------------------------------------


def _lax_ints(tp: Any, metadata: list[Any], where: str, seen: set[type]) -> Iterator[str]:
    if typing.get_origin(tp) is typing.Annotated:
        base, *meta = typing.get_args(tp)
        yield from _lax_ints(base, [*metadata, *meta], where, seen)
    elif tp is int:
        if not any(isinstance(m, Strict) and m.strict for m in metadata):
            yield where
    elif isinstance(tp, type) and issubclass(tp, BaseModel):
        if tp not in seen:
            seen.add(tp)
            for name, field in tp.model_fields.items():
                yield from _lax_ints(field.annotation, list(field.metadata),
                                     f"{where}.{name}", seen)
    else:
        for arg in typing.get_args(tp):  # unions, lists, dicts
            yield from _lax_ints(arg, [], where, seen)


def test_no_body_schema_of_the_api_has_a_lax_integer() -> None:
    """Every integer in every input schema is a kit.schema.JsonInt: a new field with a plain
    `int` would accept "5000" and true again."""
    lax, bodies = [], 0
    for _, router in ninja_api._routers:
        for path, view in router.path_operations.items():
            for operation in view.operations:
                for model in operation.models:
                    if model.__ninja_param_source__ != "body":
                        continue
                    bodies += 1
                    lax += [f"{operation.methods[0]} {path}: {w}"
                            for w in _lax_ints(model, [], "body", set())]
    assert bodies >= 15
    assert lax == []


@pytest.mark.parametrize("price", ["5000", True, 5000.0, "5e3", [5000]])
def test_money_takes_a_json_integer_only(db: None, coach: Any, price: Any) -> None:
    api = Api(token_for(coach))
    before = Offer.objects.count()
    error = assert_error(api.post("/offers", offer_body(price_minor=price)), 422,
                         "invalid_input")
    assert "price_minor" in error["message"]
    assert Offer.objects.count() == before
    assert api.post("/offers", offer_body(price_minor=5000)).status_code == 201


def test_counts_and_ids_take_json_integers_only(db: None, coach: Any, offer: Offer,
                                                student: Any) -> None:
    as_coach, as_student = Api(token_for(coach)), Api(token_for(student))
    assert_error(as_coach.patch(f"/offers/{offer.pk}", {"capacity": "2"}), 422,
                 "invalid_input")
    assert_error(as_coach.patch(f"/offers/{offer.pk}", {"capacity": True}), 422,
                 "invalid_input")
    assert_error(as_coach.put("/coach/availability", {
        "timezone": "UTC", "rules": [{"weekday": "1", "start": "09:00", "end": "10:00"}]}),
        422, "invalid_input")
    assert_error(as_student.post("/bookings", {"offer_id": str(offer.pk),
                                               "start": NINE.isoformat()}), 422, "invalid_input")
    assert_error(as_student.post("/packs", {"offer_id": float(offer.pk)}), 422,
                 "invalid_input")
    offer.refresh_from_db()
    assert offer.capacity == 1
    assert as_coach.patch(f"/offers/{offer.pk}", {"capacity": 2}).status_code == 200


def test_query_and_path_integers_still_parse_from_strings(db: None, coach: Any,
                                                          offer: Offer) -> None:
    profile = coach.coach_profile.pk
    r = Api().get(f"/offers?coach_id={profile}")
    assert r.status_code == 200, r.json_body
    assert offer.pk in [o["id"] for o in r.json_body]
    assert Api().get(f"/offers/{offer.pk}").status_code == 200
    assert Api().get(f"/coaches/{profile}").status_code == 200


# --- unknown API paths --------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/v1/nothing-here"), ("GET", "/api/v1/offers/1/nothing"),
    ("POST", "/api/v1/offers/1/nothing"), ("DELETE", "/api/v1/"), ("GET", "/api/v2/offers"),
    ("GET", "/api/v1/offers/"),
])
def test_an_unknown_api_path_answers_json_404(db: None, method: str, path: str) -> None:
    assert_error(getattr(Client(), method.lower())(path), 404, "not_found")


def test_an_unknown_page_is_still_a_page(db: None) -> None:
    r = Client().get("/nothing-here")
    assert r.status_code == 404 and not r["Content-Type"].startswith("application/json")

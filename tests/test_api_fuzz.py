"""Property-based fuzzing of every API operation from our own OpenAPI document.

schemathesis generates valid and invalid inputs (types, ranges, huge numbers, odd strings);
whatever comes in, the answer must never be a 5xx, and every error must be our JSON shape.
Cases go through Django's test client (so each test keeps its rolled-back transaction), as
three roles so the role-specific code paths are reached.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest
import schemathesis
from django.test import Client
from hypothesis import HealthCheck, settings
from schemathesis.core import NOT_SET

from coachgate.scheduling import services as scheduling
from tests.factories import MONDAY, make_admin, make_coach, make_offer, make_student, token_for

# pytest-django has configured Django by now; the document needs no database.
schema = schemathesis.openapi.from_dict(json.loads(Client().get("/api/v1/openapi.json").content))
pytestmark = pytest.mark.fuzz
FUZZ = settings(max_examples=5, deadline=None, derandomize=True,
                suppress_health_check=list(HealthCheck))


@pytest.fixture
def tokens(db, now):
    admin = make_admin("fuzz-admin@test.example")
    coach = make_coach("fuzz-coach@test.example", admin=admin)
    offer = make_offer(coach, capacity=2, intake_fields=[{"label": "Goal", "required": True}])
    student = make_student("fuzz-student@test.example")
    scheduling.book_session(student, offer.pk, MONDAY.replace(hour=9), intake={"goal": "x"},
                            now=now)
    return {"coach": token_for(coach), "student": token_for(student), "admin": token_for(admin)}


def check(case: Any, token: str) -> None:
    path = case.formatted_path
    if case.query:
        path += "?" + urlencode(case.query, doseq=True)
    kwargs: dict[str, Any] = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    if case.body is not NOT_SET:
        raw = case.body if isinstance(case.body, bytes) else json.dumps(case.body)
        kwargs["data"] = raw
        kwargs["content_type"] = case.media_type or "application/json"
    response = Client().generic(case.method, path, **kwargs)
    detail = (case.method, path, case.body, response.content[:500])
    assert response.status_code < 500, detail
    if response.status_code >= 400:
        body = json.loads(response.content)
        assert set(body) == {"code", "message", "details"}, detail
        assert body["code"] and body["message"], detail


@schema.parametrize()
@FUZZ
def test_fuzz_as_coach(case, tokens):
    check(case, tokens["coach"])


@schema.parametrize()
@FUZZ
def test_fuzz_as_student(case, tokens):
    check(case, tokens["student"])


@schema.parametrize()
@FUZZ
def test_fuzz_as_admin(case, tokens):
    check(case, tokens["admin"])

"""Every endpoint against every role. Each row: method, path, body, and the expected status
for (anonymous, student, stranger student, coach, other coach, admin)."""

from __future__ import annotations

from datetime import date

import pytest
import time_machine

from coachgate.accounts import services as accounts
from coachgate.scheduling import services as scheduling
from tests.conftest import MONDAY, Api, make_admin, make_coach, make_offer, make_student, token_for

ROLES = ("anon", "student", "stranger", "coach", "other_coach", "admin")
NINE = MONDAY.replace(hour=9)


@pytest.fixture
def world(db, now):
    with time_machine.travel(now, tick=False):
        admin = make_admin()
        coach = make_coach("coach@test.example", admin=admin)
        other_coach = make_coach("other@test.example", admin=admin)
        student = make_student("student@test.example")
        stranger = make_student("stranger@test.example")
        offer = make_offer(coach)
        draft = make_offer(coach, publish=False)
        session = scheduling.book_session(student, offer.pk, NINE).session
        app = accounts.apply_as_coach(stranger, display_name="S", bio="", specialties=[],
                                      timezone="UTC")
        override = scheduling.add_override(coach, day=date(2031, 3, 10), kind="blocked")
        spare_token = accounts.issue_token(student, "spare").token
        users = {"student": student, "stranger": stranger, "coach": coach,
                 "other_coach": other_coach, "admin": admin}
        apis = {"anon": Api()} | {k: Api(token_for(u)) for k, u in users.items()}
        ids = {"offer": offer.pk, "draft": draft.pk, "session": session.pk, "app": app.pk,
               "override": override.pk, "token": spare_token.pk,
               "coach_id": coach.coach_profile.pk}
        yield apis, ids


SLOT = "2031-03-03T11:00:00Z"
TABLE = [
    ("GET", "/me", None, (401, 200, 200, 200, 200, 200)),
    ("PATCH", "/me", {"display_name": "X"}, (401, 200, 200, 200, 200, 200)),
    ("GET", "/me/tokens", None, (401, 200, 200, 200, 200, 200)),
    ("POST", "/me/tokens", {"name": "n"}, (401, 201, 201, 201, 201, 201)),
    ("DELETE", "/me/tokens/{token}", None, (401, 204, 404, 404, 404, 204)),
    ("POST", "/coach-applications", {"display_name": "A", "timezone": "UTC"},
     (401, 201, 409, 409, 409, 409)),
    ("GET", "/coach-applications", None, (401, 200, 200, 200, 200, 200)),
    ("GET", "/coach-applications/{app}", None, (401, 404, 200, 404, 404, 200)),
    ("POST", "/coach-applications/{app}/approve", {}, (401, 403, 403, 403, 403, 200)),
    ("POST", "/coach-applications/{app}/reject", {}, (401, 403, 403, 403, 403, 200)),
    ("GET", "/coaches", None, (200, 200, 200, 200, 200, 200)),
    ("GET", "/coaches/{coach_id}", None, (200, 200, 200, 200, 200, 200)),
    ("GET", "/coach/profile", None, (401, 403, 403, 200, 200, 403)),
    ("PATCH", "/coach/profile", {"bio": "b"}, (401, 403, 403, 200, 200, 403)),
    ("GET", "/offers", None, (200, 200, 200, 200, 200, 200)),
    ("POST", "/offers", {"title": "T", "price_minor": 1, "currency": "EUR",
                         "duration_minutes": 30, "delivery": "jitsi"},
     (401, 403, 403, 201, 201, 403)),
    ("GET", "/offers/{offer}", None, (200, 200, 200, 200, 200, 200)),
    ("GET", "/offers/{draft}", None, (404, 404, 404, 200, 404, 200)),
    ("PATCH", "/offers/{offer}", {"title": "New"}, (401, 403, 403, 200, 403, 200)),
    ("POST", "/offers/{draft}/publish", {}, (401, 404, 404, 200, 404, 200)),
    ("POST", "/offers/{offer}/archive", {}, (401, 403, 403, 200, 403, 200)),
    ("GET", "/offers/{offer}/slots", None, (200, 200, 200, 200, 200, 200)),
    ("GET", "/offers/{draft}/slots", None, (404, 404, 404, 200, 404, 200)),
    ("GET", "/coach/availability", None, (401, 403, 403, 200, 200, 403)),
    ("PUT", "/coach/availability", {"rules": []}, (401, 403, 403, 200, 200, 403)),
    ("POST", "/coach/availability/presets", {"weekdays": [0], "preset": "morning"},
     (401, 403, 403, 200, 200, 403)),
    ("GET", "/coach/overrides", None, (401, 403, 403, 200, 200, 403)),
    ("POST", "/coach/overrides", {"day": "2031-03-11", "kind": "blocked"},
     (401, 403, 403, 201, 201, 403)),
    ("DELETE", "/coach/overrides/{override}", None, (401, 403, 403, 204, 404, 403)),
    ("POST", "/bookings", {"offer_id": "{offer}", "start": SLOT},
     (401, 201, 201, 403, 403, 403)),
    ("GET", "/sessions", None, (401, 200, 200, 200, 200, 200)),
    ("GET", "/sessions/{session}", None, (401, 200, 404, 200, 404, 200)),
    ("GET", "/sessions/{session}/events", None, (401, 200, 404, 200, 404, 200)),
    ("POST", "/sessions/{session}/cancel", {}, (401, 200, 404, 200, 404, 200)),
    ("POST", "/sessions/{session}/reschedule", {"start": SLOT},
     (401, 200, 404, 200, 404, 200)),
    # Before the join window: the coach and admin pass the permission check and then meet
    # the time rule (409); others are stopped first.
    ("POST", "/sessions/{session}/start", {}, (401, 403, 404, 409, 404, 409)),
    ("POST", "/sessions/{session}/complete", {}, (401, 403, 404, 409, 404, 409)),
    ("GET", "/sessions/{session}/access", None, (401, 200, 404, 200, 404, 200)),
    ("POST", "/sessions/{session}/access/converge", {}, (401, 403, 404, 403, 404, 200)),
    # The sweep trigger takes the cron secret, never a user's token.
    ("POST", "/system/sweep", {}, (401, 401, 401, 401, 401, 401)),
    ("GET", "/me/discord", None, (401, 200, 200, 200, 200, 200)),
    ("DELETE", "/me/discord", None, (401, 204, 204, 204, 204, 204)),
    ("GET", "/admin/discord", None, (401, 403, 403, 403, 403, 200)),
    ("PUT", "/admin/discord", {"guild_id": "123"}, (401, 403, 403, 403, 403, 200)),
    ("POST", "/sessions/{session}/no-show", {}, (401, 403, 404, 409, 404, 403)),
    ("POST", "/sessions/{session}/coach-no-show", {}, (401, 409, 404, 403, 404, 403)),
    ("POST", "/sessions/{session}/meeting-events",
     {"kind": "started", "at": "2031-03-03T09:00:00Z"}, (401, 403, 404, 422, 404, 422)),
    ("GET", "/sessions/{session}/settlements", None, (401, 200, 404, 200, 404, 200)),
    ("POST", "/billing/card", {}, (401, 200, 200, 200, 200, 200)),
    ("POST", "/billing/card/confirm", {}, (401, 404, 404, 404, 404, 404)),
    ("GET", "/coaches/{coach_id}/balance", None, (401, 404, 404, 200, 404, 200)),
    ("GET", "/coaches/{coach_id}/statement?from=2031-03-01T00:00:00Z&to=2031-04-01T00:00:00Z"
     "&currency=USD", None, (401, 404, 404, 200, 404, 200)),
    ("POST", "/admin/payouts",
     {"coach_id": "{coach_id}", "currency": "USD", "amount_minor": 1, "reference": "r"},
     (401, 403, 403, 403, 403, 422)),
    ("POST", "/billing/webhooks/stripe", {}, (404, 404, 404, 404, 404, 404)),
    ("GET", "/packs", None, (401, 200, 200, 200, 200, 200)),
    ("POST", "/packs", {"offer_id": "{offer}"}, (401, 409, 409, 403, 403, 403)),
    ("GET", "/packs/999999", None, (401, 404, 404, 404, 404, 404)),
    ("POST", "/packs/999999/bookings", {"start": SLOT}, (401, 404, 404, 404, 404, 404)),
    ("GET", "/coach/seats", None, (401, 403, 403, 200, 200, 403)),
    ("POST", "/coaches/{coach_id}/waitlist", {}, (401, 409, 409, 403, 403, 403)),
    ("GET", "/openapi.json", None, (200, 200, 200, 200, 200, 200)),
]
CASES = [(m, p, b, role, codes[i]) for m, p, b, codes in TABLE for i, role in enumerate(ROLES)]


def _fill(value, ids):
    if isinstance(value, str):
        for key, v in ids.items():
            if value == "{" + key + "}":
                return v
            value = value.replace("{" + key + "}", str(v))
        return value
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


@pytest.mark.parametrize(("method", "path", "body", "role", "expected"), CASES,
                         ids=[f"{m} {p} as {r}" for m, p, _, r, _ in CASES])
def test_endpoint_permissions(world, now, method, path, body, role, expected):
    apis, ids = world
    with time_machine.travel(now, tick=False):
        r = apis[role].call(method, _fill(path, ids), _fill(body, ids) if body is not None
                            else ({} if method in ("POST", "PUT", "PATCH") else None))
    assert r.status_code == expected, (r.status_code, r.json_body)
    if r.status_code >= 400:
        assert set(r.json_body) == {"code", "message", "details"}


def test_lists_only_show_what_each_role_may_see(world, now):
    apis, ids = world
    with time_machine.travel(now, tick=False):
        assert [s["id"] for s in apis["student"].get("/sessions").json_body] == [ids["session"]]
        assert apis["stranger"].get("/sessions").json_body == []
        assert apis["other_coach"].get("/sessions").json_body == []
        assert [s["id"] for s in apis["coach"].get("/sessions").json_body] == [ids["session"]]
        assert [s["id"] for s in apis["admin"].get("/sessions").json_body] == [ids["session"]]
        assert apis["student"].get("/coach-applications").json_body == []
        assert [a["id"] for a in apis["stranger"].get("/coach-applications").json_body] == [
            ids["app"]]
        titles = {o["id"] for o in apis["anon"].get("/offers").json_body}
        assert ids["offer"] in titles and ids["draft"] not in titles
        assert ids["draft"] in {o["id"] for o in apis["coach"].get("/offers").json_body}
        assert ids["draft"] not in {o["id"] for o in apis["other_coach"].get("/offers").json_body}


def test_bad_or_revoked_tokens_are_401(world, now):
    apis, ids = world
    assert Api("cg_not-a-real-token").get("/me").status_code == 401
    r = Api("cg_not-a-real-token").get("/offers")  # public, but a bad token is still an error
    assert (r.status_code, r.json_body["code"]) == (401, "unauthenticated")
    assert apis["student"].delete(f"/me/tokens/{ids['token']}").status_code == 204

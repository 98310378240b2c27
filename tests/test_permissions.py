"""Every endpoint against every role. Each row: method, path, body, and the expected status
for (anonymous, student, stranger student, coach, other coach, admin)."""

from __future__ import annotations

from datetime import date

import pytest
import time_machine

from coachgate.accounts import services as accounts
from coachgate.scheduling import services as scheduling
from tests import web_permissions
from tests.clients import Api
from tests.factories import MONDAY, make_admin, make_coach, make_offer, make_student, token_for

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
    # Nobody here has linked Discord: there is nothing to join, the answer is the state.
    ("POST", "/me/discord/join", {}, (401, 200, 200, 200, 200, 200)),
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
    # Zoom's webhook: the signature decides, whoever sends it (none here: 401).
    ("POST", "/meetings/webhooks/zoom", {}, (401, 401, 401, 401, 401, 401)),
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


# --- Pages (Django views outside the JSON API) -------------------------------------------
# Each expected answer is a status, or where the page redirects to (302) with the level of
# the message it leaves and, after " | ", words that message must contain: a page action
# answers a refused action with an error message on the sessions page (never with another
# user's data), and the words tell a permission refusal from a time rule, as the API's
# 403 and 409 do. Every page is listed with GET and POST: the read-only pages take GET (and
# HEAD) only, the actions POST only (405 otherwise); an anonymous visitor to a page that
# needs an account is sent to the login page first, whatever the method.


def login(path: str) -> str:
    return f"/accounts/login/?next={path}"


SESSIONS_OK = "/sessions/ success"
NO_SUCH_SESSION = "/sessions/ error | No such session."
COACH_ONLY = "/sessions/ error | Only the session's coach"
STUDENT_ONLY = "/sessions/ error | Only a student of this session"
TOO_EARLY = "/sessions/ error | once the no-show wait has passed"
NOT_STARTED = "/sessions/ error | cannot be completed before it starts"
UNKNOWN_ACTION = "/sessions/ error | Unknown action."
NOT_A_STUDENT = "/offers/{offer}/ error | Only student accounts book"
ALL_405, ALL_200, ALL_404 = (405,) * 6, (200,) * 6, (404,) * 6
WEB_TABLE = [
    ("GET", "/", {}, ALL_200),
    ("POST", "/", {}, ALL_405),
    ("GET", "/healthz", {}, ALL_200),
    ("POST", "/healthz", {}, ALL_405),
    # The test client's address is loopback: metrics are for the machine itself (the token
    # and admin rules for other addresses are tests/test_metrics.py's).
    ("GET", "/metrics", {}, ALL_200),
    ("POST", "/metrics", {}, ALL_405),
    ("GET", "/coaches/{coach_id}/", {}, ALL_200),
    ("GET", "/coaches/999999/", {}, ALL_404),
    ("POST", "/coaches/{coach_id}/", {}, ALL_405),
    ("GET", "/offers/{offer}/", {}, ALL_200),
    # A draft is its coach's and the admins' only: a 404 page for everyone else.
    ("GET", "/offers/{draft}/", {}, (404, 404, 404, 200, 404, 200)),
    ("GET", "/offers/999999/", {}, ALL_404),
    ("POST", "/offers/{offer}/", {}, ALL_405),
    ("GET", "/offers/{offer}/book", {}, (login("/offers/{offer}/book"),) + (405,) * 5),
    # Any student may book a free slot; coaches and admins are told only students book.
    ("POST", "/offers/{offer}/book", {"start": SLOT},
     (login("/offers/{offer}/book"), SESSIONS_OK, SESSIONS_OK, NOT_A_STUDENT, NOT_A_STUDENT,
      NOT_A_STUDENT)),
    ("GET", "/sessions/", {}, (login("/sessions/"),) + (200,) * 5),
    ("POST", "/sessions/", {}, (login("/sessions/"),) + (405,) * 5),
    ("GET", "/sessions/{session}/cancel", {},
     (login("/sessions/{session}/cancel"),) + (405,) * 5),
    ("POST", "/sessions/{session}/cancel", {},
     (login("/sessions/{session}/cancel"), SESSIONS_OK, NO_SUCH_SESSION, SESSIONS_OK,
      NO_SUCH_SESSION, SESSIONS_OK)),
    # coachgate's join link: the session's coach, its student and admins see its page (a
    # countdown here: the session starts later); anyone else a 404 page.
    ("GET", "/sessions/{session}/join", {},
     (login("/sessions/{session}/join"), 200, 404, 200, 404, 200)),
    ("POST", "/sessions/{session}/join", {},
     (login("/sessions/{session}/join"),) + (405,) * 5),
    ("GET", "/sessions/{session}/no-show", {},
     (login("/sessions/{session}/no-show"),) + (405,) * 5),
    # Before the session: its coach meets the time rule, everyone else the permission one.
    ("POST", "/sessions/{session}/no-show", {},
     (login("/sessions/{session}/no-show"), COACH_ONLY, NO_SUCH_SESSION, TOO_EARLY,
      NO_SUCH_SESSION, COACH_ONLY)),
    ("POST", "/sessions/{session}/coach-no-show", {},
     (login("/sessions/{session}/coach-no-show"), TOO_EARLY, NO_SUCH_SESSION, STUDENT_ONLY,
      NO_SUCH_SESSION, STUDENT_ONLY)),
    ("POST", "/sessions/{session}/complete", {},
     (login("/sessions/{session}/complete"), COACH_ONLY, NO_SUCH_SESSION, NOT_STARTED,
      NO_SUCH_SESSION, NOT_STARTED)),
    ("POST", "/sessions/{session}/dance", {},
     (login("/sessions/{session}/dance"),) + (UNKNOWN_ACTION,) * 5),
    ("GET", "/discord/join", {}, (login("/discord/join"),) + (405,) * 5),
    # Nobody here has linked Discord: the button says so instead of redirecting in silence.
    ("POST", "/discord/join", {},
     (login("/discord/join"),) + ("/sessions/ error | Connect your Discord account",) * 5),
    # django-ninja's own pages beside the API: Swagger UI, the schema (its GET is in
    # TABLE) and the API root (a 404 whose only purpose is to give the API its URL).
    ("GET", "/api/v1/docs", {}, ALL_200),
    ("POST", "/api/v1/docs", {}, ALL_405),
    ("POST", "/api/v1/openapi.json", {}, ALL_405),
    ("GET", "/api/v1/", {}, ALL_404),
    ("POST", "/api/v1/", {}, ALL_404),
]
WEB_TABLE += web_permissions.all_rows()  # each section's own rows (tests/web_permissions/)
WEB_CASES = [(m, p, b, role, codes[i]) for m, p, b, codes in WEB_TABLE
             for i, role in enumerate(ROLES)]


@pytest.fixture
def browsers(world):
    from django.test import Client

    from coachgate.accounts.models import User

    emails = {"student": "student@test.example", "stranger": "stranger@test.example",
              "coach": "coach@test.example", "other_coach": "other@test.example",
              "admin": "admin@test.example"}
    clients = {"anon": Client()}
    for role, email in emails.items():
        clients[role] = Client()
        clients[role].force_login(User.objects.get(email=email))
    return clients, world[1]


@pytest.mark.parametrize(("method", "path", "data", "role", "expected"), WEB_CASES,
                         ids=[f"{m} {p} as {r}" for m, p, _, r, _ in WEB_CASES])
def test_page_permissions(browsers, now, method, path, data, role, expected):
    from django.contrib.messages import get_messages

    clients, ids = browsers
    client = clients[role]
    client.raise_request_exception = False  # a view that raises must show here as a 500
    with time_machine.travel(now, tick=False):
        r = getattr(client, method.lower())(_fill(path, ids), _fill(data, ids))
    if r.status_code != 302:
        assert r.status_code == _fill(expected, ids), (r.status_code, r.content[:300])
        return
    expected = _fill(expected, ids)
    assert isinstance(expected, str), (r.status_code, r.url)
    where, _, words = expected.partition(" | ")
    sent = list(get_messages(r.wsgi_request))
    assert f"{r.url} {' '.join(sorted({m.level_tag for m in sent}))}".strip() == where, (
        r.url, [(m.level_tag, m.message) for m in sent])
    assert all(words in m.message for m in sent), [m.message for m in sent]


def test_the_sessions_page_lists_only_what_each_role_may_see(browsers, now):
    clients, ids = browsers
    cancel = f'action="/sessions/{ids["session"]}/cancel"'
    with time_machine.travel(now, tick=False):
        pages = {role: c.get("/sessions/").content.decode() for role, c in clients.items()
                 if role != "anon"}
    for role in ("student", "coach", "admin"):
        assert cancel in pages[role] and "No sessions yet." not in pages[role], role
    for role in ("stranger", "other_coach"):
        assert cancel not in pages[role] and "No sessions yet." in pages[role], role


# --- Completeness: every route of the URL conf is in a table above --------------------
# Whole URL trees that are not ours to tabulate, and why.
EXEMPT_TREES = {
    # Django's admin: every view sits behind AdminSite.admin_view (staff only), tested in
    # tests/test_admin_and_serve.py (non-staff are sent to the login page).
    "admin/": "Django admin, staff only through AdminSite.admin_view",
    # django-allauth's login, signup, password and social-account flows: public by design
    # (that is where one logs in); the Discord connect flow is tests/accounts' business.
    "accounts/": "django-allauth's login and account-linking flows",
}
# Methods every Django view (not a ninja operation) must be tabulated with: what a browser
# sends. A ninja operation is tabulated with each method it declares.
PAGE_METHODS = ("GET", "POST")


def _url_conf_routes():
    """(method, route) for every route: ninja operations with their declared methods,
    other views with PAGE_METHODS. route is Django's pattern, e.g. 'api/v1/me/tokens/<token_id>'."""
    from django.urls import URLPattern, URLResolver, get_resolver
    from ninja.operation import PathView

    def walk(patterns, prefix):
        for p in patterns:
            route = prefix + str(p.pattern)
            if isinstance(p, URLResolver):
                if route not in EXEMPT_TREES:
                    yield from walk(p.url_patterns, route)
                continue
            assert isinstance(p, URLPattern)
            # A ninja route's view closes over its PathView, which holds its operations.
            views = [c.cell_contents for c in (getattr(p.callback, "__closure__", None) or ())
                     if isinstance(c.cell_contents, PathView)]
            methods = ({m for v in views for op in v.operations for m in op.methods}
                       if views else set(PAGE_METHODS))
            for method in methods:
                yield method, route

    return set(walk(get_resolver().url_patterns, ""))


def _tabulated_routes():
    from django.urls import resolve

    def route_of(path):
        path = path.partition("?")[0]
        for key in ("token", "app", "override", "offer", "draft", "session", "coach_id"):
            path = path.replace("{" + key + "}", "1")
        return resolve(path).route

    return ({(m, route_of("/api/v1" + p)) for m, p, _, _ in TABLE}
            | {(m, route_of(p)) for m, p, _, _ in WEB_TABLE})


def _untabulated() -> tuple[list[tuple[str, str]], set[tuple[str, str]]]:
    """(routes of the URL conf with no row, rows that match no declared route)."""
    routes, tabulated = _url_conf_routes(), _tabulated_routes()
    assert routes, "the URL conf walk found nothing"
    return sorted(routes - tabulated, key=lambda r: (r[1], r[0])), tabulated - routes


def test_every_route_is_in_the_permission_tables():
    missing, stray = _untabulated()
    assert not missing, f"routes with no row in TABLE or WEB_TABLE: {missing}"
    assert not stray, f"table rows that match no declared method of a route: {stray}"


def _extra_api():
    from ninja import NinjaAPI

    extra = NinjaAPI(urls_namespace="permissions-test-extra", docs_url=None, openapi_url=None)

    @extra.get("/reports")
    def reports(request):  # pragma: no cover - never called, only routed
        return []

    return extra


def test_a_route_added_without_a_row_fails_the_completeness_check(settings):
    """The check is not vacuous: a URL conf with one more page and one more API operation
    (each with no row) reports exactly those, with the page under both methods and the
    operation under the one method it declares."""
    import sys
    import types

    from django.http import HttpResponse
    from django.urls import path

    import coachgate.urls

    conf = types.ModuleType("tests._urls_with_extra_routes")
    conf.urlpatterns = [*coachgate.urls.urlpatterns,
                        path("reports/<int:year>", lambda request, year: HttpResponse()),
                        path("api/extra/", _extra_api().urls)]
    sys.modules[conf.__name__] = conf
    try:
        settings.ROOT_URLCONF = conf.__name__
        missing, stray = _untabulated()
    finally:
        del sys.modules[conf.__name__]
    # The second API's root (a plain view, like /api/v1/'s) and its one GET operation.
    assert missing == [("GET", "api/extra/"), ("POST", "api/extra/"),
                       ("GET", "api/extra/reports"), ("GET", "reports/<int:year>"),
                       ("POST", "reports/<int:year>")]
    assert not stray


def test_the_completeness_check_sees_the_api_and_the_pages():
    """The walk reaches into the ninja API (per method) and the page URLs: a route added
    anywhere but the exempt trees shows up."""
    routes = _url_conf_routes()
    assert ("POST", "api/v1/me/discord/join") in routes
    assert {("GET", "api/v1/me/discord"), ("DELETE", "api/v1/me/discord")} <= routes
    assert ("PATCH", "api/v1/me/discord") not in routes  # a method the route does not take
    assert ("POST", "sessions/<int:session_id>/<slug:action>") in routes
    assert not any(route.startswith(tuple(EXEMPT_TREES)) for _, route in routes)

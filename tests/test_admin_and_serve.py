"""Django admin for admins (approvals, sessions) and `coachgate serve` as a real process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

from coachgate.accounts import services as accounts
from coachgate.accounts.models import CoachApplication
from coachgate.scheduling import services as scheduling
from tests.admin_html import table_rows
from tests.factories import MONDAY, make_student


def test_admin_approves_applications_with_the_action(client, admin):
    student = make_student("applicant@test.example")
    app = accounts.apply_as_coach(student, display_name="App", bio="", specialties=[],
                                  timezone="UTC")
    client.force_login(admin)
    r = client.post("/admin/accounts/coachapplication/",
                    {"action": "approve", "_selected_action": [app.pk]})
    assert r.status_code == 302
    app.refresh_from_db()
    student.refresh_from_db()
    assert app.status == "approved" and app.reviewed_by == admin and student.role == "coach"


@pytest.mark.parametrize("path", [
    "/admin/", "/admin/accounts/user/", "/admin/accounts/apitoken/",
    "/admin/accounts/coachapplication/", "/admin/catalog/coachprofile/",
    "/admin/catalog/offer/", "/admin/scheduling/session/",
    "/admin/scheduling/weeklyavailability/", "/admin/scheduling/availabilityoverride/",
])
def test_admin_pages_render(client, admin, offer, student, now, path):
    scheduling.book_session(student, offer.pk, MONDAY.replace(hour=9), now=now)
    client.force_login(admin)
    assert client.get(path).status_code == 200


def test_admin_session_page_shows_audit_trail(client, admin, offer, student, now):
    session = scheduling.book_session(student, offer.pk, MONDAY.replace(hour=9),
                                      now=now).session
    client.force_login(admin)
    r = client.get(f"/admin/scheduling/session/{session.pk}/change/")
    assert r.status_code == 200
    # The audit inline's row for the booking event (a bare "booked" also matches the
    # bookings inline's "Booked at" column).
    events = [row for row in table_rows(r.text) if row.get("kind")]
    assert [(e["kind"], e["actor"]) for e in events] == [("booked", student.email)]
    assert '"status": "scheduled"' in events[0]["after"]


def test_non_staff_cannot_use_admin(client, student):
    client.force_login(student)
    assert client.get("/admin/scheduling/session/").status_code == 302


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_coachgate_serve_migrates_and_answers(db, tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["COACHGATE_DATA_DIR"] = str(tmp_path)
    proc = subprocess.Popen(  # noqa: S603 - our own entry point
        [sys.executable, "-m", "coachgate.cli", "serve", "--host", "127.0.0.1", "--port",
         str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
                assert time.monotonic() < deadline, "serve did not answer within 60 s"
                time.sleep(0.2)
        assert r.json() == {"status": "ok", "database": "sqlite"}
        doc = httpx.get(f"http://127.0.0.1:{port}/api/v1/openapi.json", timeout=5).json()
        assert "/api/v1/bookings" in doc["paths"]
        r = httpx.post(f"http://127.0.0.1:{port}/api/v1/bookings", content="{", timeout=5,
                       headers={"Content-Type": "application/json"})
        assert r.status_code == 401 and r.json()["code"] == "unauthenticated"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert (tmp_path / "coachgate.sqlite3").exists()
    assert CoachApplication.objects.count() == 0  # the server used its own database


def test_api_csrf_applies_only_to_browser_sessions(db, offer, student):
    from django.test import Client

    from tests.factories import token_for

    body = {"offer_id": offer.pk, "start": "2031-03-03T09:00:00Z"}
    anonymous = Client(enforce_csrf_checks=True)
    r = anonymous.post("/api/v1/bookings", body, content_type="application/json")
    assert (r.status_code, r.json()["code"]) == (401, "unauthenticated")
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(student)
    r = browser.post("/api/v1/bookings", body, content_type="application/json")
    assert (r.status_code, r.json()["code"]) == (403, "forbidden")  # no CSRF token
    # A token needs no CSRF token: the time rule answers (the slot is fine, but it is
    # real "now" here, far before 2031: 422 would mean beyond the horizon).
    api = Client(enforce_csrf_checks=True)
    r = api.post("/api/v1/bookings", body, content_type="application/json",
                 HTTP_AUTHORIZATION=f"Bearer {token_for(student)}")
    assert r.status_code != 403 and r.json()["code"] != "forbidden"

"""Accounts: coach applications end to end, tokens, and the operator's command line."""

from __future__ import annotations

import pytest

from coachgate import cli
from coachgate.accounts import services
from coachgate.accounts.models import ApiToken, CoachApplication, User
from coachgate.catalog.models import CoachProfile
from coachgate.kit.errors import Conflict, Forbidden
from tests.clients import Api
from tests.factories import make_admin, make_student, token_for


def test_application_approval_makes_an_approved_coach(db):
    admin, student = make_admin(), make_student("future@test.example")
    api = Api(token_for(student))
    r = api.post("/coach-applications", {"display_name": "Future Coach", "bio": "b",
                                          "specialties": ["chess"], "timezone": "Asia/Tokyo"})
    assert r.status_code == 201 and r.json_body["status"] == "pending"
    r = Api(token_for(admin)).post(f"/coach-applications/{r.json_body['id']}/approve",
                                   {"note": "welcome"})
    assert r.status_code == 200 and r.json_body["status"] == "approved"
    student.refresh_from_db()
    assert student.role == "coach"
    profile = CoachProfile.objects.get(user=student)
    assert (profile.timezone, profile.specialties) == ("Asia/Tokyo", ["chess"])
    assert api.get("/coach/profile").json_body["display_name"] == "Future Coach"


def test_rejection_keeps_a_student_and_an_application_is_reviewed_once(db):
    admin, student = make_admin(), make_student()
    app = services.apply_as_coach(student, display_name="X", bio="", specialties=[],
                                  timezone="UTC")
    with pytest.raises(Conflict):  # one pending application at a time
        services.apply_as_coach(student, display_name="Y", bio="", specialties=[],
                                timezone="UTC")
    services.reject_application(admin, app.pk, note="not yet")
    with pytest.raises(Conflict):
        services.reject_application(admin, app.pk)
    student.refresh_from_db()
    assert student.role == "student" and not CoachProfile.objects.filter(user=student).exists()
    # A rejected student may apply again later.
    again = services.apply_as_coach(student, display_name="X2", bio="", specialties=[],
                                    timezone="UTC")
    assert again.status == "pending"
    with pytest.raises(Forbidden):
        services.reject_application(student, again.pk)


def test_tokens_are_stored_as_digests_and_revocation_works(db):
    student = make_student()
    issued = services.issue_token(student, "laptop")
    stored = ApiToken.objects.get()
    assert issued.raw not in (stored.digest, stored.prefix) and len(stored.digest) == 64
    assert services.authenticate_token(issued.raw) == student
    services.revoke_token(student, stored.pk)
    assert services.authenticate_token(issued.raw) is None
    api = Api()
    r = api.client.get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {issued.raw}")
    assert r.status_code == 401


def test_inactive_users_cannot_use_tokens(db):
    student = make_student()
    raw = token_for(student)
    User.objects.filter(pk=student.pk).update(is_active=False)
    assert Api(raw).get("/me").status_code == 401


def test_cli_creates_first_admin_and_a_token(db, capsys):
    assert cli.main(["user", "add", "--email", "ops@test.example", "--role", "admin",
                     "--password", "s3cret-pass!", "--token"]) == 0
    out = capsys.readouterr().out
    token = out.strip().splitlines()[-1].removeprefix("token: ")
    assert Api(token).get("/me").json_body["role"] == "admin"
    assert cli.main(["token", "create", "--email", "ops@test.example", "--name", "ci"]) == 0
    second = capsys.readouterr().out.strip()
    assert second.startswith("cg_") and second != token
    assert Api(second).get("/coach-applications").status_code == 200
    # A duplicate is a clear error, not a traceback.
    assert cli.main(["user", "add", "--email", "ops@test.example"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert cli.main(["token", "create", "--email", "nobody@test.example"]) == 2


def test_web_login_with_email_and_password(db, client):
    make_student("web@test.example")
    r = client.post("/accounts/login/", {"login": "web@test.example",
                                         "password": "pw-student-123"})
    assert r.status_code == 302
    assert client.get("/sessions/").status_code == 200
    assert Api().client.get("/sessions/").status_code == 302  # anonymous: to the login page


def test_demo_loads_coaches_offers_and_a_booking(db, capsys):
    assert cli.main(["demo", "--no-serve"]) == 0
    out = capsys.readouterr().out
    assert "coachgate demo is ready." in out and "token cg_" in out
    assert CoachProfile.objects.count() == 3
    assert CoachApplication.objects.filter(status="approved").count() == 3
    r = Api().get("/coaches")
    assert len(r.json_body) == 3
    offer_id = Api().get("/offers").json_body[0]["id"]
    assert Api().get(f"/offers/{offer_id}/slots").json_body["slots"]
    # Running it again does not duplicate anything.
    assert cli.main(["demo", "--no-serve"]) == 0
    assert CoachProfile.objects.count() == 3

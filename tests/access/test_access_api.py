"""The access routes: the external-cron sweep trigger, a session's gates and link, and the
admins' "converge now", against the Discord emulator and a real database."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
import time_machine

from coachgate.access import services
from coachgate.access.models import Category, SessionAccess
from coachgate.access.rules import Phase
from coachgate.accounts.models import User
from coachgate.scheduling import services as scheduling
from coachgate.scheduling.models import Session
from tests.clients import Api, DiscordEnv
from tests.factories import MONDAY, make_coach, make_offer, make_student, token_for

START = MONDAY + timedelta(hours=10)  # a 60-minute session: 10:00–11:00 UTC
END = START + timedelta(hours=1)
H = timedelta(hours=1)
MIN = timedelta(minutes=1)
S = timedelta(seconds=1)


def book(student: User, offer_id: int, start: datetime, now: datetime) -> Session:
    return scheduling.book_session(student, offer_id, start, now=now).session


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@pytest.fixture
def setup(db: None, discord: DiscordEnv, now: datetime, admin: User) -> dict[str, Any]:
    coach = make_coach(admin=admin)
    student = make_student()
    stranger = make_student("stranger@test.example")
    discord.link(coach, now=now)
    discord.link(student, now=now)
    offer = make_offer(coach, delivery="discord_voice")
    session = book(student, offer.pk, START, now)
    return {"admin": admin, "coach": coach, "student": student, "stranger": stranger,
            "offer": offer, "session": session}


def api(user: User) -> Api:
    return Api(token_for(user))


# --- POST /system/sweep (external cron) -------------------------------------------------


def test_sweep_refuses_everyone_when_no_secret_is_configured(db: None, settings: Any,
                                                             admin: User) -> None:
    settings.COACHGATE = {**settings.COACHGATE, "CRON_SECRET": ""}
    for bearer in ("", "x", "s3cret", token_for(admin)):
        r = Api(bearer or None).post("/system/sweep")
        assert r.status_code == 401, bearer
        assert r.json_body["code"] == "unauthenticated"
    # An empty bearer must not match the empty (unset) secret.
    r = Api().client.post("/api/v1/system/sweep", HTTP_AUTHORIZATION="Bearer ")
    assert r.status_code == 401


def test_sweep_with_the_right_secret_does_real_work(setup: dict[str, Any], discord: DiscordEnv,
                                                    settings: Any) -> None:
    settings.COACHGATE = {**settings.COACHGATE, "CRON_SECRET": "s3cret"}
    session = setup["session"]
    # The booking wrote its access row; a session without one (booked before rows were
    # written with the booking, or a row lost to a bug) is what the sweep must find.
    SessionAccess.objects.filter(pk=session.pk).delete()
    with time_machine.travel(START - 2 * H, tick=False):
        r = Api("s3cret").post("/system/sweep")
    assert r.status_code == 200, r.json_body
    body = r.json_body
    assert body["rows_created"] == 1
    assert body["converged"] == 1 and body["outcomes"] == {"ok": 1}
    assert body["drift_error"] == ""
    row = SessionAccess.objects.get(pk=session.pk)
    assert row.phase == Phase.GRANTED and row.channel_id
    assert row.channel_id in {c["id"] for c in discord.session_channels()}

    # A second sweep finds nothing due: the counts say so.
    with time_machine.travel(START - 2 * H + S, tick=False):
        again = Api("s3cret").post("/system/sweep").json_body
    assert (again["rows_created"], again["converged"], again["outcomes"]) == (0, 0, {})

    # The same call runs the settlement gate at the session's end.
    from coachgate.billing.models import Settlement

    with time_machine.travel(session.ends_at + S, tick=False):
        body = Api("s3cret").post("/system/sweep").json_body
    assert body["billing"]["sessions"] == 1 and "packs" in body
    assert Settlement.objects.get(session=session).outcome == "completed"


@pytest.mark.parametrize("bearer", ["wrong", "s3cre", "s3cret ", "S3CRET", "s3cret-and-more"])
def test_sweep_with_a_wrong_secret_is_401(db: None, settings: Any, bearer: str) -> None:
    settings.COACHGATE = {**settings.COACHGATE, "CRON_SECRET": "s3cret"}
    r = Api(bearer).post("/system/sweep")
    assert r.status_code == 401 and r.json_body["code"] == "unauthenticated"


def test_sweep_refuses_user_tokens_and_missing_headers(db: None, settings: Any,
                                                       admin: User) -> None:
    settings.COACHGATE = {**settings.COACHGATE, "CRON_SECRET": "s3cret"}
    assert Api(token_for(admin)).post("/system/sweep").status_code == 401
    r = Api().post("/system/sweep")
    assert r.status_code == 401 and r.json_body["code"] == "unauthenticated"
    # Another scheme carrying the right secret is not a Bearer token.
    r = Api().client.post("/api/v1/system/sweep", HTTP_AUTHORIZATION="Basic s3cret")
    assert r.status_code == 401
    # GET is not the trigger.
    r = Api().client.get("/api/v1/system/sweep", HTTP_AUTHORIZATION="Bearer s3cret")
    assert r.status_code == 405 and r["Allow"] == "POST"
    assert r.json() == {"code": "method_not_allowed",
                        "message": "GET is not allowed here; use POST.",
                        "details": {"allowed": ["POST"]}}


def test_sweep_accepts_a_non_ascii_bearer_without_crashing(db: None, settings: Any) -> None:
    settings.COACHGATE = {**settings.COACHGATE, "CRON_SECRET": "s3cret"}
    r = Api().client.post("/api/v1/system/sweep", HTTP_AUTHORIZATION="Bearer sécret")
    assert r.status_code == 401


# --- GET /sessions/{id}/access ----------------------------------------------------------


def test_student_sees_the_default_gates(setup: dict[str, Any]) -> None:
    session = setup["session"]
    with time_machine.travel(START - 3 * H, tick=False):
        r = api(setup["student"]).get(f"/sessions/{session.pk}/access")
    assert r.status_code == 200, r.json_body
    body = r.json_body
    gates = {(g["kind"], g["before_s"]): parse(g["at"]) for g in body["gates"]}
    assert gates == {
        ("provision", 0): START - 2 * H,
        ("grant", 0): START - 2 * H,
        ("join_window", 0): START - 5 * MIN,
        ("reminder", 24 * 3600): START - 24 * H,
        ("reminder", 15 * 60): START - 15 * MIN,
        ("revoke", 0): END + H,
    }
    # sorted by time
    assert [parse(g["at"]) for g in body["gates"]] == sorted(gates.values())
    assert body["session_id"] == session.pk
    assert body["desired_phase"] == "none" and body["join_window_open"] is False
    assert body["link"] is None
    # Admin-only fields are not shown to the student.
    assert body["last_error"] is None and body["discord_calls"] is None
    assert body["error_kind"] is None


def test_link_only_inside_the_join_window(setup: dict[str, Any], discord: DiscordEnv) -> None:
    session = setup["session"]
    student = api(setup["student"])
    services.converge(session.pk, now=START - 2 * H)
    row = SessionAccess.objects.get(pk=session.pk)
    assert row.phase == Phase.GRANTED and row.channel_id
    channel_url = f"https://discord.com/channels/{discord.guild_id}/{row.channel_id}"

    with time_machine.travel(START - 5 * MIN - S, tick=False):
        before = student.get(f"/sessions/{session.pk}/access").json_body
    assert before["phase"] == "granted" and before["desired_phase"] == "granted"
    assert (before["join_window_open"], before["link"]) == (False, None)

    with time_machine.travel(START - 5 * MIN, tick=False):
        inside = student.get(f"/sessions/{session.pk}/access").json_body
    assert (inside["join_window_open"], inside["link"]) == (True, channel_url)
    assert inside["last_error"] is None and inside["discord_calls"] is None
    assert any(c["id"] == row.channel_id for c in discord.emu.channels(discord.guild_id))

    with time_machine.travel(END + H, tick=False):
        after = student.get(f"/sessions/{session.pk}/access").json_body
    assert after["desired_phase"] == "revoked"
    assert (after["join_window_open"], after["link"]) == (False, None)


def test_a_cancelled_session_hands_out_no_link(setup: dict[str, Any],
                                              discord: DiscordEnv) -> None:
    """Revocation outranks the join window, even before the revoke run has happened."""
    session = setup["session"]
    services.converge(session.pk, now=START - H)
    assert SessionAccess.objects.get(pk=session.pk).channel_id  # not yet torn down
    with time_machine.travel(START - 10 * MIN, tick=False):
        scheduling.cancel_booking(setup["coach"], session.pk)
    with time_machine.travel(START - MIN, tick=False):
        body = api(setup["student"]).get(f"/sessions/{session.pk}/access").json_body
    assert body["desired_phase"] == "revoked"
    assert (body["join_window_open"], body["link"]) == (False, None)


def test_the_coach_sees_the_link_too(setup: dict[str, Any], discord: DiscordEnv) -> None:
    session = setup["session"]
    services.converge(session.pk, now=START - H)
    with time_machine.travel(START, tick=False):
        body = api(setup["coach"]).get(f"/sessions/{session.pk}/access").json_body
    assert body["link"] and body["link"].endswith(
        SessionAccess.objects.get(pk=session.pk).channel_id)
    assert body["discord_calls"] is None


def test_admins_see_errors_and_discord_calls(setup: dict[str, Any], discord: DiscordEnv) -> None:
    session = setup["session"]
    # A category that already exists, so the failing create is the session's own call.
    category = discord.emu.create_channel(discord.guild_id, "sessions", type=4)
    Category.objects.create(guild_id=discord.guild_id, category_id=category, name="sessions")
    discord.emu.fail_next(1, status=502, route="POST /guilds/{guild_id}/channels")
    assert services.converge(session.pk, now=START - 2 * H).outcome == "retry"
    with time_machine.travel(START - 2 * H, tick=False):
        as_admin = api(setup["admin"]).get(f"/sessions/{session.pk}/access").json_body
        as_student = api(setup["student"]).get(f"/sessions/{session.pk}/access").json_body
    assert as_admin["error_kind"] == "retry"
    assert "502" in as_admin["last_error"]
    assert "/guilds/{guild_id}/channels" in as_admin["last_error"]
    assert as_admin["discord_calls"] == 1  # the failed create; the bot lookup is shared
    with time_machine.travel(START - 2 * H + S, tick=False):
        fixed = api(setup["admin"]).post(f"/sessions/{session.pk}/access/converge").json_body
    assert (fixed["phase"], fixed["error_kind"], fixed["last_error"]) == ("granted", "", "")
    # failed create + (look for a channel the failed create may have made, create)
    assert fixed["discord_calls"] == 3
    assert (as_student["error_kind"], as_student["last_error"],
            as_student["discord_calls"]) == (None, None, None)


def test_access_of_someone_elses_session_is_404(setup: dict[str, Any]) -> None:
    r = api(setup["stranger"]).get(f"/sessions/{setup['session'].pk}/access")
    assert r.status_code == 404 and r.json_body["code"] == "not_found"
    r = Api().get(f"/sessions/{setup['session'].pk}/access")
    assert r.status_code == 401 and r.json_body["code"] == "unauthenticated"


# --- POST /sessions/{id}/access/converge -------------------------------------------------


def test_admin_converges_now(setup: dict[str, Any], discord: DiscordEnv) -> None:
    session = setup["session"]
    with time_machine.travel(START - H, tick=False):
        r = api(setup["admin"]).post(f"/sessions/{session.pk}/access/converge")
    assert r.status_code == 200, r.json_body
    body = r.json_body
    assert body["phase"] == "granted" and body["desired_phase"] == "granted"
    assert body["error_kind"] == "" and body["discord_calls"] == 1
    row = SessionAccess.objects.get(pk=session.pk)
    assert row.phase == Phase.GRANTED
    assert [c["id"] for c in discord.session_channels()] == [row.channel_id]


def test_admin_converge_before_the_window_grants_nothing(setup: dict[str, Any],
                                                         discord: DiscordEnv) -> None:
    session = setup["session"]
    with time_machine.travel(START - 3 * H, tick=False):
        body = api(setup["admin"]).post(f"/sessions/{session.pk}/access/converge").json_body
    assert body["phase"] == "none" and discord.session_channels() == []


def test_coach_and_strangers_cannot_converge(setup: dict[str, Any],
                                             discord: DiscordEnv) -> None:
    session = setup["session"]
    with time_machine.travel(START - H, tick=False):
        as_coach = api(setup["coach"]).post(f"/sessions/{session.pk}/access/converge")
        as_student = api(setup["student"]).post(f"/sessions/{session.pk}/access/converge")
        as_stranger = api(setup["stranger"]).post(f"/sessions/{session.pk}/access/converge")
    assert (as_coach.status_code, as_coach.json_body["code"]) == (403, "forbidden")
    assert (as_student.status_code, as_student.json_body["code"]) == (403, "forbidden")
    assert (as_stranger.status_code, as_stranger.json_body["code"]) == (404, "not_found")
    assert discord.session_channels() == []
    assert not SessionAccess.objects.filter(pk=session.pk, phase=Phase.GRANTED).exists()


def test_admin_converge_of_a_missing_session_is_404(setup: dict[str, Any]) -> None:
    r = api(setup["admin"]).post("/sessions/987654/access/converge")
    assert r.status_code == 404 and r.json_body["code"] == "not_found"


# --- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize("raw_id", ["abc", "1.5", "-1", "0", "99999999999999999999999",
                                    "9223372036854775808", "%20", "1e3"])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_bad_session_ids_are_4xx_json(setup: dict[str, Any], raw_id: str, method: str) -> None:
    path = f"/sessions/{raw_id}/access" + ("/converge" if method == "POST" else "")
    for user in (setup["admin"], setup["student"]):
        r = api(user).call(method, path, {} if method == "POST" else None)
        assert 400 <= r.status_code < 500, (user.email, r.status_code, r.content[:200])
        assert r["Content-Type"].startswith("application/json")
        assert isinstance(r.json_body.get("code"), str) and r.json_body["code"]

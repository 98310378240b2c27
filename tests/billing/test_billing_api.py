"""Outcomes, settlements, statements and payouts through /api/v1."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine

from coachgate.billing.models import Settlement
from coachgate.scheduling import services as scheduling
from tests.clients import Api
from tests.factories import MONDAY, token_for

START = MONDAY + timedelta(hours=10)
END = START + timedelta(hours=1)
M = timedelta(minutes=1)


@pytest.fixture
def apis(offer, student, coach, admin, now, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        session = scheduling.book_session(student, offer.pk, START, now=now).session
    return {"student": Api(token_for(student)), "coach": Api(token_for(coach)),
            "admin": Api(token_for(admin)), "session": session.pk,
            "coach_id": session.coach_id, "student_id": student.pk}


def test_no_show_through_the_api(apis) -> None:
    sid, coach = apis["session"], apis["coach"]
    with time_machine.travel(START + 10 * M, tick=False):
        r = coach.post(f"/sessions/{sid}/no-show")
        assert r.status_code == 409 and r.json_body["code"] == "outcome_too_early"
        assert r.json_body["details"]["allowed_from"] == (START + 20 * M).isoformat()
    with time_machine.travel(START + 21 * M, tick=False):
        # Financial fields in a body are not inputs: the rules decide every amount.
        r = coach.post(f"/sessions/{sid}/no-show", {"charge_minor": 1, "payout_minor": 99999})
        assert r.status_code == 200, r.json_body
        assert r.json_body["status"] == "no_show_student"
        [s] = r.json_body["settlements"]
        assert (s["charge_minor"], s["payout_minor"], s["fee_minor"]) == (2500, 2250, 250)
        again = coach.post(f"/sessions/{sid}/no-show")
        assert again.status_code == 409 and again.json_body["code"] == "already_settled"
        mine = apis["student"].get(f"/sessions/{sid}/settlements").json_body
        assert [x["outcome"] for x in mine] == ["no_show_student"]
    assert Settlement.objects.get().charge_minor == 2500


def test_settlements_are_read_only(apis) -> None:
    sid = apis["session"]
    for method in ("post", "put", "patch", "delete"):
        r = apis["admin"].call(method.upper(), f"/sessions/{sid}/settlements", {})
        assert r.status_code == 405 and r.json_body["code"] == "method_not_allowed"


def test_group_no_show_names_the_student(apis) -> None:
    with time_machine.travel(START + 25 * M, tick=False):
        r = apis["coach"].post(f"/sessions/{apis['session']}/no-show",
                               {"student_id": apis["student_id"]})
        assert r.status_code == 200 and r.json_body["status"] == "no_show_student"


def test_coach_no_show_and_evidence_through_the_api(apis) -> None:
    sid = apis["session"]
    with time_machine.travel(START + 3 * M, tick=False):
        r = apis["coach"].post(f"/sessions/{sid}/meeting-events",
                               {"kind": "joined", "at": START.isoformat(),
                                "user_id": apis["student_id"]})
        assert r.status_code == 200, r.json_body
        r = apis["coach"].post(f"/sessions/{sid}/meeting-events",
                               {"kind": "teleported", "at": START.isoformat()})
        assert r.status_code == 422 and r.json_body["code"] == "invalid_input"
        r = apis["coach"].post(f"/sessions/{sid}/meeting-events",
                               {"kind": "started", "at": "2031-03-03T10:00:00"})  # naive
        assert r.status_code == 422
    with time_machine.travel(START + 30 * M, tick=False):
        r = apis["coach"].post(f"/sessions/{sid}/no-show")
        assert r.status_code == 409 and r.json_body["code"] == "participant_attended"
        r = apis["student"].post(f"/sessions/{sid}/coach-no-show")
        assert r.status_code == 200 and r.json_body["status"] == "no_show_coach"
        assert r.json_body["settlements"][0]["charge_minor"] == 0


def test_complete_early_is_an_early_end(apis) -> None:
    with time_machine.travel(START + 30 * M, tick=False):
        r = apis["coach"].post(f"/sessions/{apis['session']}/complete")
    assert r.status_code == 200 and r.json_body["status"] == "early_end_short"
    assert r.json_body["settlements"][0]["charge_minor"] == 0


def test_statement_json_csv_and_payout(apis) -> None:
    cid, coach, admin = apis["coach_id"], apis["coach"], apis["admin"]
    with time_machine.travel(START + 45 * M, tick=False):
        assert coach.post(f"/sessions/{apis['session']}/complete").status_code == 200
        assert coach.get(f"/coaches/{cid}/balance").json_body["balances_minor"] == {"USD": 4500}
        r = admin.post("/admin/payouts", {"coach_id": cid, "currency": "usd",
                                          "amount_minor": 4500, "reference": "wire-77"})
        assert r.status_code == 201, r.json_body
        r = admin.post("/admin/payouts", {"coach_id": cid, "currency": "USD",
                                          "amount_minor": 1, "reference": "wire-78"})
        assert r.status_code == 422 and r.json_body["details"]["owed_minor"] == 0
        q = "from=2031-03-01T00:00:00Z&to=2031-04-01T00:00:00Z&currency=USD"
        st = coach.get(f"/coaches/{cid}/statement?{q}").json_body
        assert (st["opening_minor"], st["earned_minor"], st["paid_out_minor"],
                st["closing_minor"]) == (0, 4500, 4500, 0)
        assert [line["kind"] for line in st["lines"]] == ["settle", "payout"]
        r = coach.client.get(f"/api/v1/coaches/{cid}/statement?{q}&format=csv",
                             **coach.headers)
        assert r.status_code == 200 and r["Content-Type"].startswith("text/csv")
        assert "attachment" in r["Content-Disposition"]
        rows = r.content.decode().splitlines()
        assert rows[1].split(",")[1] == "opening_balance" and rows[-1].endswith(",0,USD")


@pytest.mark.parametrize(("query", "status"), [
    ("from=2031-03-01T00:00:00Z&to=2031-02-01T00:00:00Z&currency=USD", 422),
    ("from=2031-03-01T00:00:00Z&to=2033-03-01T00:00:00Z&currency=USD", 422),
    ("from=2031-03-01T00:00:00Z&to=2031-04-01T00:00:00Z&currency=XXX", 422),
    ("from=2031-03-01&to=2031-04-01T00:00:00Z&currency=USD", 422),
    ("from=2031-03-01T00:00:00Z&to=2031-04-01T00:00:00Z&currency=USD&format=pdf", 422),
])
def test_bad_statement_queries_are_clear_4xx(apis, query: str, status: int) -> None:
    r = apis["coach"].get(f"/coaches/{apis['coach_id']}/statement?{query}")
    assert r.status_code == status and set(r.json_body) == {"code", "message", "details"}


@pytest.mark.parametrize("body", [
    {"coach_id": 1, "currency": "USD", "amount_minor": 0, "reference": "r"},
    {"coach_id": 1, "currency": "USD", "amount_minor": -5, "reference": "r"},
    {"coach_id": 1, "currency": "USD", "amount_minor": 2**63, "reference": "r"},
    {"coach_id": 1, "currency": "ZZZ", "amount_minor": 5, "reference": "r"},
    {"coach_id": 1, "currency": "USD", "amount_minor": 5, "reference": "   "},
])
def test_bad_payouts_are_clear_4xx(apis, body) -> None:
    body = {**body, "coach_id": apis["coach_id"]}
    r = apis["admin"].post("/admin/payouts", body)
    assert r.status_code == 422, r.json_body

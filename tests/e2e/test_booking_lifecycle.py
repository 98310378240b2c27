"""One whole lifecycle through the public API only, from an empty platform:
admin → coach applies and is approved → availability and offer → student books in their own
zone → reschedules → coach starts and completes → the audit trail tells the story."""

from __future__ import annotations

from datetime import UTC, datetime

import time_machine

from coachgate import cli
from tests.clients import Api


def test_whole_booking_lifecycle_through_the_api(db, capsys):
    with time_machine.travel(datetime(2031, 3, 24, 8, 0, tzinfo=UTC), tick=False):
        # The operator creates the first admin from the command line.
        cli.main(["user", "add", "--email", "ops@test.example", "--role", "admin",
                  "--password", "ops-pass-123", "--token"])
        admin = Api(capsys.readouterr().out.strip().splitlines()[-1].removeprefix("token: "))
        cli.main(["user", "add", "--email", "coach@test.example", "--token"])
        coach = Api(capsys.readouterr().out.strip().splitlines()[-1].removeprefix("token: "))
        cli.main(["user", "add", "--email", "kid@test.example", "--timezone",
                  "America/New_York", "--token"])
        student = Api(capsys.readouterr().out.strip().splitlines()[-1].removeprefix("token: "))

        app = coach.post("/coach-applications", {"display_name": "Ms Coach",
                                                 "timezone": "Europe/London"}).json_body
        assert coach.post("/offers", {}).status_code in (403, 422)  # not a coach yet
        assert admin.post(f"/coach-applications/{app['id']}/approve").status_code == 200
        assert coach.post("/coach/availability/presets",
                          {"weekdays": [0, 1, 2, 3, 4], "preset": "morning"}).status_code == 200
        offer = coach.post("/offers", {
            "title": "Maths tutoring", "price_minor": 4500, "currency": "GBP",
            "duration_minutes": 60, "delivery": "jitsi",
            "intake_fields": [{"label": "Topic", "required": True}],
        }).json_body
        assert Api().get(f"/offers/{offer['id']}/slots").status_code == 404  # a draft
        coach.post(f"/offers/{offer['id']}/publish")

        # London moves to BST on 2031-03-30: 09:00 local is 09:00Z before, 08:00Z after.
        slots = student.get(f"/offers/{offer['id']}/slots?from=2031-03-27T00:00:00Z"
                            "&to=2031-04-01T00:00:00Z").json_body
        assert slots["timezone"] == "America/New_York"
        starts = [s["start"] for s in slots["slots"]]
        assert "2031-03-27T09:00:00Z" in starts and "2031-03-31T08:00:00Z" in starts
        assert "2031-03-31T07:00:00Z" not in starts and "2031-03-27T12:00:00Z" not in starts
        first = next(s for s in slots["slots"] if s["start"] == "2031-03-27T09:00:00Z")
        assert first["local_start"] == "2031-03-27T05:00:00-04:00"

        r = student.post("/bookings", {"offer_id": offer["id"], "start": first["start"],
                                       "intake": {"topic": "fractions"}})
        assert r.status_code == 201, r.json_body
        sid = r.json_body["id"]
        assert coach.get(f"/sessions/{sid}").json_body["bookings"][0]["intake_answers"] == {
            "topic": "fractions"}
        r = student.post(f"/sessions/{sid}/reschedule", {"start": "2031-03-31T08:00:00Z"})
        assert r.status_code == 200, r.json_body

    with time_machine.travel(datetime(2031, 3, 31, 8, 0, tzinfo=UTC), tick=False):
        assert coach.post(f"/sessions/{sid}/start").json_body["status"] == "in_progress"
    with time_machine.travel(datetime(2031, 3, 31, 9, 0, tzinfo=UTC), tick=False):
        assert coach.post(f"/sessions/{sid}/complete").json_body["status"] == "completed"
        assert student.post(f"/sessions/{sid}/cancel").json_body["code"] == (
            "cancellation_not_allowed")
        events = student.get(f"/sessions/{sid}/events").json_body
    assert [(e["kind"], e["before"].get("status"), e["after"]["status"]) for e in events] == [
        ("booked", None, "scheduled"),
        ("rescheduled", "scheduled", "scheduled"),
        ("started", "scheduled", "in_progress"),
        ("completed", "in_progress", "completed"),
    ]
    assert events[1]["after"]["starts_at"] == "2031-03-31T08:00:00+00:00"

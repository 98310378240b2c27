"""Issue 9, items 3, 4, 7 and 13: the terms a booking was made under, cancelling after the
start, what a student of a group session may see, idempotent booking, plain-text messages,
robust session events and durable entry points."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.db import transaction

from coachgate.access import services as access
from coachgate.access.models import SessionAccess
from coachgate.billing import services as billing
from coachgate.billing.models import BookingCharge, Settlement
from coachgate.catalog import services as catalog
from coachgate.kit.errors import (
    BookingNotCompleted,
    IdempotencyKeyReused,
    InvalidTransition,
    SessionStarted,
)
from coachgate.notify.models import Notification
from coachgate.notify.services import render
from coachgate.scheduling import services as scheduling
from coachgate.scheduling.events import SessionEventKind
from coachgate.scheduling.models import Booking, Session, SessionEvent
from tests.clients import Api
from tests.factories import MONDAY, make_offer, make_student, token_for

START = MONDAY + timedelta(hours=10)  # 10:00 London = 10:00 UTC in early March
M = timedelta(minutes=1)


# --- item 3: the policies are those of the booking -----------------------------------


def test_raising_free_cancellation_after_booking_does_not_make_a_cancellation_late(
        coach, student, committed) -> None:
    offer = make_offer(coach, free_cancellation_hours=24)
    booked_at = START - timedelta(days=4)
    session = committed(scheduling.book_session, student, offer.pk, START,
                        now=booked_at).session
    catalog.update_offer(coach, offer.pk, {"free_cancellation_hours": 1440})
    cancel_at = START - timedelta(days=3)  # 72 h ahead: free under the booking's 24 h
    committed(scheduling.cancel_booking, student, session.pk, now=cancel_at)
    billing.run_due(now=cancel_at)
    settlement = Settlement.objects.get()
    assert (settlement.outcome, settlement.charge_minor) == ("free_cancellation", 0)
    assert Booking.objects.get().cancellation_outcome == "free"


def test_a_new_booking_gets_the_new_terms(coach, student, committed) -> None:
    offer = make_offer(coach, free_cancellation_hours=24)
    catalog.update_offer(coach, offer.pk, {"free_cancellation_hours": 100})
    booking = committed(scheduling.book_session, student, offer.pk, START,
                        now=START - timedelta(days=4))
    assert booking.free_cancellation_hours == 100
    committed(scheduling.cancel_booking, student, booking.session_id,
              now=START - timedelta(days=3))
    assert Booking.objects.get().cancellation_outcome == "late_student"


def test_access_and_money_policies_are_fixed_at_booking_and_survive_a_reschedule(
        coach, student, committed) -> None:
    offer = make_offer(coach, access_policy={"grant_before_s": 600, "revoke_after_s": 60},
                       money_policy={"no_show_wait_ratio": "1/4", "min_payable_ratio": "1/2"})
    now = START - timedelta(days=4)
    session = committed(scheduling.book_session, student, offer.pk, START, now=now).session
    catalog.update_offer(coach, offer.pk, {
        "access_policy": {"grant_before_s": 7200, "revoke_after_s": 7200},
        "money_policy": {"no_show_wait_ratio": "1/2", "min_payable_ratio": "2/3"}})
    moved = committed(scheduling.reschedule_session, coach, session.pk,
                      START + timedelta(hours=2), now=now)
    moved = Session.objects.select_related("offer").get(pk=moved.pk)
    assert moved.access_policy["grant_before_s"] == 600
    row = SessionAccess.objects.get(session=moved)
    assert row.window_start == moved.starts_at - timedelta(seconds=600)
    assert row.window_end == moved.ends_at + timedelta(seconds=60)
    gates = access.gates_of(moved)
    assert min(g.at for g in gates if g.kind == "grant") == moved.starts_at - 10 * M
    thresholds = billing.thresholds_of(moved)
    assert (thresholds.no_show_wait_minutes, thresholds.min_payable_minutes) == (15, 30)


# --- item 4: no cancelling once the session has started ------------------------------


def test_a_student_cannot_cancel_after_the_start(offer, student, committed) -> None:
    session = committed(scheduling.book_session, student, offer.pk, START,
                        now=START - timedelta(days=3)).session
    with pytest.raises(SessionStarted) as err:
        scheduling.cancel_booking(student, session.pk, now=START + M)
    assert err.value.status == 409 and err.value.code == "session_started"
    with pytest.raises(SessionStarted):
        scheduling.cancel_booking(student, session.pk, now=START)  # the very start counts
    session.refresh_from_db()
    assert session.status == "scheduled" and session.seats_taken == 1
    assert Booking.objects.get().status == "active"
    # One second before the start it is still a (late) cancellation.
    committed(scheduling.cancel_booking, student, session.pk,
              now=START - timedelta(seconds=1))
    assert Booking.objects.get().cancellation_outcome == "late_student"


def test_the_coach_cannot_cancel_after_the_start_but_an_admin_can(
        offer, student, coach, admin, committed) -> None:
    session = committed(scheduling.book_session, student, offer.pk, START,
                        now=START - timedelta(days=3)).session
    with pytest.raises(SessionStarted) as err:
        scheduling.cancel_booking(coach, session.pk, now=START + 5 * M)
    assert "end it or mark" in err.value.message
    with pytest.raises(InvalidTransition):
        scheduling.reschedule_session(coach, session.pk, START + timedelta(days=1),
                                      now=START + 5 * M)
    committed(scheduling.cancel_booking, admin, session.pk, now=START + 5 * M)
    session.refresh_from_db()
    assert session.status == "cancelled"
    assert Booking.objects.get().cancellation_outcome == "by_admin"
    billing.run_due(now=START + 5 * M)
    assert Settlement.objects.get().charge_minor == 0


def test_the_api_answers_409_session_started(offer, student, committed) -> None:
    session = committed(scheduling.book_session, student, offer.pk, START,
                        now=START - timedelta(days=3)).session
    with time_machine.travel(START + M, tick=False):
        r = Api(token_for(student)).post(f"/sessions/{session.pk}/cancel")
    assert r.status_code == 409 and r.json_body["code"] == "session_started"
    assert Booking.objects.get().status == "active"


# --- item 7: a group session's other students stay private ---------------------------


def test_a_student_never_sees_other_students_ids_in_the_audit_trail(coach, committed) -> None:
    offer = make_offer(coach, capacity=3)
    a, b = make_student("a@test.example"), make_student("b@test.example")
    now = START - timedelta(days=3)
    committed(scheduling.book_session, a, offer.pk, START, now=now)
    session = committed(scheduling.book_session, b, offer.pk, START, now=now).session
    committed(scheduling.cancel_booking, b, session.pk, now=now)
    body = Api(token_for(a)).get(f"/sessions/{session.pk}/events").json_body
    assert [e["kind"] for e in body] == ["booked", "seat_taken", "seat_freed"]
    assert b.pk not in [e["actor_id"] for e in body]
    assert [e["actor_id"] for e in body] == [a.pk, None, None]
    text = str(body)
    assert f"'student_id': {b.pk}" not in text
    # The coach still sees who did what.
    coach_view = Api(token_for(coach)).get(f"/sessions/{session.pk}/events").json_body
    assert [e["actor_id"] for e in coach_view] == [a.pk, b.pk, b.pk]
    # Redaction is of the answer only: the audit trail itself is intact.
    assert list(SessionEvent.objects.filter(session=session).values_list(
        "actor_id", flat=True)) == [a.pk, b.pk, b.pk]


def test_a_marked_absent_student_is_not_named_to_the_others(coach, committed) -> None:
    offer = make_offer(coach, capacity=3)
    a, b = make_student("a@test.example"), make_student("b@test.example")
    now = START - timedelta(days=3)
    committed(scheduling.book_session, a, offer.pk, START, now=now)
    session = committed(scheduling.book_session, b, offer.pk, START, now=now).session
    committed(billing.mark_student_no_show, coach, session.pk, student_id=b.pk,
              now=START + 30 * M)
    seen_by_a = Api(token_for(a)).get(f"/sessions/{session.pk}/events").json_body
    absent = [e for e in seen_by_a if e["kind"] == "student_marked_absent"]
    assert absent and all("student_id" not in e["after"] for e in absent)
    seen_by_b = Api(token_for(b)).get(f"/sessions/{session.pk}/events").json_body
    assert [e["after"].get("student_id") for e in seen_by_b
            if e["kind"] == "student_marked_absent"] == [b.pk]


# --- item 7: Idempotency-Key ----------------------------------------------------------


def _book_api(api: Api, offer_id: int, key: str | None, start: datetime = START) -> Any:
    headers = dict(api.headers)
    if key is not None:
        headers["HTTP_IDEMPOTENCY_KEY"] = key
    r = api.client.post("/api/v1/bookings", data=json.dumps(
        {"offer_id": offer_id, "start": start.isoformat()}), content_type="application/json",
        **headers)
    r.json_body = json.loads(r.content)
    return r


def test_a_retried_booking_gets_the_first_answer_not_a_second_booking(offer, student) -> None:
    api = Api(token_for(student))
    with time_machine.travel(START - timedelta(days=3), tick=False):
        first = _book_api(api, offer.pk, "retry-1")
        again = _book_api(api, offer.pk, "retry-1")
    assert first.status_code == again.status_code == 201
    assert again.json_body == first.json_body
    assert Booking.objects.count() == 1 and Session.objects.count() == 1
    # Without the key the same request is a second attempt, refused as a double booking.
    with time_machine.travel(START - timedelta(days=3), tick=False):
        plain = _book_api(api, offer.pk, None)
    assert plain.status_code == 409


def test_the_same_key_for_another_request_is_refused(offer, student) -> None:
    api = Api(token_for(student))
    with time_machine.travel(START - timedelta(days=3), tick=False):
        assert _book_api(api, offer.pk, "k").status_code == 201
        other = _book_api(api, offer.pk, "k", START + timedelta(hours=2))
    assert other.status_code == 422 and other.json_body["code"] == "idempotency_key_reused"
    assert Booking.objects.count() == 1


def test_keys_are_per_student_and_checked(offer, student) -> None:
    other = make_student("other@test.example")
    with time_machine.travel(START - timedelta(days=3), tick=False):
        assert _book_api(Api(token_for(student)), offer.pk, "same").status_code == 201
        # Another student's identical key is theirs: it books (and loses the slot race).
        r = _book_api(Api(token_for(other)), offer.pk, "same")
        assert r.status_code == 409 and r.json_body["code"] == "slot_taken"
        bad = _book_api(Api(token_for(other)), offer.pk, "x" * 256)
        assert bad.status_code == 422 and bad.json_body["details"]["field"] == "Idempotency-Key"
        bad = _book_api(Api(token_for(other)), offer.pk, "tab\there")
        assert bad.status_code == 422
    assert Booking.objects.count() == 1


def test_a_retry_returns_the_booking_even_after_the_slot_filled(offer, student) -> None:
    first = scheduling.book_session(student, offer.pk, START, idempotency_key="a",
                                    now=START - timedelta(days=3))
    again = scheduling.book_session(student, offer.pk, START, idempotency_key="a",
                                    now=START - timedelta(days=2))
    assert again.pk == first.pk
    with pytest.raises(IdempotencyKeyReused):
        scheduling.book_session(student, offer.pk, START, idempotency_key="a",
                                intake={"note": "different"}, now=START - timedelta(days=2))


# --- item 13 (issue 10: reactions are part of the booking), entry points are durable ------


def test_a_failing_access_receiver_undoes_the_booking_and_what_billing_wrote(
        offer, student, committed, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("access is down")

    monkeypatch.setattr(access, "create_access_row", broken)
    with pytest.raises(BookingNotCompleted):
        committed(scheduling.book_session, student, offer.pk, START,
                  now=START - timedelta(days=3))
    assert not Booking.objects.exists() and not SessionAccess.objects.exists()
    assert not BookingCharge.objects.exists()
    assert not Notification.objects.filter(template="booking_confirmed").exists()


def test_every_kind_in_the_audit_trail_is_an_event_kind(coach, student, committed) -> None:
    offer = make_offer(coach, capacity=2)
    other = make_student("b@test.example")
    now = START - timedelta(days=3)
    committed(scheduling.book_session, student, offer.pk, START, now=now)
    session = committed(scheduling.book_session, other, offer.pk, START, now=now).session
    committed(scheduling.reschedule_session, coach, session.pk, START + timedelta(hours=2),
              now=now)
    committed(scheduling.cancel_booking, other, session.pk, now=now)
    committed(billing.complete, coach, session.pk, now=START + timedelta(hours=3))
    kinds = set(SessionEvent.objects.values_list("kind", flat=True))
    assert kinds == {"booked", "seat_taken", "rescheduled", "seat_freed", "completed"}
    assert kinds <= {k.value for k in SessionEventKind}


def test_booking_inside_another_transaction_fails_loudly(offer, student) -> None:
    with pytest.raises(RuntimeError, match="durable"), transaction.atomic():
        scheduling.book_session(student, offer.pk, START, now=START - timedelta(days=3))
    session = scheduling.book_session(student, offer.pk, START,
                                      now=START - timedelta(days=3)).session
    with pytest.raises(RuntimeError, match="durable"), transaction.atomic():
        scheduling.cancel_booking(student, session.pk, now=START - timedelta(days=3))
    assert Booking.objects.get().status == "active"


# --- item 7: plain text stays plain ---------------------------------------------------


def test_plain_text_messages_are_not_html_escaped(student) -> None:
    student.display_name = "Siobhán O'Brien & Sons <Ltd>"
    out = render("booking_confirmed", {
        "offer_title": 'Tom\'s "Deep" dive & more', "coach_name": "A&B",
        "starts_at": START.isoformat(), "ends_at": (START + timedelta(hours=1)).isoformat(),
    }, student)
    assert "Hi Siobhán O'Brien & Sons <Ltd>," in out.body
    assert 'Tom\'s "Deep" dive & more' in out.body and "with A&B" in out.body
    assert "&amp;" not in out.body + out.subject and "&#x27;" not in out.body + out.subject

"""A pack's whole life on the clock: students act through the API, time moves with
time-machine, and the gates run as the worker runs them (billing and packs ``run_due`` at
each due time). Events sent on commit are delivered as in production.

Main line: buy a pack of 4 → book and hold 4 sessions → the renewal reminder after the
third, "complete" after the fourth → grace → the final warning 12 h before its end → the
seat is released at the end, the waiting student is told and can now buy.
Variants: renewing during the grace keeps the seat; a session still to come at the grace
end holds the seat until right after it ends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine

from coachgate.billing import ledger
from coachgate.billing import services as billing
from coachgate.catalog.models import CoachProfile
from coachgate.packs import services as packs
from coachgate.packs.models import Pack, Seat
from coachgate.scheduling.models import Session
from tests.clients import Api
from tests.factories import make_student, token_for
from tests.packs.helpers import (
    COMPLETE,
    FINAL_WARNING,
    ONE_LEFT,
    bodies,
    emails,
    make_pack_offer,
    slot,
    text_count,
)

T0 = datetime(2031, 2, 28, 12, 0, tzinfo=UTC)  # a Friday; the sessions are next week


@pytest.fixture
def world(db, coach, django_capture_on_commit_callbacks):
    CoachProfile.objects.filter(user=coach).update(seat_capacity=1)
    offer = make_pack_offer(coach)
    student, waiting = make_student("learner@test.example"), make_student("next@test.example")
    return {
        "offer": offer, "coach": coach, "student": student, "waiting": waiting,
        "api": Api(token_for(student)), "waiting_api": Api(token_for(waiting)),
        "coach_id": CoachProfile.objects.get(user=coach).pk,
        "commit": django_capture_on_commit_callbacks,
    }


@contextmanager
def at(world: dict[str, Any], when: datetime) -> Iterator[None]:
    """Be at ``when``; what the step sends on commit is delivered at its end."""
    commit: Callable[..., AbstractContextManager[Any]] = world["commit"]
    with time_machine.travel(when, tick=False), commit(execute=True):
        yield


def run_gates(world: dict[str, Any], when: datetime) -> None:
    with at(world, when):
        billing.run_due(now=when, owner="e2e")
        packs.run_due(now=when, owner="e2e")


def seat(pack_id: int) -> Seat:
    return Seat.objects.get(pk=Pack.objects.get(pk=pack_id).seat_id)


def buy_and_book(world: dict[str, Any], starts: list[datetime]) -> tuple[int, list[int]]:
    with at(world, T0):
        r = world["api"].post("/packs", {"offer_id": world["offer"].pk})
        assert r.status_code == 201, r.json_body
        pack_id = r.json_body["id"]
        # Every seat of the coach is held now: the next student waits.
        r = world["waiting_api"].post("/packs", {"offer_id": world["offer"].pk})
        assert (r.status_code, r.json_body["code"]) == (409, "no_seat")
        r = world["waiting_api"].post(f"/coaches/{world['coach_id']}/waitlist")
        assert r.status_code == 201, r.json_body
        sessions = []
        for start in starts:
            r = world["api"].post(f"/packs/{pack_id}/bookings", {"start": start.isoformat()})
            assert r.status_code == 201, r.json_body
            sessions.append(r.json_body["id"])
    return pack_id, sessions


def hold_sessions(world: dict[str, Any], pack_id: int, session_ids: list[int]) -> None:
    """Each session reaches its scheduled end; the settlement gate completes it."""
    for n, sid in enumerate(session_ids, start=1):
        end = Session.objects.get(pk=sid).ends_at
        run_gates(world, end)
        assert Session.objects.get(pk=sid).status == "completed"
        assert world["api"].get(f"/packs/{pack_id}").json_body["remaining"] == 4 - n
        if n < 3:
            assert text_count(world["student"], ONE_LEFT) == 0


def test_a_pack_from_purchase_to_seat_release(world):
    student, waiting = world["student"], world["waiting"]
    pack_id, sessions = buy_and_book(world, [slot(d) for d in range(4)])
    hold_sessions(world, pack_id, sessions)

    # After session 3 the reminder, after session 4 the "complete" message: each once.
    assert text_count(student, ONE_LEFT) == 1 and text_count(student, COMPLETE) == 1
    pack = world["api"].get(f"/packs/{pack_id}").json_body
    assert (pack["status"], pack["remaining"]) == ("depleted", 0)
    last_end = Session.objects.get(pk=sessions[-1]).ends_at
    grace_end = last_end + timedelta(hours=72)
    assert pack["seat"]["status"] == "grace"
    assert datetime.fromisoformat(pack["seat"]["grace_ends_at"]) == grace_end

    # The final warning 12 h before the grace ends, not a second earlier, and only once.
    warn_at = grace_end - timedelta(hours=12)
    run_gates(world, warn_at - timedelta(seconds=1))
    assert text_count(student, FINAL_WARNING) == 0
    run_gates(world, warn_at)
    run_gates(world, warn_at + timedelta(minutes=30))
    assert text_count(student, FINAL_WARNING) == 1
    assert seat(pack_id).status == "grace"

    # Released at the grace end; the oldest waiting student is told; the seat is theirs
    # to take.
    run_gates(world, grace_end - timedelta(seconds=1))
    assert seat(pack_id).status == "grace" and not emails(waiting, "seat_available")
    run_gates(world, grace_end)
    assert seat(pack_id).status == "released"
    assert len(emails(student, "seat_released")) == 1
    assert len(emails(waiting, "seat_available")) == 1
    assert "first on the waitlist" in bodies(waiting, "seat_available")[0]
    with at(world, grace_end + timedelta(hours=1)):
        r = world["waiting_api"].post("/packs", {"offer_id": world["offer"].pk})
        assert r.status_code == 201, r.json_body
        # ... and the first student, too late, finds the coach full.
        r = world["api"].post("/packs", {"offer_id": world["offer"].pk})
        assert (r.status_code, r.json_body["code"]) == (409, "no_seat")

    # The money: the 4 sessions' value left the deferred account for the coach (90 %) and
    # the platform (10 %).
    coach_id = world["coach_id"]
    assert ledger.balance(ledger.coach_account(coach_id), "USD") == 18000
    assert ledger.balance(ledger.FEES, "USD") == 2000
    assert ledger.balance(ledger.DEFERRED, "USD") == 20000  # only the new pack, prepaid


def test_renewing_during_the_grace_keeps_the_seat(world):
    student = world["student"]
    pack_id, sessions = buy_and_book(world, [slot(d) for d in range(4)])
    hold_sessions(world, pack_id, sessions)
    grace_end = seat(pack_id).grace_ends_at
    assert grace_end is not None

    with at(world, grace_end - timedelta(hours=20)):
        r = world["api"].post("/packs", {"offer_id": world["offer"].pk})
        assert r.status_code == 201, r.json_body
        renewal = r.json_body
    assert renewal["renewal_of_id"] == pack_id
    assert renewal["seat"]["id"] == seat(pack_id).pk and renewal["seat"]["status"] == "active"

    for when in (grace_end - timedelta(hours=12), grace_end, grace_end + timedelta(days=1)):
        run_gates(world, when)
    assert seat(pack_id).status == "active"
    assert text_count(student, FINAL_WARNING) == 0
    assert not emails(student, "seat_released")
    assert not emails(world["waiting"], "seat_available")
    with at(world, grace_end + timedelta(days=1)):
        r = world["waiting_api"].post("/packs", {"offer_id": world["offer"].pk})
        assert (r.status_code, r.json_body["code"]) == (409, "no_seat")


def test_a_session_still_to_come_at_the_grace_end_holds_the_seat_until_it_ends(world):
    student = world["student"]
    expires = T0 + timedelta(days=90)
    grace_end = expires + timedelta(hours=72)  # 2031-06-01 12:00Z, a Sunday
    late_start = grace_end + timedelta(hours=2)  # 15:00 in London (BST)
    pack_id, _ = buy_and_book(world, [])
    with at(world, expires - timedelta(days=1)):  # booked while the pack is still valid
        r = world["api"].post(f"/packs/{pack_id}/bookings", {"start": late_start.isoformat()})
        assert r.status_code == 201, r.json_body
        session_end = datetime.fromisoformat(r.json_body["ends_at"])

    run_gates(world, expires)  # the pack expires with 3 sessions unused; the seat enters grace
    pack = world["api"].get(f"/packs/{pack_id}").json_body
    assert pack["status"] == "expired" and pack["seat"]["status"] == "grace"
    assert len(emails(student, "pack_expired")) == 1
    run_gates(world, grace_end - timedelta(hours=12))
    assert text_count(student, FINAL_WARNING) == 1
    assert "still takes place" in bodies(student, "seat_final_warning")[0]

    run_gates(world, grace_end)
    assert seat(pack_id).status == "grace"  # not while the session is still to come
    run_gates(world, session_end - timedelta(seconds=1))
    assert seat(pack_id).status == "grace"
    assert not emails(world["waiting"], "seat_available")

    run_gates(world, session_end)  # the session settles as completed, then the seat goes
    assert Session.objects.get(pk=r.json_body["id"]).status == "completed"
    assert seat(pack_id).status == "released" and seat(pack_id).released_at == session_end
    assert len(emails(world["waiting"], "seat_available")) == 1
    pack = Pack.objects.get(pk=pack_id)
    assert (pack.remaining, pack.closed_at) == (3, session_end)
    # One session used (5000) and three forfeited at the close: nothing stays deferred.
    assert ledger.balance(ledger.DEFERRED, "USD") == 0
    assert ledger.balance(ledger.coach_account(world["coach_id"]), "USD") == 18000

"""Many clients race for the same slots, each on its own database connection (real threads).
Exactly one booking per slot wins; every loser gets slot_taken; nothing else is written."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connections

from coachgate.kit.errors import CoachgateError
from coachgate.scheduling import services
from coachgate.scheduling.models import Booking, Session, SessionEvent
from tests.factories import MONDAY, make_admin, make_coach, make_offer, make_student

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.concurrency]
NINE = MONDAY.replace(hour=9)
NOW = MONDAY - timedelta(days=3)


def race(students, offer_id, starts, rounds_per_client=1):
    """Every student tries every start, all released at once. Returns outcome counts."""
    barrier = threading.Barrier(len(students))
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def client(i, student):
        order = starts[i % len(starts):] + starts[: i % len(starts)]  # contend differently
        barrier.wait()
        try:
            for start in order * rounds_per_client:
                try:
                    services.book_session(student, offer_id, start, now=NOW)
                    result = "won"
                except CoachgateError as exc:
                    result = exc.code
                except Exception as exc:  # anything else is a bug the test must show
                    result = f"crash:{type(exc).__name__}:{exc}"
                with lock:
                    outcomes[result] += 1
        finally:
            connections.close_all()

    threads = [threading.Thread(target=client, args=(i, s)) for i, s in enumerate(students)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a client hung"
    return outcomes


def test_one_to_one_race_has_exactly_one_winner_per_slot():
    admin = make_admin()
    coach = make_coach(admin=admin)
    offer = make_offer(coach)
    students = [make_student(f"racer{i}@test.example") for i in range(12)]
    starts = [NINE + timedelta(hours=h) for h in range(6)]
    outcomes = race(students, offer.pk, starts)
    assert outcomes["won"] == len(starts), outcomes
    assert outcomes["slot_taken"] == len(students) * len(starts) - len(starts), outcomes
    assert set(outcomes) == {"won", "slot_taken"}, outcomes
    assert Session.objects.count() == len(starts)
    assert sorted(Session.objects.values_list("starts_at", flat=True)) == starts
    assert Booking.objects.count() == len(starts)
    assert SessionEvent.objects.count() == len(starts)
    assert services.count_overlapping_sessions() == 0


def test_overlapping_offers_of_one_coach_never_double_book():
    """Two offers on different grids (60 and 45 minutes) race for the same morning."""
    coach = make_coach(admin=make_admin())
    hour = make_offer(coach)
    short = make_offer(coach, duration_minutes=45, slot_step_minutes=15)
    students = [make_student(f"o{i}@test.example") for i in range(8)]
    starts = [NINE + timedelta(minutes=15 * k) for k in range(8)]
    barrier = threading.Barrier(2)
    results: list[Counter[str]] = []

    def run(offer_id, group):
        barrier.wait()
        results.append(race(group, offer_id, starts))

    threads = [threading.Thread(target=run, args=(hour.pk, students[:4])),
               threading.Thread(target=run, args=(short.pk, students[4:]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    total = sum(results, Counter())
    assert not [k for k in total if k.startswith("crash")], total
    assert total["won"] == Session.objects.count() >= 2
    assert services.count_overlapping_sessions() == 0


def test_group_race_fills_exactly_the_capacity():
    coach = make_coach(admin=make_admin())
    offer = make_offer(coach, capacity=3)
    students = [make_student(f"g{i}@test.example") for i in range(10)]
    outcomes = race(students, offer.pk, [NINE])
    assert outcomes["won"] == 3, outcomes
    assert set(outcomes) <= {"won", "session_full", "slot_taken"}, outcomes
    session = Session.objects.get()
    assert session.seats_taken == 3
    assert Booking.objects.filter(session=session, status="active").count() == 3


def test_retries_of_one_request_racing_make_one_booking():
    """A client that lost its connection retries the same request with its Idempotency-Key
    several times at once (group offer: the slot itself would take them all)."""
    coach = make_coach(admin=make_admin())
    offer = make_offer(coach, capacity=10)
    student = make_student("retry@test.example")
    barrier = threading.Barrier(6)
    got: list[object] = []
    lock = threading.Lock()

    def client():
        barrier.wait()
        try:
            booking = services.book_session(student, offer.pk, NINE, now=NOW,
                                            idempotency_key="dropped-connection-1")
            result: object = booking.pk
        except Exception as exc:  # any error is a bug the test must show
            result = f"crash:{type(exc).__name__}:{exc}"
        finally:
            connections.close_all()
        with lock:
            got.append(result)

    threads = [threading.Thread(target=client) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a client hung"
    assert Booking.objects.count() == 1
    assert got == [Booking.objects.get().pk] * 6, got
    assert Session.objects.get().seats_taken == 1

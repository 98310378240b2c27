"""Races on PostgreSQL, each client on its own connection (real threads): completing and
settling one session at once, the same settlement delivered many times at once, students
racing for a coach's last seat and for a pack's last session. SQLite runs one writer at a
time, so these races cannot happen there."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import connection, connections, transaction

from coachgate.billing import services as billing
from coachgate.billing.models import JournalEntry, Settlement
from coachgate.catalog.models import CoachProfile
from coachgate.kit.errors import CoachgateError
from coachgate.packs import services
from coachgate.packs.models import Pack, PackUse, Seat
from tests.factories import MONDAY, make_admin, make_coach, make_student
from tests.packs.helpers import make_pack_offer, slot

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.concurrency]
NOW = MONDAY - timedelta(days=3)
THREADS = 8


@pytest.fixture(autouse=True)
def _postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: SQLite serializes every write transaction, so these "
                    "clients could not overlap")


def race(calls: list[Callable[[], object]]) -> Counter[str]:
    """Run the calls at once, each in its own thread and connection; count the outcomes."""
    barrier = threading.Barrier(len(calls))
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def client(call: Callable[[], object]) -> None:
        try:
            barrier.wait()
            try:
                call()
                result = "ok"
            except CoachgateError as exc:
                result = exc.code
            except Exception as exc:  # anything else is a bug the test must show
                result = f"crash:{type(exc).__name__}:{exc}"
            with lock:
                outcomes[result] += 1
        finally:
            connections.close_all()

    threads = [threading.Thread(target=client, args=(c,)) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a client hung"
    return outcomes


def setup_pack():
    coach = make_coach(admin=make_admin())
    student = make_student()
    pack = services.buy_pack(student, make_pack_offer(coach).pk, now=NOW)
    booking = services.book_from_pack(student, pack.pk, slot(0), now=NOW)
    return coach, student, pack, booking


def test_completing_and_settling_one_session_at_once_uses_one_session():
    coach, _, pack, booking = setup_pack()
    end = booking.session.ends_at
    sid = booking.session_id
    calls: list[Callable[[], object]] = []
    for i in range(THREADS):
        if i % 2:
            calls.append(lambda: billing.complete(coach, sid, now=end))
        else:
            calls.append(lambda: billing.settle_session(sid, now=end))
    outcomes = race(calls)
    assert not [k for k in outcomes if k.startswith("crash")], outcomes
    assert set(outcomes) <= {"ok", "already_settled"}, outcomes
    pack.refresh_from_db()
    assert pack.remaining == 3
    assert Settlement.objects.filter(booking=booking).count() == 1
    assert JournalEntry.objects.filter(key=f"settle:{booking.pk}").count() == 1
    assert PackUse.objects.get(booking=booking).consumed_at is not None


def test_the_same_settlement_delivered_at_once_decrements_once():
    _, _, pack, booking = setup_pack()
    end = booking.session.ends_at
    billing.settle_session(booking.session_id, now=end)
    settlement = Settlement.objects.get(booking=booking)
    # Undo the use so every delivery below finds it unused: they race for the decrement.
    PackUse.objects.filter(booking=booking).update(consumed_at=None)
    Pack.objects.filter(pk=pack.pk).update(remaining=4)

    def deliver() -> None:
        with transaction.atomic():
            services.record_settlement(settlement, consumes=True, now=end)

    outcomes = race([deliver] * THREADS)
    assert outcomes == Counter({"ok": THREADS}), outcomes
    pack.refresh_from_db()
    assert pack.remaining == 3


def test_students_racing_for_the_last_seat_get_one_seat_and_no_seat():
    coach = make_coach(admin=make_admin())
    CoachProfile.objects.filter(user=coach).update(seat_capacity=2)
    offer = make_pack_offer(coach)
    students = [make_student(f"r{i}@test.example") for i in range(THREADS)]
    outcomes = race([lambda s=s: services.buy_pack(s, offer.pk, now=NOW) for s in students])
    assert outcomes == Counter({"ok": 2, "no_seat": THREADS - 2}), outcomes
    assert Seat.objects.filter(status__in=["active", "grace"]).count() == 2
    assert Pack.objects.count() == 2


def test_booking_a_pack_at_once_never_books_more_than_its_size():
    coach = make_coach(admin=make_admin())
    student = make_student()
    pack = services.buy_pack(student, make_pack_offer(coach).pk, now=NOW)
    starts = [slot(d, h) for d in range(2) for h in (9, 11, 13, 15)][:THREADS]
    outcomes = race([lambda s=s: services.book_from_pack(student, pack.pk, s, now=NOW)
                     for s in starts])
    assert outcomes == Counter({"ok": 4, "pack_used_up": THREADS - 4}), outcomes
    numbers = sorted(PackUse.objects.filter(pack=pack).values_list("number", flat=True))
    assert numbers == [1, 2, 3, 4]


def test_renewing_and_booking_from_the_renewed_pack_at_once_never_deadlock():
    coach = make_coach(admin=make_admin())
    student = make_student()
    offer = make_pack_offer(coach)
    pack = services.buy_pack(student, offer.pk, now=NOW)
    starts = [slot(d, h) for d in range(2) for h in (9, 11)]
    calls: list[Callable[[], object]] = []
    for start in starts:
        calls.append(lambda s=start: services.book_from_pack(student, pack.pk, s, now=NOW))
        calls.append(lambda: services.buy_pack(student, offer.pk, now=NOW))
    outcomes = race(calls)
    assert outcomes == Counter({"ok": len(calls)}), outcomes
    assert Seat.objects.count() == 1  # every purchase after the first renewed the same seat
    assert Pack.objects.filter(student=student).count() == 1 + len(starts)
    assert PackUse.objects.filter(pack=pack).count() == len(starts)

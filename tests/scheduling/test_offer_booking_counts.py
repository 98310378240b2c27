"""scheduling.offer_booking_counts, the offers list's bookings per offer: active bookings
only, the upcoming ones apart, only the actor's own offers (all of them for an admin)."""

from __future__ import annotations

from datetime import timedelta

import time_machine

from coachgate.scheduling import services as scheduling
from tests.factories import MONDAY, make_coach, make_offer, make_student


def test_counts_are_per_offer_active_and_own(admin, now) -> None:
    coach = make_coach(admin=admin)
    other = make_coach("other@test.example", admin=admin)
    one, two = make_offer(coach), make_offer(coach, capacity=3)
    theirs = make_offer(other)
    students = [make_student(f"s{i}@test.example") for i in range(3)]
    nine = MONDAY.replace(hour=9)
    with time_machine.travel(now, tick=False):
        kept = scheduling.book_session(students[0], one.pk, nine)
        cancelled = scheduling.book_session(students[1], one.pk, nine + timedelta(hours=2))
        scheduling.cancel_booking(students[1], cancelled.session.pk)
        for s in students[:2]:
            scheduling.book_session(s, two.pk, nine + timedelta(days=1))
        scheduling.book_session(students[2], theirs.pk, nine)
    assert kept.session.pk
    ids = [one.pk, two.pk, theirs.pk]
    counts = scheduling.offer_booking_counts(coach, ids, now=now)
    assert {k: (v.total, v.upcoming) for k, v in counts.items()} == {one.pk: (1, 1),
                                                                      two.pk: (2, 2)}
    later = scheduling.offer_booking_counts(coach, ids, now=MONDAY + timedelta(days=3))
    assert {k: (v.total, v.upcoming) for k, v in later.items()} == {one.pk: (1, 0),
                                                                     two.pk: (2, 0)}
    every = scheduling.offer_booking_counts(admin, ids, now=now)
    assert set(every) == set(ids)

"""A booking reads only the sessions that can decide it (scheduling.services.
_booking_sessions), not two days around it. This checks that the narrow read decides every
booking exactly as the wide one does: across buffers of every size up to the largest an
offer may have, a daily cap counted in the coach's local day (over a DST change), group
sessions to join, and touching sessions."""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta

import pytest

from coachgate.scheduling import services
from coachgate.scheduling.models import Session
from tests.factories import make_admin, make_coach, make_offer

pytestmark = pytest.mark.django_db
# Sunday 30 March 2031: Europe/London moves from GMT to BST at 01:00 UTC.
DAY0 = datetime(2031, 3, 28, tzinfo=UTC)
NOW = DAY0 - timedelta(days=7)


def _world() -> tuple[list, list[Session]]:
    coach = make_coach(tz="Europe/London", admin=make_admin(),
                       rules=[(d, time(0), time(23, 59)) for d in range(7)])
    offers = [
        make_offer(coach, title="plain"),
        make_offer(coach, title="buffered", buffer_before_minutes=30, buffer_after_minutes=90),
        make_offer(coach, title="widest", buffer_before_minutes=720,
                   buffer_after_minutes=720),
        make_offer(coach, title="capped", max_sessions_per_day=3),
        make_offer(coach, title="group", capacity=3, duration_minutes=30),
        make_offer(coach, title="short after", buffer_after_minutes=600, duration_minutes=30),
    ]
    rng = random.Random(7)
    taken: list[tuple[datetime, datetime]] = []
    made: list[Session] = []
    for _ in range(60):
        offer = rng.choice(offers)
        start = DAY0 + timedelta(minutes=30 * rng.randrange(0, 6 * 48))
        end = start + timedelta(minutes=offer.duration_minutes)
        if any(s < end and e > start for s, e in taken):
            continue
        taken.append((start, end))
        seats = rng.randrange(1, offer.capacity + 1)
        made.append(Session.objects.create(
            coach=offer.coach, offer=offer, starts_at=start, ends_at=end,
            capacity=offer.capacity, seats_taken=seats, access_policy=offer.access_policy,
            money_policy=offer.money_policy,
            status="cancelled" if rng.random() < 0.1 else "scheduled"))
    return offers, made


def _decision(offer, start: datetime, sessions) -> tuple[object, ...]:
    end = start + timedelta(minutes=offer.duration_minutes)
    group = services._group_session(sessions, offer, start)
    try:
        if group is None:
            services._raise_if_taken(sessions, start, end)
        taken = False
    except Exception:
        taken = True
    others = [r for r in sessions if r[0] != group]
    slot = services._slot_offered(offer, start, NOW, sessions=others)
    return group, taken, slot


def test_the_narrow_read_decides_every_booking_as_the_wide_one_does() -> None:
    offers, made = _world()
    assert len(made) > 40
    checked = differing_rows = 0
    for offer in offers:
        offer = services._offer_to_book(offer.pk)
        for i in range(-4, 7 * 48):
            start = DAY0 + timedelta(minutes=30 * i)
            end = start + timedelta(minutes=offer.duration_minutes)
            narrow = services._booking_sessions(offer, start, end)
            wide = services._coach_sessions(offer.coach_id, start, end)
            assert {r[0] for r in narrow} <= {r[0] for r in wide}
            differing_rows += len(wide) - len(narrow)
            assert _decision(offer, start, narrow) == _decision(offer, start, wide), (
                offer.title, start)
            checked += 1
    assert checked > 2000
    assert differing_rows > checked  # the narrow read really reads less


def test_a_far_session_with_a_long_buffer_still_holds_its_time() -> None:
    coach = make_coach(tz="UTC", admin=make_admin(),
                       rules=[(d, time(0), time(23, 59)) for d in range(7)])
    long_after = make_offer(coach, title="long after", buffer_after_minutes=720)
    plain = services._offer_to_book(make_offer(coach, title="plain").pk)
    Session.objects.create(coach=long_after.coach, offer=long_after, starts_at=DAY0,
                           ends_at=DAY0 + timedelta(hours=1), capacity=1, seats_taken=1,
                           access_policy=long_after.access_policy,
                           money_policy=long_after.money_policy)
    inside = DAY0 + timedelta(hours=12, minutes=30)  # 11.5 h after its end: inside 12 h
    outside = DAY0 + timedelta(hours=13)
    read = services._booking_sessions(plain, inside, inside + timedelta(hours=1))
    assert len(read) == 1
    assert services._slot_offered(plain, inside, NOW, sessions=read) is None
    read = services._booking_sessions(plain, outside, outside + timedelta(hours=1))
    assert services._slot_offered(plain, outside, NOW, sessions=read) is not None

"""Pack services against the real database: buying, seats, booking from a pack, what each
outcome does to ``remaining``, exactly-once use, reminders, expiry, grace and release."""

from __future__ import annotations

from datetime import timedelta

import pytest

from coachgate.billing import ledger
from coachgate.billing import services as billing
from coachgate.billing.models import BookingCharge, JournalEntry, Payment, Settlement
from coachgate.billing.rules import pack_session_values
from coachgate.catalog.models import CoachProfile
from coachgate.kit.errors import (
    Forbidden,
    InvalidInput,
    NoSeat,
    NotAPack,
    NotFound,
    OfferNotBookable,
    PackExpired,
    PackRequired,
    PackUsedUp,
    SeatFree,
    SeatHeld,
)
from coachgate.packs import services
from coachgate.packs.models import Pack, PackUse, Seat, WaitlistEntry
from coachgate.scheduling import services as scheduling
from tests.factories import make_offer, make_student
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


@pytest.fixture
def pack_offer(coach):
    return make_pack_offer(coach)


@pytest.fixture
def pack(student, pack_offer, now):
    return services.buy_pack(student, pack_offer.pk, now=now)


def book(student, pack, day, now, hour=9):
    return services.book_from_pack(student, pack.pk, slot(day, hour), now=now)


def complete(coach, booking):
    """The coach ends the session at its scheduled end: completed, settled."""
    session = booking.session
    return billing.complete(coach, session.pk, now=session.ends_at)


def reload(pack):
    pack.refresh_from_db()
    return pack


def seat_of(pack):
    return Seat.objects.get(pk=pack.seat_id)


# --- buying ---------------------------------------------------------------------------


def test_buying_takes_a_seat_charges_up_front_and_confirms(student, pack_offer, now):
    pack = services.buy_pack(student, pack_offer.pk, now=now)
    assert (pack.size, pack.remaining, pack.status) == (4, 4, "active")
    assert (pack.price_minor, pack.currency) == (20000, "USD")
    assert pack.expires_at == now + timedelta(days=90)
    assert pack.next_due_at == pack.expires_at  # the expiry gate
    seat = seat_of(pack)
    assert (seat.status, seat.student_id, seat.pack_id) == ("active", student.pk, pack.pk)
    payment = Payment.objects.get(key=f"pack:{pack.pk}")
    assert (payment.amount_minor, payment.student_id) == (20000, student.pk)
    assert ledger.balance(ledger.DEFERRED, "USD") == 20000
    assert ledger.balance(ledger.student_account(student.pk), "USD") == 0  # paid (offline)
    assert len(emails(student, "pack_purchased")) == 1
    assert "4 sessions" in bodies(student, "pack_purchased")[0]


def test_single_session_offers_drafts_and_non_students_cannot_buy(coach, student, admin, now):
    single = make_offer(coach)
    with pytest.raises(NotAPack):
        services.buy_pack(student, single.pk, now=now)
    draft = make_pack_offer(coach, publish=False)
    with pytest.raises(OfferNotBookable):
        services.buy_pack(student, draft.pk, now=now)
    with pytest.raises(OfferNotBookable):
        services.buy_pack(student, 10**9, now=now)
    published = make_pack_offer(coach)
    with pytest.raises(Forbidden):
        services.buy_pack(coach, published.pk, now=now)
    with pytest.raises(Forbidden):
        services.buy_pack(admin, published.pk, now=now)
    assert Pack.objects.count() == 0 and Seat.objects.count() == 0


def test_no_free_seat_is_a_clear_409(coach, pack_offer, now):
    CoachProfile.objects.filter(user=coach).update(seat_capacity=1)
    first, second = make_student("a@test.example"), make_student("b@test.example")
    services.buy_pack(first, pack_offer.pk, now=now)
    with pytest.raises(NoSeat) as caught:
        services.buy_pack(second, pack_offer.pk, now=now)
    assert caught.value.status == 409 and caught.value.code == "no_seat"
    assert "no free seat" in caught.value.message and "waitlist" in caught.value.message
    assert caught.value.details["seat_capacity"] == 1
    assert Pack.objects.filter(student=second).count() == 0
    assert not Payment.objects.filter(student=second).exists()  # nothing charged


def test_renewal_keeps_the_same_seat_even_when_the_coach_is_full(coach, student, pack_offer,
                                                                 now):
    CoachProfile.objects.filter(user=coach).update(seat_capacity=1)
    old = services.buy_pack(student, pack_offer.pk, now=now)
    new = services.buy_pack(student, pack_offer.pk, now=now + timedelta(days=1))
    assert new.seat_id == old.seat_id and new.renewal_of_id == old.pk
    assert Seat.objects.count() == 1 and seat_of(new).pack_id == new.pk
    assert "renews your previous pack" in bodies(student, "pack_purchased")[1]


def test_buying_from_another_coach_takes_a_seat_there(student, pack_offer, now, admin):
    from tests.factories import make_coach

    other = make_pack_offer(make_coach("other@test.example", admin=admin))
    a = services.buy_pack(student, pack_offer.pk, now=now)
    b = services.buy_pack(student, other.pk, now=now)
    assert a.seat_id != b.seat_id and b.renewal_of_id is None


# --- booking from a pack --------------------------------------------------------------


def test_booking_from_a_pack_records_the_use_and_funds_the_booking(student, pack, now):
    booking = book(student, pack, 0, now)
    use = PackUse.objects.get(booking=booking)
    assert (use.pack_id, use.number, use.value_minor) == (pack.pk, 1, 5000)
    charge = BookingCharge.objects.get(booking=booking)
    assert (charge.funded_by, charge.price_minor) == (f"pack:{pack.pk}", 5000)
    assert not Payment.objects.filter(key=f"booking:{booking.pk}").exists()  # not charged
    assert reload(pack).remaining == 4  # booked, not used


def test_session_values_follow_the_exact_split_in_booking_order(coach, student, now):
    offer = make_pack_offer(coach, price_minor=10001, pack_size=3)
    pack = services.buy_pack(student, offer.pk, now=now)
    values = [PackUse.objects.get(booking=book(student, pack, d, now)).value_minor
              for d in range(3)]
    assert values == pack_session_values(10001, 3) == [3333, 3334, 3334]
    assert sum(values) == 10001


def test_a_pack_offer_cannot_be_booked_directly(student, pack, pack_offer, now):
    with pytest.raises(PackRequired) as caught:
        scheduling.book_session(student, pack_offer.pk, slot(0), now=now)
    assert caught.value.status == 409 and "pack" in caught.value.message
    assert not PackUse.objects.exists()


def test_a_pack_books_at_most_its_size(student, pack, now):
    for day in range(4):
        book(student, pack, day, now)
    with pytest.raises(PackUsedUp) as caught:
        book(student, pack, 5, now)
    assert caught.value.code == "pack_used_up" and caught.value.details["booked"] == 4
    assert PackUse.objects.filter(pack=pack).count() == 4


def test_an_expired_pack_cannot_book(student, pack, now):
    later = pack.expires_at + timedelta(minutes=1)
    with pytest.raises(PackExpired):
        services.book_from_pack(student, pack.pk, later + timedelta(days=1), now=later)
    services.run_due(now=later)
    with pytest.raises(PackExpired):
        services.book_from_pack(student, pack.pk, later + timedelta(days=1), now=later)


def test_strangers_and_coaches_cannot_book_from_a_pack(student, pack, coach, now):
    stranger = make_student("x@test.example")
    with pytest.raises(NotFound):
        services.book_from_pack(stranger, pack.pk, slot(0), now=now)
    with pytest.raises(Forbidden):
        services.book_from_pack(coach, pack.pk, slot(0), now=now)
    with pytest.raises(InvalidInput):
        services.book_from_pack(student, pack.pk, slot(0).replace(tzinfo=None), now=now)
    with pytest.raises(NotFound):
        services.book_from_pack(student, 2**70, slot(0), now=now)


def test_a_refused_booking_leaves_nothing_behind(student, pack, now):
    book(student, pack, 0, now)
    from coachgate.kit.errors import SlotTaken

    with pytest.raises(SlotTaken):
        book(student, pack, 0, now)
    assert PackUse.objects.count() == 1 and BookingCharge.objects.count() == 1


# --- outcomes -------------------------------------------------------------------------


def test_completion_uses_one_session(coach, student, pack, now):
    booking = book(student, pack, 0, now)
    complete(coach, booking)
    assert reload(pack).remaining == 3
    assert PackUse.objects.get(booking=booking).consumed_at is not None


def test_settlement_at_the_scheduled_end_uses_one_session(student, pack, now):
    booking = book(student, pack, 0, now)
    billing.settle_session(booking.session_id, now=booking.session.ends_at)
    assert reload(pack).remaining == 3


def test_student_no_show_uses_one_session(coach, student, pack, now):
    booking = book(student, pack, 0, now)
    billing.mark_student_no_show(coach, booking.session_id,
                                 now=booking.session.starts_at + timedelta(minutes=25))
    assert reload(pack).remaining == 3
    assert Settlement.objects.get(booking=booking).outcome == "no_show_student"


def test_late_student_cancellation_uses_one_session(student, pack, now):
    booking = book(student, pack, 0, now)
    late = booking.session.starts_at - timedelta(hours=2)
    scheduling.cancel_booking(student, booking.session_id, now=late)
    billing.settle_session(booking.session_id, now=late)
    assert reload(pack).remaining == 3


def test_coach_no_show_gives_the_session_back(student, pack, now):
    booking = book(student, pack, 0, now)
    billing.report_coach_no_show(student, booking.session_id,
                                 now=booking.session.starts_at + timedelta(minutes=25))
    use = PackUse.objects.get(booking=booking)
    assert reload(pack).remaining == 4 and use.freed_at is not None and use.consumed_at is None
    assert ledger.balance(ledger.DEFERRED, "USD") == 20000  # its value stays in the pack


def test_coach_cancellation_gives_the_session_back_and_it_can_be_booked_again(
        coach, student, pack, now):
    bookings = [book(student, pack, d, now) for d in range(4)]
    scheduling.cancel_booking(coach, bookings[1].session_id, now=now)
    billing.settle_session(bookings[1].session_id, now=now)
    assert reload(pack).remaining == 4
    again = book(student, pack, 5, now)  # the pack had no free session before
    assert PackUse.objects.get(booking=again).number == 2  # the freed number, same value


def test_free_student_cancellation_gives_the_session_back(student, pack, now):
    booking = book(student, pack, 0, now)
    scheduling.cancel_booking(student, booking.session_id, now=now)
    billing.settle_session(booking.session_id, now=now)
    assert reload(pack).remaining == 4
    assert PackUse.objects.get(booking=booking).freed_at is not None


def test_early_end_short_does_not_use_a_session(coach, student, pack, now):
    booking = book(student, pack, 0, now)
    result = billing.complete(coach, booking.session_id,
                              now=booking.session.starts_at + timedelta(minutes=10))
    assert result.session.status == "early_end_short"
    assert reload(pack).remaining == 4


def test_duplicate_settlements_never_use_twice(coach, student, pack, now):
    booking = book(student, pack, 0, now)
    end = booking.session.ends_at
    billing.settle_session(booking.session_id, now=end)
    billing.settle_session(booking.session_id, now=end + timedelta(minutes=5))
    settlement = Settlement.objects.get(booking=booking)
    # The same event delivered again (a retried receiver): still used once.
    services.record_settlement(settlement, consumes=True, now=end)
    services.record_settlement(settlement, consumes=True, now=end + timedelta(hours=1))
    # A contradicting late delivery cannot give back a used session either.
    services.record_settlement(settlement, consumes=False, now=end + timedelta(hours=2))
    assert reload(pack).remaining == 3
    assert Settlement.objects.filter(booking=booking).count() == 1
    assert JournalEntry.objects.filter(key=f"settle:{booking.pk}").count() == 1


def test_a_settlement_not_funded_by_a_pack_is_ignored(coach, student, now):
    offer = make_offer(coach)
    booking = scheduling.book_session(student, offer.pk, slot(0), now=now)
    billing.settle_session(booking.session_id, now=booking.session.ends_at)
    assert Settlement.objects.get(booking=booking).funded_by == ""
    assert not PackUse.objects.exists()


# --- reminders, depletion, grace ------------------------------------------------------


def use_all(coach, student, pack, now, n):
    for day in range(n):
        complete(coach, book(student, pack, day, now))


def test_renewal_reminder_after_session_n_minus_1_then_complete_after_n(coach, student, pack,
                                                                       now):
    use_all(coach, student, pack, now, 2)
    assert text_count(student, ONE_LEFT) == 0
    complete(coach, book(student, pack, 2, now))  # session 3 of 4
    assert bodies(student, "pack_renewal_reminder") and text_count(student, ONE_LEFT) == 1
    assert reload(pack).one_left_reminded and pack.status == "active"
    assert seat_of(pack).status == "active"
    last = book(student, pack, 3, now)
    complete(coach, last)  # session 4 of 4
    pack = reload(pack)
    assert (pack.status, pack.remaining, pack.depleted_at) == (
        "depleted", 0, last.session.ends_at)
    assert text_count(student, COMPLETE) == 1 and text_count(student, ONE_LEFT) == 1
    seat = seat_of(pack)
    assert seat.status == "grace"
    assert seat.grace_ends_at == last.session.ends_at + timedelta(hours=72)
    assert seat.next_due_at == seat.grace_ends_at - timedelta(hours=12)  # the final warning
    assert ledger.balance(ledger.DEFERRED, "USD") == 0  # every session's value was earned


def test_grace_final_warning_then_release_each_once(coach, student, pack, now):
    use_all(coach, student, pack, now, 4)
    seat = seat_of(pack)
    warn_at, end = seat.grace_ends_at - timedelta(hours=12), seat.grace_ends_at
    services.run_due(now=warn_at - timedelta(seconds=1))
    assert text_count(student, FINAL_WARNING) == 0
    services.run_due(now=warn_at)
    services.run_due(now=warn_at + timedelta(minutes=1))
    assert text_count(student, FINAL_WARNING) == 1
    assert seat_of(pack).next_due_at == end
    services.run_due(now=end - timedelta(seconds=1))
    assert seat_of(pack).status == "grace"
    services.run_due(now=end)
    services.run_due(now=end + timedelta(hours=1))
    seat = seat_of(pack)
    assert (seat.status, seat.released_at, seat.next_due_at) == ("released", end, None)
    assert len(emails(student, "seat_released")) == 1


def test_renewing_in_grace_cancels_the_warning_and_release(coach, student, pack_offer, pack,
                                                           now):
    use_all(coach, student, pack, now, 4)
    seat = seat_of(pack)
    end = seat.grace_ends_at
    renewed = services.buy_pack(student, pack_offer.pk, now=end - timedelta(hours=20))
    seat = seat_of(pack)
    assert renewed.seat_id == seat.pk and seat.status == "active"
    assert (seat.grace_ends_at, seat.next_due_at) == (None, None)
    services.run_due(now=end + timedelta(hours=1))
    assert seat_of(pack).status == "active"
    assert text_count(student, FINAL_WARNING) == 0 and not emails(student, "seat_released")


def test_renewing_early_skips_the_reminders_and_the_grace(coach, student, pack_offer, pack,
                                                          now):
    services.buy_pack(student, pack_offer.pk, now=now)
    use_all(coach, student, pack, now, 4)
    assert reload(pack).status == "depleted"
    assert seat_of(pack).status == "active"  # the renewal holds it
    assert text_count(student, ONE_LEFT) == 0 and text_count(student, COMPLETE) == 0


def test_expiry_forfeits_the_unused_value_and_starts_the_grace(coach, student, pack, now):
    complete(coach, book(student, pack, 0, now))  # one of four used (5000)
    services.run_due(now=pack.expires_at - timedelta(seconds=1))
    assert reload(pack).status == "active"
    services.run_due(now=pack.expires_at)
    services.run_due(now=pack.expires_at + timedelta(hours=1))
    pack = reload(pack)
    assert (pack.status, pack.expired_at, pack.closed_at) == (
        "expired", pack.expires_at, pack.expires_at)
    assert pack.next_due_at is None
    entries = JournalEntry.objects.filter(key=f"forfeit:pack:{pack.pk}:expired")
    assert entries.count() == 1
    assert ledger.balance(ledger.DEFERRED, "USD") == 0
    coach_id = pack.coach_id
    assert ledger.balance(ledger.coach_account(coach_id), "USD") == 18000  # 90 % of 20000
    seat = seat_of(pack)
    assert seat.status == "grace"
    assert seat.grace_ends_at == pack.expires_at + timedelta(hours=72)
    assert len(emails(student, "pack_expired")) == 1
    assert "3 sessions unused" in bodies(student, "pack_expired")[0]


def test_an_expired_pack_with_a_session_booked_closes_once_it_settles(coach, student, pack,
                                                                      now):
    # Booked before the expiry, held after it.
    just_before = pack.expires_at - timedelta(days=1)
    booking = services.book_from_pack(student, pack.pk, pack.expires_at + timedelta(days=2),
                                      now=just_before)
    services.run_due(now=pack.expires_at)
    pack = reload(pack)
    assert pack.status == "expired" and pack.closed_at is None  # waiting for that session
    assert pack.next_due_at == booking.session.ends_at + timedelta(hours=1)
    complete(coach, booking)
    pack = reload(pack)
    assert (pack.remaining, pack.closed_at) == (3, booking.session.ends_at)
    assert ledger.balance(ledger.DEFERRED, "USD") == 0


def test_the_seat_is_not_released_while_a_session_is_still_to_come(coach, student, pack, now):
    booking = services.book_from_pack(student, pack.pk, pack.expires_at + timedelta(days=5),
                                      now=pack.expires_at - timedelta(days=1))
    services.run_due(now=pack.expires_at)
    seat = seat_of(pack)
    grace_end = seat.grace_ends_at
    assert grace_end < booking.session.starts_at
    services.run_due(now=grace_end)
    seat = seat_of(pack)
    assert seat.status == "grace" and seat.next_due_at == booking.session.ends_at
    services.run_due(now=booking.session.ends_at - timedelta(seconds=1))
    assert seat_of(pack).status == "grace"
    services.run_due(now=booking.session.ends_at)
    assert seat_of(pack).status == "released"


def test_a_coach_cancellation_of_the_blocking_session_lets_the_seat_go(coach, student, pack,
                                                                       now):
    booking = services.book_from_pack(student, pack.pk, pack.expires_at + timedelta(days=5),
                                      now=pack.expires_at - timedelta(days=1))
    services.run_due(now=pack.expires_at)
    grace_end = seat_of(pack).grace_ends_at
    services.run_due(now=grace_end)
    assert seat_of(pack).status == "grace"
    cancel_at = grace_end + timedelta(hours=1)
    scheduling.cancel_booking(coach, booking.session_id, now=cancel_at)
    billing.settle_session(booking.session_id, now=cancel_at)
    seat = seat_of(pack)
    assert seat.next_due_at == grace_end  # due now: nothing holds it any more
    services.run_due(now=cancel_at)
    assert seat_of(pack).status == "released"
    assert reload(pack).closed_at == cancel_at  # the given-back session was forfeited too
    assert ledger.balance(ledger.DEFERRED, "USD") == 0


def test_a_rescheduled_blocking_session_moves_the_release(coach, student, pack, now):
    booking = services.book_from_pack(student, pack.pk, pack.expires_at + timedelta(days=5),
                                      now=pack.expires_at - timedelta(days=1))
    services.run_due(now=pack.expires_at)
    grace_end = seat_of(pack).grace_ends_at
    services.run_due(now=grace_end)
    later = booking.session.starts_at + timedelta(days=1)
    scheduling.reschedule_session(coach, booking.session_id, later, now=grace_end)
    services.on_session_moved(booking.session_id, now=grace_end)  # session_changed, on commit
    assert seat_of(pack).next_due_at == later + timedelta(hours=1)


# --- seats freed, waitlist ------------------------------------------------------------


def test_a_released_seat_is_free_for_others_and_the_oldest_waiting_is_told(coach, pack_offer,
                                                                           now):
    CoachProfile.objects.filter(user=coach).update(seat_capacity=1)
    holder = make_student("holder@test.example")
    first, second = make_student("w1@test.example"), make_student("w2@test.example")
    pack = services.buy_pack(holder, pack_offer.pk, now=now)
    with pytest.raises(SeatHeld):
        services.join_waitlist(holder, pack.coach_id, now=now)
    e1 = services.join_waitlist(first, pack.coach_id, now=now)
    e2 = services.join_waitlist(second, pack.coach_id, now=now + timedelta(minutes=1))
    assert services.join_waitlist(first, pack.coach_id, now=now).pk == e1.pk  # idempotent
    assert [services.waitlist_position(e) for e in (e1, e2)] == [1, 2]
    with pytest.raises(NoSeat):
        services.buy_pack(second, pack_offer.pk, now=now)
    use_all(coach, holder, pack, now, 4)
    end = seat_of(pack).grace_ends_at
    services.run_due(now=end)
    assert seat_of(pack).status == "released"
    assert len(emails(first, "seat_available")) == 1 and not emails(second, "seat_available")
    services.run_due(now=end + timedelta(hours=1))
    assert len(emails(first, "seat_available")) == 1
    mine = services.buy_pack(second, pack_offer.pk, now=end + timedelta(hours=2))
    assert mine.seat_id != pack.seat_id
    assert WaitlistEntry.objects.get(pk=e2.pk).fulfilled_at is not None
    with pytest.raises(NoSeat):
        services.buy_pack(first, pack_offer.pk, now=end + timedelta(hours=3))


def test_joining_a_waitlist_with_free_seats_or_as_a_coach_is_refused(coach, student, now):
    profile = CoachProfile.objects.get(user=coach)
    with pytest.raises(SeatFree):
        services.join_waitlist(student, profile.pk, now=now)
    with pytest.raises(Forbidden):
        services.join_waitlist(coach, profile.pk, now=now)
    with pytest.raises(NotFound):
        services.join_waitlist(student, 10**9, now=now)
    with pytest.raises(NotFound):
        services.join_waitlist(student, 2**70, now=now)


# --- gates: repair, errors ------------------------------------------------------------


def test_sweep_repairs_lost_gates(coach, student, pack, now):
    use_all(coach, student, pack, now, 4)
    seat = seat_of(pack)
    Seat.objects.filter(pk=seat.pk).update(next_due_at=None)  # a lost write
    report = services.sweep(now=seat.grace_ends_at)
    assert report.repaired >= 1
    assert seat_of(pack).status == "released"


def test_sweep_puts_a_seat_without_an_active_pack_into_grace(student, pack, now):
    Pack.objects.filter(pk=pack.pk).update(status="depleted", remaining=0, depleted_at=now,
                                           next_due_at=None)
    services.sweep(now=now + timedelta(hours=1))
    seat = seat_of(pack)
    assert seat.status == "grace" and seat.grace_ends_at == now + timedelta(hours=72)


def test_a_failing_gate_is_retried_later_not_lost(student, pack, now, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(services, "expire_pack", broken)
    report = services.run_due(now=pack.expires_at)
    assert report.errors == 1
    pack = reload(pack)
    assert pack.status == "active" and pack.attempts == 1 and "boom" in pack.last_error
    assert pack.next_due_at == pack.expires_at + timedelta(seconds=1)  # backoff 2**0 s
    assert pack.lease_owner == ""
    monkeypatch.undo()
    services.run_due(now=pack.expires_at + timedelta(seconds=1))
    pack = reload(pack)
    assert pack.status == "expired" and pack.attempts == 0 and pack.last_error == ""


def test_a_student_who_missed_the_notice_joins_again_at_the_end(coach, pack_offer, now):
    CoachProfile.objects.filter(user=coach).update(seat_capacity=1)
    holder, first, second = (make_student(f"{n}@test.example") for n in ("h", "f", "s"))
    pack = services.buy_pack(holder, pack_offer.pk, now=now)
    coach_id = pack.coach_id
    e1 = services.join_waitlist(first, coach_id, now=now)
    services.join_waitlist(second, coach_id, now=now + timedelta(minutes=1))
    WaitlistEntry.objects.filter(pk=e1.pk).update(notified_at=now + timedelta(days=1))
    again = services.join_waitlist(first, coach_id, now=now + timedelta(days=2))
    assert again.pk == e1.pk and again.notified_at is None
    assert services.waitlist_position(again) == 2  # behind the one who waited meanwhile

"""Service tests for booking, cancellation, rescheduling and the session state machine."""

from __future__ import annotations

from datetime import time, timedelta

import pytest
from django.db import IntegrityError, transaction

from coachgate.catalog import services as catalog
from coachgate.kit.errors import (
    AlreadyBooked,
    CancellationNotAllowed,
    Forbidden,
    InvalidInput,
    InvalidTransition,
    OfferNotBookable,
    PastSlot,
    SessionFull,
    SlotNotOffered,
    SlotTaken,
)
from coachgate.scheduling import services
from coachgate.scheduling.models import AvailabilityOverride, Booking, Session, SessionEvent
from tests.factories import MONDAY, make_coach, make_offer, make_student

NINE = MONDAY.replace(hour=9)  # Europe/London is UTC in March before the DST change


def counts() -> tuple[int, int, int]:
    return Session.objects.count(), Booking.objects.count(), SessionEvent.objects.count()


def test_booking_an_offered_slot_creates_session_booking_and_audit(offer, student, now):
    booking = services.book_session(student, offer.pk, NINE, now=now)
    session = booking.session
    assert (session.starts_at, session.ends_at) == (NINE, NINE + timedelta(hours=1))
    assert session.status == "scheduled" and session.seats_taken == 1
    event = session.events.get()
    assert (event.kind, event.actor_id, event.at) == ("booked", student.pk, now)
    assert event.before == {} and event.after["status"] == "scheduled"


def test_second_booking_of_same_slot_is_slot_taken_and_writes_nothing(offer, student, now):
    services.book_session(student, offer.pk, NINE, now=now)
    other = make_student("other@test.example")
    before = counts()
    with pytest.raises(SlotTaken):
        services.book_session(other, offer.pk, NINE, now=now)
    with pytest.raises(SlotTaken):  # overlapping, not identical: 09:30 on a 30-min grid
        services.book_session(other, make_offer(offer.coach.user, slot_step_minutes=30).pk,
                              NINE + timedelta(minutes=30), now=now)
    assert counts() == before


def test_back_to_back_sessions_are_allowed(offer, student, now):
    services.book_session(student, offer.pk, NINE, now=now)
    b = services.book_session(student, offer.pk, NINE + timedelta(hours=1), now=now)
    assert b.session.starts_at == NINE + timedelta(hours=1)


@pytest.mark.parametrize("start,error", [
    (NINE + timedelta(minutes=30), SlotNotOffered),  # off the grid
    (MONDAY.replace(hour=20), SlotNotOffered),  # outside availability
    (MONDAY - timedelta(days=3), PastSlot),
])
def test_invalid_starts_are_refused(offer, student, now, start, error):
    with pytest.raises(error):
        services.book_session(student, offer.pk, start, now=now)
    assert counts() == (0, 0, 0)


def test_naive_start_is_refused(offer, student, now):
    with pytest.raises(ValueError):
        services.book_session(student, offer.pk, NINE.replace(tzinfo=None), now=now)


def test_draft_archived_and_unapproved_offers_are_not_bookable(coach, student, now):
    draft = make_offer(coach, publish=False)
    with pytest.raises(OfferNotBookable):
        services.book_session(student, draft.pk, NINE, now=now)
    archived = make_offer(coach)
    catalog.set_offer_status(coach, archived.pk, "archived")
    with pytest.raises(OfferNotBookable):
        services.book_session(student, archived.pk, NINE, now=now)
    live = make_offer(coach)
    coach.coach_profile.status = "suspended"
    coach.coach_profile.save()
    with pytest.raises(OfferNotBookable):
        services.book_session(student, live.pk, NINE, now=now)
    assert counts() == (0, 0, 0)


def test_only_students_book(offer, coach, admin, now):
    for user in (coach, admin):
        with pytest.raises(Forbidden):
            services.book_session(user, offer.pk, NINE, now=now)


def test_intake_answers_are_validated(coach, student, now):
    offer = make_offer(coach, intake_fields=[
        {"label": "Goal", "type": "text", "required": True},
        {"label": "Level", "type": "choice", "choices": ["beginner", "advanced"]},
    ])
    with pytest.raises(InvalidInput) as err:
        services.book_session(student, offer.pk, NINE, intake={"level": "expert"}, now=now)
    assert set(err.value.details["fields"]) == {"goal", "level"}
    booking = services.book_session(student, offer.pk, NINE,
                                    intake={"goal": " ship it ", "level": "advanced"}, now=now)
    assert booking.intake_answers == {"goal": "ship it", "level": "advanced"}


def test_minimum_notice_and_horizon(coach, student):
    offer = make_offer(coach, min_notice_minutes=120, horizon_days=7)
    with pytest.raises(SlotNotOffered):  # 1 h ahead, notice is 2 h
        services.book_session(student, offer.pk, NINE, now=NINE - timedelta(hours=1))
    with pytest.raises(SlotNotOffered):  # 8 days ahead, horizon is 7
        services.book_session(student, offer.pk, NINE, now=NINE - timedelta(days=8))
    assert services.book_session(student, offer.pk, NINE, now=NINE - timedelta(hours=2))


def test_buffers_block_neighbouring_slots(coach, student, now):
    offer = make_offer(coach, buffer_after_minutes=15, buffer_before_minutes=0)
    services.book_session(student, offer.pk, NINE, now=now)
    with pytest.raises(SlotNotOffered):  # 10:00 starts within the 15-min buffer after 09-10
        services.book_session(make_student("b@test.example"), offer.pk,
                              NINE + timedelta(hours=1), now=now)


def test_buffers_hold_whichever_session_was_booked_first(coach, student, now):
    offer = make_offer(coach, buffer_after_minutes=15, buffer_before_minutes=0)
    services.book_session(student, offer.pk, NINE + timedelta(hours=1), now=now)
    with pytest.raises(SlotNotOffered):  # 09-10 would leave no 15 minutes before 10:00
        services.book_session(make_student("b@test.example"), offer.pk, NINE, now=now)
    # Another offer's candidate respects the 10-11 session's own 15 minutes after it...
    quarter = make_offer(coach, slot_step_minutes=15, duration_minutes=30)
    with pytest.raises(SlotNotOffered):
        services.book_session(make_student("c@test.example"), quarter.pk,
                              NINE + timedelta(hours=2), now=now)
    services.book_session(make_student("c2@test.example"), quarter.pk,
                          NINE + timedelta(hours=2, minutes=15), now=now)  # 11:15-11:45
    # ...and its own buffer before: 30 minutes of preparation after 11:45 + 0.
    prepared = make_offer(coach, buffer_before_minutes=30, slot_step_minutes=15)
    with pytest.raises(SlotNotOffered):
        services.book_session(make_student("d@test.example"), prepared.pk,
                              NINE + timedelta(hours=3), now=now)  # 12:00: 15 min only
    assert services.book_session(make_student("e@test.example"), prepared.pk,
                                 NINE + timedelta(hours=3, minutes=15), now=now)


def test_group_offer_fills_seats_of_one_session(coach, now):
    offer = make_offer(coach, capacity=3)
    students = [make_student(f"s{i}@test.example") for i in range(4)]
    sessions = {services.book_session(s, offer.pk, NINE, now=now).session_id
                for s in students[:3]}
    assert len(sessions) == 1
    session = Session.objects.get()
    assert session.seats_taken == 3
    with pytest.raises(SessionFull):  # full: the slot is no longer offered and is busy
        services.book_session(students[3], offer.pk, NINE, now=now)
    slots = services.list_slots(None, offer, start=NINE - timedelta(hours=1),
                                end=NINE + timedelta(hours=3), now=now)
    assert NINE not in [s.start for s in slots]


def test_group_seat_left_is_shown_and_same_student_cannot_take_two(coach, now):
    offer = make_offer(coach, capacity=2)
    a = make_student("a@test.example")
    services.book_session(a, offer.pk, NINE, now=now)
    slots = services.list_slots(None, offer, start=NINE, end=NINE + timedelta(minutes=1), now=now)
    assert [(s.start, s.seats_left) for s in slots] == [(NINE, 1)]
    with pytest.raises(AlreadyBooked):
        services.book_session(a, offer.pk, NINE, now=now)


def test_seat_counter_cannot_exceed_capacity_in_the_database(coach, student, now):
    session = services.book_session(student, make_offer(coach, capacity=2).pk, NINE,
                                    now=now).session
    with pytest.raises(IntegrityError), transaction.atomic():
        Session.objects.filter(pk=session.pk).update(seats_taken=3)
    Session.objects.filter(pk=session.pk).update(seats_taken=2)
    with pytest.raises(SessionFull):
        services.book_session(make_student("x@test.example"), session.offer_id, NINE, now=now)


# --- the database guarantee, bypassing the friendly pre-check ---------------------------

def test_database_refuses_overlapping_live_sessions(offer, student, now):
    first = services.book_session(student, offer.pk, NINE, now=now).session
    for start in (NINE, NINE + timedelta(minutes=59), NINE - timedelta(minutes=59)):
        with pytest.raises(IntegrityError) as err, transaction.atomic():
            Session.objects.create(coach=first.coach, offer=offer, starts_at=start,
                                   ends_at=start + timedelta(hours=1))
        assert services.OVERLAP_CONSTRAINT in str(err.value)
    # Moving another session onto it is refused too.
    later = Session.objects.create(coach=first.coach, offer=offer,
                                   starts_at=NINE + timedelta(hours=3),
                                   ends_at=NINE + timedelta(hours=4))
    with pytest.raises(IntegrityError), transaction.atomic():
        Session.objects.filter(pk=later.pk).update(starts_at=NINE + timedelta(minutes=30))
    # Back-to-back and other coaches are fine; cancelled sessions free their time.
    Session.objects.create(coach=first.coach, offer=offer, starts_at=NINE + timedelta(hours=1),
                           ends_at=NINE + timedelta(hours=2))
    other = make_coach("other-coach@test.example")
    Session.objects.create(coach=other.coach_profile, offer=make_offer(other), starts_at=NINE,
                           ends_at=NINE + timedelta(hours=1))
    Session.objects.filter(pk=first.pk).update(status="cancelled")
    Session.objects.create(coach=first.coach, offer=offer, starts_at=NINE,
                           ends_at=NINE + timedelta(hours=1))


# --- cancellation -----------------------------------------------------------------------

def test_student_cancellation_is_free_until_24h_before(offer, student):
    session = services.book_session(student, offer.pk, NINE,
                                     now=NINE - timedelta(days=3)).session
    services.cancel_booking(student, session.pk, now=NINE - timedelta(hours=24))
    booking = Booking.objects.get()
    session.refresh_from_db()
    assert (booking.status, booking.cancellation_outcome) == ("cancelled", "free")
    assert session.status == "cancelled" and session.seats_taken == 0
    # The time is free again.
    services.book_session(make_student("n@test.example"), offer.pk, NINE,
                          now=NINE - timedelta(hours=23))


def test_late_student_cancellation_is_recorded_as_no_show_charge(offer, student):
    session = services.book_session(student, offer.pk, NINE,
                                    now=NINE - timedelta(days=3)).session
    services.cancel_booking(student, session.pk, now=NINE - timedelta(hours=23, minutes=59))
    assert Booking.objects.get().cancellation_outcome == "late_student"


def test_coach_cancellation_is_never_charged_and_cancels_every_seat(coach, now):
    offer = make_offer(coach, capacity=3)
    a, b = make_student("a@test.example"), make_student("b@test.example")
    session = services.book_session(a, offer.pk, NINE, now=now).session
    services.book_session(b, offer.pk, NINE, now=now)
    services.cancel_booking(coach, session.pk, now=NINE - timedelta(minutes=5))
    assert set(Booking.objects.values_list("status", "cancellation_outcome")) == {
        ("cancelled", "by_coach")}
    session.refresh_from_db()
    assert session.status == "cancelled"
    assert session.events.last().kind == "cancelled"


def test_group_student_cancellation_frees_one_seat(coach, now):
    offer = make_offer(coach, capacity=3)
    a, b = make_student("a@test.example"), make_student("b@test.example")
    session = services.book_session(a, offer.pk, NINE, now=now).session
    services.book_session(b, offer.pk, NINE, now=now)
    services.cancel_booking(a, session.pk, now=now)
    session.refresh_from_db()
    assert (session.status, session.seats_taken) == ("scheduled", 1)
    assert session.events.last().kind == "seat_freed"


def test_cancel_twice_or_after_start_is_refused(offer, student, coach, now):
    session = services.book_session(student, offer.pk, NINE, now=now).session
    services.start_session(coach, session.pk, now=NINE)
    with pytest.raises(CancellationNotAllowed):
        services.cancel_booking(student, session.pk, now=NINE)


# --- rescheduling -----------------------------------------------------------------------

def test_reschedule_moves_the_session_and_audits_before_after(offer, student, now):
    session = services.book_session(student, offer.pk, NINE, now=now).session
    moved = services.reschedule_session(student, session.pk, NINE + timedelta(hours=2), now=now)
    assert (moved.starts_at, moved.ends_at) == (NINE + timedelta(hours=2),
                                                NINE + timedelta(hours=3))
    event = moved.events.last()
    assert event.kind == "rescheduled"
    assert event.before["starts_at"] == NINE.isoformat()
    assert event.after["starts_at"] == (NINE + timedelta(hours=2)).isoformat()
    # A move by one hour overlaps the session's own old time: allowed (it is excluded).
    services.reschedule_session(student, session.pk, NINE + timedelta(hours=3), now=now)


def test_reschedule_onto_taken_or_unoffered_time_is_refused(offer, student, now):
    s1 = services.book_session(student, offer.pk, NINE, now=now).session
    services.book_session(student, offer.pk, NINE + timedelta(hours=2), now=now)
    with pytest.raises(SlotNotOffered):
        services.reschedule_session(student, s1.pk, NINE + timedelta(hours=2), now=now)
    with pytest.raises(SlotNotOffered):
        services.reschedule_session(student, s1.pk, NINE + timedelta(minutes=10), now=now)
    s1.refresh_from_db()
    assert s1.starts_at == NINE


def test_student_cannot_reschedule_late_but_coach_can(offer, student, coach):
    session = services.book_session(student, offer.pk, NINE,
                                    now=NINE - timedelta(days=2)).session
    late = NINE - timedelta(hours=3)
    with pytest.raises(CancellationNotAllowed):
        services.reschedule_session(student, session.pk, NINE + timedelta(hours=2), now=late)
    services.reschedule_session(coach, session.pk, NINE + timedelta(hours=2), now=late)


# --- state machine ----------------------------------------------------------------------

def test_each_transition_has_its_owner_and_audit_event(coach, now):
    offer = make_offer(coach)
    outcomes = [
        (services.complete_session, "completed"),
        (services.end_as_student_no_show, "no_show_student"),
        (services.end_as_coach_no_show, "no_show_coach"),
        (services.end_session_short, "early_end_short"),
    ]
    for i, (owner, status) in enumerate(outcomes):
        start = NINE + timedelta(hours=2 * i)
        student = make_student(f"t{i}@test.example")
        session = services.book_session(student, offer.pk, start, now=now).session
        services.start_session(coach, session.pk, now=start)
        owner(None, session.pk, now=start + timedelta(minutes=30))
        session.refresh_from_db()
        assert session.status == status
        kinds = list(session.events.values_list("kind", "before__status", "after__status"))
        assert kinds[-2:] == [("started", "scheduled", "in_progress"),
                              (status, "in_progress", status)]
        with pytest.raises(InvalidTransition):  # terminal: nothing moves it again
            services.complete_session(None, session.pk, now=start + timedelta(hours=1))


def test_start_is_refused_before_join_window_and_for_non_coach(offer, student, coach, now):
    session = services.book_session(student, offer.pk, NINE, now=now).session
    with pytest.raises(InvalidTransition):
        services.start_session(coach, session.pk, now=NINE - timedelta(minutes=6))
    with pytest.raises(Forbidden):
        services.start_session(student, session.pk, now=NINE)
    services.start_session(coach, session.pk, now=NINE - timedelta(minutes=5))


def test_cancelled_session_cannot_be_completed(offer, student, now):
    session = services.book_session(student, offer.pk, NINE, now=now).session
    services.cancel_booking(student, session.pk, now=now)
    with pytest.raises(InvalidTransition):
        services.complete_session(None, session.pk, now=NINE + timedelta(hours=1))


def test_weekly_rules_validate_and_presets_add(coach):
    with pytest.raises(InvalidInput):
        services.set_weekly_availability(coach, [services.RuleInput(0, time(10), time(9))])
    with pytest.raises(InvalidInput):
        services.set_weekly_availability(coach, [services.RuleInput(7, time(9), time(10))])
    services.set_weekly_availability(coach, [])
    services.apply_preset(coach, [0, 2], "evening")
    services.apply_preset(coach, [0], "evening")  # idempotent
    rules = [(r.weekday, r.start_time, r.end_time)
             for r in services.weekly_availability(coach.coach_profile)]
    assert rules == [(0, time(18), time(21)), (2, time(18), time(21))]


def test_blocked_override_removes_slots_and_extra_adds(coach, offer, now):
    services.add_override(coach, day=NINE.date(), kind="blocked")
    services.add_override(coach, day=NINE.date() + timedelta(days=1), kind="extra",
                          start=time(19), end=time(20))
    offer.coach.refresh_from_db()  # slots are as fresh as the offer's coach row
    slots = [s.start for s in services.list_slots(None, offer, start=MONDAY,
                                                  end=MONDAY + timedelta(days=2), now=now)]
    assert not [s for s in slots if s.date() == NINE.date()]
    assert MONDAY.replace(day=4, hour=19) in slots
    with pytest.raises(InvalidInput):
        services.add_override(coach, day=NINE.date(), kind="extra", start=time(9), end=None)


# --- availability cache -----------------------------------------------------------------

def _starts(offer, now):
    offer = type(offer).objects.select_related("coach").get(pk=offer.pk)  # fresh version
    return [s.start for s in services.list_slots(None, offer, start=MONDAY,
                                                 end=MONDAY + timedelta(days=1), now=now)]


def test_cached_availability_follows_every_kind_of_change(coach, offer, now):
    assert len(_starts(offer, now)) == 8
    services.set_weekly_availability(coach, [services.RuleInput(0, time(9), time(11))])
    assert len(_starts(offer, now)) == 2
    services.add_override(coach, day=MONDAY.date(), kind="extra", start=time(14),
                          end=time(15))
    assert len(_starts(offer, now)) == 3
    # An edit that bypasses the services (as the Django admin does) is seen too.
    from coachgate.scheduling.models import WeeklyAvailability

    rule = WeeklyAvailability.objects.get()
    rule.end_time = time(12)
    rule.save()
    assert len(_starts(offer, now)) == 4
    services.delete_override(coach, AvailabilityOverride.objects.get().pk)
    assert len(_starts(offer, now)) == 3


def test_warm_booking_does_not_reread_availability(offer, student, now,
                                                   django_assert_num_queries):
    services.book_session(student, offer.pk, NINE, now=now)  # warms the cache
    # offer, sessions, 3 inserts; inside the test's transaction the booking's own
    # transaction is a SAVEPOINT + RELEASE; PostgreSQL adds the coach's advisory lock (and
    # would re-read the sessions under it if the offer had buffers, a daily cap or seats).
    # Cold, weekly rules and overrides would add two reads. The reactions written with it
    # (booking_made) add 7: the notifications, the access row, the charge, the payment,
    # the settlement gate, and the task rows' check and insert.
    from django.db import connection

    with django_assert_num_queries(15 if connection.vendor == "postgresql" else 14):
        services.book_session(student, offer.pk, NINE + timedelta(hours=2), now=now)

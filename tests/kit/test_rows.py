"""kit.rows: the hot path's INSERTs and its offer read, with SQL built once per model."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import IntegrityError, transaction
from django.db.models.signals import post_save, pre_save
from django_tasks_db.models import DBTaskResult

from coachgate.access.models import SessionAccess
from coachgate.billing.models import BookingCharge, Payment, SessionBilling
from coachgate.catalog.models import CoachProfile, Offer
from coachgate.kit.rows import get_by_pk, insert
from coachgate.notify.models import Notification
from coachgate.scheduling.models import Booking, Session, SessionEvent
from tests.factories import MONDAY, make_offer, make_student

pytestmark = pytest.mark.django_db
AT = datetime(2031, 3, 3, 9, 0, tzinfo=UTC)


def test_the_models_written_this_way_have_no_save_receivers() -> None:
    # insert() sends no model signals: a receiver added to one of these later would be
    # skipped silently on the booking path. Only django-tasks-db's own pre_save (the
    # "no time" default, which kit.enqueue fills itself) is allowed.
    for model in (Session, Booking, SessionEvent, SessionAccess, BookingCharge, Payment,
                  SessionBilling, Notification):
        assert not pre_save.has_listeners(model), model
        assert not post_save.has_listeners(model), model
    assert not post_save.has_listeners(DBTaskResult)


def test_insert_sets_keys_and_state_like_save(student) -> None:
    rows = [Notification(key="k", channel=c, user=student, template="booking_confirmed",
                         context={"n": 1}, next_attempt_at=AT, created_at=AT)
            for c in ("email", "discord_dm")]
    assert insert(*rows) is True
    assert all(r.pk and not r._state.adding for r in rows)
    stored = {n.channel: n for n in Notification.objects.all()}
    assert {c: stored[c].pk for c in stored} == {r.channel: r.pk for r in rows}
    assert stored["email"].context == {"n": 1} and stored["email"].next_attempt_at == AT


def test_insert_refuses_mixed_models(student) -> None:
    n = Notification(key="k", channel="email", user=student, template="t", context={},
                     next_attempt_at=AT, created_at=AT)
    with pytest.raises(TypeError):
        insert(n, SessionBilling())
    assert insert() is True


def test_a_clash_raises_unless_skipped(student) -> None:
    def row(channel: str) -> Notification:
        return Notification(key="same", channel=channel, user=student,
                            template="booking_confirmed", context={}, next_attempt_at=AT,
                            created_at=AT)

    insert(row("email"))
    with pytest.raises(IntegrityError), transaction.atomic():
        insert(row("email"))
    pair = [row("email"), row("discord_dm")]
    assert insert(*pair, skip_conflicts=True) is False  # one clashed: the caller reads
    assert all(r.pk is None for r in pair)
    assert sorted(Notification.objects.values_list("channel", flat=True)) == [
        "discord_dm", "email"]


def test_get_by_pk_reads_the_named_fields_converted_and_defers_the_rest(coach) -> None:
    offer = make_offer(coach, intake_fields=[{"key": "goal", "label": "Goal",
                                              "type": "text", "required": True}])
    found = get_by_pk(offer.pk, (Offer, ("id", "coach", "intake_fields", "price_minor")),
                      (CoachProfile, ("id", "timezone")), join_on=("coach",))
    assert found is not None
    got, profile = found
    assert isinstance(got, Offer) and isinstance(profile, CoachProfile)
    assert (got.pk, got.coach_id, got.price_minor) == (offer.pk, offer.coach_id, 5000)
    assert got.intake_fields == offer.intake_fields  # JSON decoded as the ORM does
    assert profile.timezone == "Europe/London" and profile.pk == offer.coach_id
    assert got.get_deferred_fields() >= {"title", "access_policy"}
    assert got.title == offer.title  # a deferred field still loads on access
    assert get_by_pk(offer.pk + 1000, (Offer, ("id",))) is None


def test_a_booking_written_this_way_reads_back_like_one_saved(offer, now) -> None:
    from coachgate.scheduling import services

    booking = services.book_session(make_student("r@test.example"), offer.pk,
                                    MONDAY.replace(hour=9), now=now)
    again = Booking.objects.select_related("session").get(pk=booking.pk)
    assert again.session.starts_at == booking.session.starts_at
    assert again.session.created_at is not None and again.booked_at == now
    assert SessionEvent.objects.get(booking=booking).after["status"] == "scheduled"

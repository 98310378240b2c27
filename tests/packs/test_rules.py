"""Pure pack and seat rules, with hypothesis properties for the timeline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coachgate.packs import rules
from coachgate.packs.rules import PackStatus, PackTimes, SeatStatus

T0 = datetime(2031, 3, 3, 9, tzinfo=UTC)
TIMES = PackTimes()
GRACE = SeatStatus.GRACE

instants = st.integers(min_value=-200 * 3600, max_value=400 * 3600).map(
    lambda s: T0 + timedelta(seconds=s))


def test_defaults_match_the_spec():
    assert (TIMES.valid, TIMES.grace, TIMES.final_warning) == (
        timedelta(days=90), timedelta(hours=72), timedelta(hours=12))
    assert rules.expires_at(T0, TIMES) == T0 + timedelta(days=90)
    assert rules.grace_ends_at(T0, TIMES) == T0 + timedelta(hours=72)
    assert rules.final_warning_at(T0 + timedelta(hours=72), TIMES) == T0 + timedelta(hours=60)


@pytest.mark.parametrize("kwargs", [
    {"valid": timedelta(0)}, {"grace": timedelta(hours=-1)},
    {"final_warning": timedelta(hours=73)}, {"final_warning": timedelta(0)}])
def test_nonsense_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        PackTimes(**kwargs)


def test_after_use_names_the_reminders():
    assert rules.after_use(2) == rules.AfterUse.NOTHING
    assert rules.after_use(1) == rules.AfterUse.ONE_LEFT  # after session N-1
    assert rules.after_use(0) == rules.AfterUse.DEPLETED  # after session N


def test_booking_refusals():
    exp = T0 + timedelta(days=90)

    def refusal(status=PackStatus.ACTIVE, remaining=4, held=0, now=T0):
        return rules.booking_refusal(status=status, remaining=remaining, held=held,
                                     expires_at=exp, now=now)

    assert refusal() is None
    assert refusal(remaining=1, held=0) is None
    assert refusal(remaining=2, held=2) == rules.Refusal.EMPTY  # all booked
    assert refusal(remaining=0) == rules.Refusal.EMPTY
    assert refusal(now=exp) == rules.Refusal.EXPIRED  # the gate has not run yet
    assert refusal(status=PackStatus.EXPIRED) == rules.Refusal.EXPIRED
    assert refusal(status=PackStatus.DEPLETED, remaining=0) == rules.Refusal.NOT_ACTIVE


def test_first_free_number_reuses_given_back_numbers():
    assert rules.first_free_number(4, []) == 1
    assert rules.first_free_number(4, [1, 2]) == 3
    assert rules.first_free_number(4, [1, 3, 4]) == 2
    with pytest.raises(ValueError):
        rules.first_free_number(2, [1, 2])


def test_unused_value():
    assert rules.unused_value(20000, [5000]) == 15000
    assert rules.unused_value(10001, []) == 10001
    with pytest.raises(ValueError):
        rules.unused_value(100, [60, 60])


def test_pack_next_due():
    exp = T0 + timedelta(days=90)
    assert rules.pack_next_due(status=PackStatus.ACTIVE, expires_at=exp, closed=False,
                               held_ends=[], now=T0) == exp
    assert rules.pack_next_due(status=PackStatus.EXPIRED, expires_at=exp, closed=False,
                               held_ends=[], now=exp) == exp  # close at once
    held = [exp + timedelta(days=3)]
    assert rules.pack_next_due(status=PackStatus.EXPIRED, expires_at=exp, closed=False,
                               held_ends=held, now=exp) == held[0] + rules.CLOSE_RECHECK
    assert rules.pack_next_due(status=PackStatus.EXPIRED, expires_at=exp, closed=True,
                               held_ends=held, now=exp) is None
    assert rules.pack_next_due(status=PackStatus.DEPLETED, expires_at=exp, closed=False,
                               held_ends=[], now=exp) is None


def test_seat_status_follows_its_packs():
    assert rules.seat_status_for(current=SeatStatus.ACTIVE, active_packs=1) == SeatStatus.ACTIVE
    assert rules.seat_status_for(current=SeatStatus.ACTIVE, active_packs=0) == GRACE
    assert rules.seat_status_for(current=GRACE, active_packs=1) == SeatStatus.ACTIVE  # renewed
    assert rules.seat_status_for(current=SeatStatus.RELEASED,
                                 active_packs=1) == SeatStatus.RELEASED


def test_seat_timeline_without_sessions():
    end = T0 + timedelta(hours=72)
    warn = end - timedelta(hours=12)

    def nxt(now, warned=False, blocking=()):
        return rules.seat_next_due(status=GRACE, grace_end=end, warned=warned,
                                   blocking_ends=blocking, now=now, times=TIMES)

    assert nxt(T0) == warn
    assert not rules.should_warn(status=GRACE, grace_end=end, warned=False,
                                 now=warn - timedelta(seconds=1), times=TIMES)
    assert rules.should_warn(status=GRACE, grace_end=end, warned=False, now=warn, times=TIMES)
    assert not rules.should_warn(status=GRACE, grace_end=end, warned=True, now=warn,
                                 times=TIMES)
    assert not rules.should_warn(status=GRACE, grace_end=end, warned=False, now=end,
                                 times=TIMES)  # too late for "in 12 hours"
    assert nxt(warn, warned=True) == end
    assert not rules.may_release(status=GRACE, grace_end=end, blocking_ends=[],
                                 now=end - timedelta(seconds=1))
    assert rules.may_release(status=GRACE, grace_end=end, blocking_ends=[], now=end)
    assert not rules.may_release(status=SeatStatus.ACTIVE, grace_end=end, blocking_ends=[],
                                 now=end)
    assert rules.seat_next_due(status=SeatStatus.ACTIVE, grace_end=None, warned=False,
                               blocking_ends=[], now=T0, times=TIMES) is None


def test_a_session_still_to_come_holds_the_seat_until_it_ends():
    end = T0 + timedelta(hours=72)
    session_end = end + timedelta(hours=30)
    assert not rules.may_release(status=GRACE, grace_end=end, blocking_ends=[session_end],
                                 now=end)
    assert rules.seat_next_due(status=GRACE, grace_end=end, warned=True,
                               blocking_ends=[session_end], now=end,
                               times=TIMES) == session_end
    assert rules.may_release(status=GRACE, grace_end=end, blocking_ends=[session_end],
                             now=session_end)


@given(grace_end=instants, now=instants, ends=st.lists(instants, max_size=5))
def test_never_released_while_a_scheduled_session_ends_later(grace_end, now, ends):
    released = rules.may_release(status=GRACE, grace_end=grace_end, blocking_ends=ends, now=now)
    if released:
        assert now >= grace_end and all(e <= now for e in ends)
    else:
        assert now < grace_end or any(e > now for e in ends)


@given(lapsed=instants, ends=st.lists(instants, max_size=4),
       late=st.integers(min_value=0, max_value=100 * 3600))
def test_the_gate_times_move_forward_until_the_release(lapsed, ends, late):
    """Run the seat's gate at each due time (possibly late): every next due time is later
    than the run that set it, the warning comes at most once and only before the grace
    end, and the release happens exactly at the first run allowed to release."""
    grace_end = rules.grace_ends_at(lapsed, TIMES)
    warned, status = False, GRACE
    now = lapsed
    due = rules.seat_next_due(status=status, grace_end=grace_end, warned=warned,
                              blocking_ends=ends, now=now, times=TIMES)
    warnings, runs = 0, 0
    while due is not None:
        runs += 1
        assert runs < 10, "the gate never settles"
        now = max(now, due) + timedelta(seconds=late % 7 * 600 if runs == 2 else 0)
        if rules.should_warn(status=status, grace_end=grace_end, warned=warned, now=now,
                             times=TIMES):
            warned, warnings = True, warnings + 1
            assert now < grace_end
        if rules.may_release(status=status, grace_end=grace_end, blocking_ends=ends, now=now):
            assert now >= max([grace_end, *ends])
            status = SeatStatus.RELEASED
        nxt = rules.seat_next_due(status=status, grace_end=grace_end, warned=warned,
                                  blocking_ends=ends, now=now, times=TIMES)
        assert nxt is None or nxt > now
        due = nxt
    assert status == SeatStatus.RELEASED
    assert warnings <= 1


@given(price=st.integers(min_value=0, max_value=10**9), size=st.integers(min_value=2,
                                                                         max_value=40),
       order=st.randoms(use_true_random=False))
def test_numbers_and_values_add_up_however_sessions_are_given_back(price, size, order):
    """Book, give back and book again in any order: live numbers stay distinct and within
    the pack, so the values of a fully used pack add up to its price."""
    from coachgate.billing.rules import pack_session_values

    values = pack_session_values(price, size)
    live: list[int] = []
    for _ in range(size * 2):
        if live and order.random() < 0.4:
            live.remove(order.choice(live))  # a coach cancellation gives one back
        elif len(live) < size:
            live.append(rules.first_free_number(size, live))
    while len(live) < size:
        live.append(rules.first_free_number(size, live))
    assert sorted(live) == list(range(1, size + 1))
    assert rules.unused_value(price, [values[k - 1] for k in live]) == 0

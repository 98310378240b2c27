"""Pure gate-timeline rules: defaults from SPEC, second-scale policies, revocation first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from coachgate.access import rules
from coachgate.access.rules import GateKind, Phase
from coachgate.catalog.rules import AccessPolicy, parse_access_policy

START = datetime(2031, 3, 3, 15, 0, tzinfo=UTC)
END = START + timedelta(hours=1)
S = timedelta(seconds=1)


def at(gates: list[rules.Gate], kind: GateKind) -> datetime:
    return rules.gate_at(gates, kind)


def test_default_timeline_matches_spec() -> None:
    gates = rules.timeline(START, END, AccessPolicy())
    assert at(gates, GateKind.PROVISION) == START - timedelta(hours=2)  # with grant
    assert at(gates, GateKind.GRANT) == START - timedelta(hours=2)
    assert at(gates, GateKind.JOIN_WINDOW) == START - timedelta(minutes=5)
    assert at(gates, GateKind.REVOKE) == END + timedelta(hours=1)
    reminders = sorted((g.at, g.before_s) for g in gates if g.kind == GateKind.REMINDER)
    assert reminders == [(START - timedelta(hours=24), 86400), (START - timedelta(minutes=15), 900)]
    assert gates == sorted(gates, key=lambda g: g.at)


def test_provision_before_grant_when_policy_says_so() -> None:
    policy = parse_access_policy({"provision_before_s": 900, "grant_before_s": 300})
    gates = rules.timeline(START, END, policy)
    assert at(gates, GateKind.PROVISION) == START - 900 * S
    assert at(gates, GateKind.GRANT) == START - 300 * S
    assert rules.desired_phase(gates, live=True, now=START - 600 * S) == Phase.PROVISIONED


def test_second_scale_policy() -> None:
    policy = parse_access_policy({"grant_before_s": 10, "revoke_after_s": 5,
                                  "join_window_before_s": 3, "reminders_before_s": [8]})
    gates = rules.timeline(START, START + 20 * S, policy)
    assert [(g.kind, (g.at - START).total_seconds()) for g in gates] == [
        (GateKind.PROVISION, -10), (GateKind.GRANT, -10), (GateKind.REMINDER, -8),
        (GateKind.JOIN_WINDOW, -3), (GateKind.REVOKE, 25)]


def test_desired_phase_over_time() -> None:
    gates = rules.timeline(START, END, AccessPolicy())
    grant, revoke = at(gates, GateKind.GRANT), at(gates, GateKind.REVOKE)
    assert rules.desired_phase(gates, live=True, now=grant - S) == Phase.NONE
    assert rules.desired_phase(gates, live=True, now=grant) == Phase.GRANTED
    assert rules.desired_phase(gates, live=True, now=revoke - S) == Phase.GRANTED
    assert rules.desired_phase(gates, live=True, now=revoke) == Phase.REVOKED


def test_cancelled_session_is_revoked_whenever_it_is_asked() -> None:
    gates = rules.timeline(START, END, AccessPolicy())
    for now in (START - timedelta(days=3), START, END + timedelta(days=3)):
        assert rules.desired_phase(gates, live=False, now=now) == Phase.REVOKED
        assert rules.next_due(gates, now=now, live=False) is None


def test_next_due_skips_the_join_window_and_ends_after_revoke() -> None:
    gates = rules.timeline(START, END, AccessPolicy())
    now = START - timedelta(days=2)
    seen = []
    while (due := rules.next_due(gates, now=now, live=True)) is not None:
        seen.append(due)
        now = due
    assert seen == [START - timedelta(hours=24), START - timedelta(hours=2),
                    START - timedelta(minutes=15), END + timedelta(hours=1)]


def test_reschedule_moves_every_gate() -> None:
    policy = AccessPolicy()
    before = rules.timeline(START, END, policy)
    later = rules.timeline(START + timedelta(days=1), END + timedelta(days=1), policy)
    assert [g.at + timedelta(days=1) for g in before] == [g.at for g in later]


def test_reminders_only_once_only_latest_never_before_booking_or_after_start() -> None:
    gates = rules.timeline(START, END, AccessPolicy())
    booked = START - timedelta(days=3)
    due = rules.due_reminder
    assert due(gates, now=START - timedelta(hours=25), booked_at=booked, starts_at=START,
               last_sent_before_s=None) is None
    assert due(gates, now=START - timedelta(hours=24), booked_at=booked, starts_at=START,
               last_sent_before_s=None) == 86400
    assert due(gates, now=START - timedelta(hours=3), booked_at=booked, starts_at=START,
               last_sent_before_s=86400) is None
    # A worker that was down for a day sends only the latest due reminder.
    assert due(gates, now=START - timedelta(minutes=10), booked_at=booked, starts_at=START,
               last_sent_before_s=None) == 900
    assert due(gates, now=START - timedelta(minutes=10), booked_at=booked, starts_at=START,
               last_sent_before_s=900) is None
    # Booked two hours ahead: the 24-hour reminder was never due.
    late_booking = START - timedelta(hours=2)
    assert due(gates, now=START - timedelta(hours=1), booked_at=late_booking, starts_at=START,
               last_sent_before_s=None) is None
    assert due(gates, now=START, booked_at=booked, starts_at=START,
               last_sent_before_s=None) is None


def test_join_window() -> None:
    gates = rules.timeline(START, END, AccessPolicy())
    assert not rules.join_window_open(gates, live=True, now=START - 301 * S)
    assert rules.join_window_open(gates, live=True, now=START - 300 * S)
    assert not rules.join_window_open(gates, live=False, now=START)
    assert not rules.join_window_open(gates, live=True, now=END + timedelta(hours=1))


def test_retry_backoff_is_bounded() -> None:
    assert [rules.retry_delay(n).total_seconds() for n in (1, 2, 3, 7, 50)] == [1, 2, 4, 60, 60]


def test_channel_tag_round_trip() -> None:
    name = rules.channel_name(42, "Ada Lovelace!! & co")
    assert name.startswith("cg-42-ada-lovelace")
    assert rules.session_id_from_channel_name(name) == 42
    assert rules.session_id_from_channel_name("general") is None
    assert rules.session_id_from_channel_name("cg-offer-3") is None


@given(grant=st.integers(0, 10 * 86400), revoke=st.integers(0, 86400),
       duration=st.integers(60, 86400), offset=st.integers(-20 * 86400, 20 * 86400),
       live=st.booleans())
def test_access_only_inside_grant_revoke(grant: int, revoke: int, duration: int, offset: int,
                                         live: bool) -> None:
    """Property: access exists only inside [grant, revoke), never for a cancelled session,
    and next_due never goes backwards."""
    policy = AccessPolicy(grant_before_s=grant, revoke_after_s=revoke)
    end = START + duration * S
    gates = rules.timeline(START, end, policy)
    now = START + offset * S
    phase = rules.desired_phase(gates, live=live, now=now)
    inside = START - grant * S <= now < end + revoke * S
    assert (phase == Phase.GRANTED) == (inside and live)
    nxt = rules.next_due(gates, now=now, live=live)
    assert nxt is None or nxt > now

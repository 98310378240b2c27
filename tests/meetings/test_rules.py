"""meetings.rules: the join window, attendance across instances, the evidence settlement
reads (the free plan's 40-minute cut), what the provider is told, Jitsi rooms and tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coachgate.catalog.rules import AccessPolicy
from coachgate.meetings import rules
from coachgate.meetings.rules import Instance, JoinState, Stay

T0 = datetime(2031, 3, 3, 10, 0, tzinfo=UTC)
END = T0 + timedelta(minutes=60)


def m(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


# --- join window -------------------------------------------------------------------------


def test_the_window_opens_five_minutes_before_and_closes_when_access_does() -> None:
    w = rules.join_window(T0, END, AccessPolicy())
    assert w.opens_at == m(-5)
    assert w.closes_at == END + timedelta(hours=1)
    assert w.state(live=True, now=m(-5) - timedelta(seconds=1)) == JoinState.EARLY
    assert w.opens_in(m(-6)) == timedelta(minutes=1)
    assert w.state(live=True, now=m(-5)) == JoinState.OPEN
    assert w.opens_in(m(-5)) == timedelta(0)
    assert w.state(live=True, now=w.closes_at - timedelta(seconds=1)) == JoinState.OPEN
    assert w.state(live=True, now=w.closes_at) == JoinState.OVER
    assert w.state(live=False, now=m(0)) == JoinState.CANCELLED


def test_the_window_follows_the_offers_access_policy() -> None:
    w = rules.join_window(T0, END, AccessPolicy(join_window_before_s=600, revoke_after_s=0))
    assert (w.opens_at, w.closes_at) == (m(-10), END)


# --- what the provider is told ----------------------------------------------------------


def test_a_new_session_creates_an_unchanged_one_sends_nothing_a_moved_one_updates() -> None:
    assert rules.wanted(live=True, exists=False, starts_at=T0, duration_minutes=60,
                        synced_start=None, synced_minutes=None) == rules.Wanted(
        "create", T0, 60)
    assert rules.wanted(live=True, exists=True, starts_at=T0, duration_minutes=60,
                        synced_start=T0, synced_minutes=60).action == "none"
    moved = rules.wanted(live=True, exists=True, starts_at=m(30), duration_minutes=60,
                         synced_start=T0, synced_minutes=60)
    assert moved == rules.Wanted("update", m(30), 60)
    longer = rules.wanted(live=True, exists=True, starts_at=T0, duration_minutes=90,
                          synced_start=T0, synced_minutes=60)
    assert longer.action == "update"


def test_a_cancelled_session_deletes_its_meeting_once() -> None:
    assert rules.wanted(live=False, exists=True, starts_at=T0, duration_minutes=60,
                        synced_start=T0, synced_minutes=60).action == "delete"
    assert rules.wanted(live=False, exists=False, starts_at=T0, duration_minutes=60,
                        synced_start=None, synced_minutes=None).action == "none"


def test_zoom_start_time_is_utc_with_a_trailing_z() -> None:
    london = datetime(2031, 7, 1, 9, 30, tzinfo=ZoneInfo("Europe/London"))  # BST, UTC+1
    assert rules.zoom_start_time(london) == "2031-07-01T08:30:00Z"
    with pytest.raises(ValueError):
        rules.zoom_start_time(datetime(2031, 7, 1, 9, 30))  # noqa: DTZ001  # naive on purpose


@pytest.mark.parametrize(("password", "ok"), [
    ("a", True), ("Ab3@-_*xyz", True), ("", False), ("12345678901", False),
    ("has space", False), ("dollar$", False), ("ümlaut", False),
])
def test_zoom_password_rules(password: str, ok: bool) -> None:
    assert rules.zoom_password_ok(password) is ok


# --- attendance ---------------------------------------------------------------------------


def test_time_in_meeting_is_summed_across_instances_and_overlaps_count_once() -> None:
    stays = [
        Stay("i1", "student", "student", m(0), m(20)),
        Stay("i1", "student", "student", m(10), m(25)),  # a second device, overlapping
        Stay("i2", "student", "student", m(30), m(50)),  # after the host restarted
        Stay("i2", "student", "student", m(30), m(50)),  # the same event delivered twice
        Stay("i1", "coach", "host", m(-2), None),  # still in
    ]
    got = rules.time_in_meeting(stays, until=m(60))
    assert got["student"] == timedelta(minutes=45)  # 0–25 and 30–50
    assert got["coach"] == timedelta(minutes=62)
    assert rules.first_join(stays, "student") == m(0)
    assert rules.first_join(stays, "other") is None


def test_stays_out_of_order_and_beyond_until_are_clipped() -> None:
    stays = [Stay("i", "s", "student", m(40), m(70)), Stay("i", "s", "student", m(0), m(5)),
             Stay("i", "s", "student", m(80), m(90))]
    assert rules.time_in_meeting(stays, until=m(60)) == {"s": timedelta(minutes=25)}


@given(st.lists(st.tuples(st.integers(0, 120), st.integers(0, 60)), max_size=12))
def test_time_in_meeting_never_exceeds_the_span_and_ignores_duplicates(
        pairs: list[tuple[int, int]]) -> None:
    stays = [Stay("i", "p", "student", m(a), m(a + d)) for a, d in pairs]
    once = rules.time_in_meeting(stays, until=m(200))
    twice = rules.time_in_meeting(stays + stays, until=m(200))
    assert once == twice
    if stays:
        span = max(s.left_at for s in stays if s.left_at) - min(s.joined_at for s in stays)
        assert once.get("p", timedelta(0)) <= span
        assert once.get("p", timedelta(0)) <= sum(
            (s.left_at - s.joined_at for s in stays if s.left_at), timedelta(0))


# --- evidence -----------------------------------------------------------------------------


def test_a_restarted_meeting_is_one_meeting_from_first_start_to_last_end() -> None:
    ev = rules.evidence([Instance("i2", m(25), m(61)), Instance("i1", m(1), m(20))],
                        basic_host=False, ends_at=END, now=m(70))
    assert (ev.started_at, ev.ended_at, ev.cut_by_plan) == (m(1), m(61), False)


def test_a_running_instance_means_no_end_yet() -> None:
    ev = rules.evidence([Instance("i1", m(0), m(20)), Instance("i2", m(22))],
                        basic_host=False, ends_at=END, now=m(30))
    assert (ev.started_at, ev.ended_at) == (m(0), None)


def test_the_free_plans_40_minute_cut_is_no_early_end() -> None:
    cut = Instance("i1", m(0), m(40))
    ev = rules.evidence([cut], basic_host=True, ends_at=m(90), now=m(95))
    assert (ev.started_at, ev.ended_at, ev.cut_by_plan) == (m(0), None, True)
    # The same end by a licensed host is an end.
    ev = rules.evidence([cut], basic_host=False, ends_at=m(90), now=m(95))
    assert (ev.ended_at, ev.cut_by_plan) == (m(40), False)
    # A basic host who ends at 25 minutes ended it.
    ev = rules.evidence([Instance("i1", m(0), m(25))], basic_host=True, ends_at=m(90),
                        now=m(95))
    assert (ev.ended_at, ev.cut_by_plan) == (m(25), False)
    # Restarted after the cut and ended at 70: the later instance says when it ended.
    ev = rules.evidence([cut, Instance("i2", m(41), m(70))], basic_host=True,
                        ends_at=m(90), now=m(95))
    assert (ev.started_at, ev.ended_at, ev.cut_by_plan) == (m(0), m(70), False)


def test_no_instance_is_no_evidence() -> None:
    assert rules.evidence([], basic_host=False, ends_at=END, now=m(90)) == \
        rules.MeetingEvidence(None, None)


# --- Jitsi --------------------------------------------------------------------------------


def test_jitsi_rooms_are_unguessable_and_refuse_a_weak_random_part() -> None:
    assert rules.jitsi_room(7, "abcdefghijklmnop") == "coachgate-7-abcdefghijklmnop"
    for weak in ("short", "has spaces in it!!", "../../../../etc/pass"):
        with pytest.raises(ValueError):
            rules.jitsi_room(7, weak)


def test_jitsi_claims_match_the_join_window() -> None:
    w = rules.join_window(T0, END, AccessPolicy())
    claims = rules.jitsi_claims(app_id="app", server_host="meet.example.org", room="r",
                                window=w, name="Ann", email="ann@example.org",
                                moderator=True)
    assert claims["nbf"] == int(m(-5).timestamp())
    assert claims["exp"] == int((END + timedelta(hours=1)).timestamp())
    assert (claims["aud"], claims["iss"], claims["sub"], claims["room"]) == (
        "jitsi", "app", "meet.example.org", "r")
    assert claims["context"]["user"]["moderator"] == "true"

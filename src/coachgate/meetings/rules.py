"""Pure meeting rules: the join window, attendance summed across a meeting's instances,
the evidence settlement reads, what a provider must be told, Jitsi room names and tokens.

No I/O and no clock: ``now`` is always passed in.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from coachgate.access.rules import Gate, GateKind, gate_at, timeline
from coachgate.catalog.rules import AccessPolicy

#: A free (basic) Zoom host's meetings end after 40 minutes.
ZOOM_BASIC_LIMIT = timedelta(minutes=40)
#: How close to 40 minutes an instance's end must be to count as the plan's cut. Zoom
#: warns at 30 and cuts at 40; the start it reports is when the host opened the meeting.
CUT_TOLERANCE = timedelta(minutes=1)
#: Zoom: a meeting password is at most 10 characters of these.
ZOOM_PASSWORD_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@-_*")


class JoinState(StrEnum):
    EARLY = "early"  # before the window: a countdown
    OPEN = "open"  # the link works
    OVER = "over"  # after access closed
    CANCELLED = "cancelled"  # the session is not live


@dataclass(frozen=True)
class JoinWindow:
    opens_at: datetime
    closes_at: datetime

    def state(self, *, live: bool, now: datetime) -> JoinState:
        """Where ``now`` is in the window of a session that is (not) ``live``."""
        if not live:
            return JoinState.CANCELLED
        if now < self.opens_at:
            return JoinState.EARLY
        if now < self.closes_at:
            return JoinState.OPEN
        return JoinState.OVER

    def opens_in(self, now: datetime) -> timedelta:
        """How long until the window opens (zero once it has)."""
        return max(self.opens_at - now, timedelta(0))


def join_window(starts_at: datetime, ends_at: datetime, policy: AccessPolicy) -> JoinWindow:
    """The same window access computes for the session (its join-window and revoke gates):
    from ``join_window_before_s`` before the start (5 minutes by default) until access
    closes ``revoke_after_s`` after the end."""
    return window_of(timeline(starts_at, ends_at, policy))


def window_of(gates: list[Gate]) -> JoinWindow:
    """The join window of a session's gate timeline (access.rules.timeline)."""
    return JoinWindow(gate_at(gates, GateKind.JOIN_WINDOW), gate_at(gates, GateKind.REVOKE))


# --- what the provider must be told ----------------------------------------------------


@dataclass(frozen=True)
class Wanted:
    """What a session's meeting should be: created, moved, left alone or deleted."""

    action: str  # "create", "update", "delete" or "none"
    start: datetime | None = None
    minutes: int | None = None


def wanted(*, live: bool, exists: bool, starts_at: datetime, duration_minutes: int,
           synced_start: datetime | None, synced_minutes: int | None) -> Wanted:
    """The one call that brings the provider's meeting to the session, if any. An unchanged
    session asks for nothing (Zoom counts every create and update against a daily limit)."""
    if not live:
        return Wanted("delete") if exists else Wanted("none")
    if not exists:
        return Wanted("create", starts_at, duration_minutes)
    if synced_start == starts_at and synced_minutes == duration_minutes:
        return Wanted("none")
    return Wanted("update", starts_at, duration_minutes)


def zoom_start_time(at: datetime) -> str:
    """Zoom's ``start_time`` for a scheduled meeting: UTC with a trailing Z (the meeting's
    ``timezone`` is then only how Zoom displays it)."""
    if at.tzinfo is None:
        raise ValueError("a meeting's start must be an aware datetime")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def zoom_password_ok(password: str) -> bool:
    return 1 <= len(password) <= 10 and set(password) <= ZOOM_PASSWORD_CHARS


# --- attendance ------------------------------------------------------------------------


@dataclass(frozen=True)
class Stay:
    """One participant's stay in one instance of a meeting (``left_at`` None: still in)."""

    instance: str
    participant: str
    role: str  # "host", "student" or "other"
    joined_at: datetime
    left_at: datetime | None = None


@dataclass(frozen=True)
class Instance:
    """One run of a meeting: a host who ends and restarts it makes a second one."""

    instance: str
    started_at: datetime
    ended_at: datetime | None = None


def time_in_meeting(stays: Iterable[Stay], *, until: datetime) -> dict[str, timedelta]:
    """Per participant, the time they were in the meeting, summed across its instances:
    overlapping or repeated stays (two devices, an event delivered twice) count once, and
    a stay with no leave yet counts until ``until``."""
    spans: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    for s in stays:
        end = min(s.left_at or until, until)
        if end > s.joined_at:
            spans[s.participant].append((s.joined_at, end))
    out: dict[str, timedelta] = {}
    for who, parts in spans.items():
        parts.sort()
        total = timedelta(0)
        cur_start, cur_end = parts[0]
        for start, end in parts[1:]:
            if start <= cur_end:
                cur_end = max(cur_end, end)
            else:
                total += cur_end - cur_start
                cur_start, cur_end = start, end
        out[who] = total + (cur_end - cur_start)
    return out


def first_join(stays: Iterable[Stay], role: str) -> datetime | None:
    """When someone in ``role`` first joined, across instances (None: never)."""
    times = [s.joined_at for s in stays if s.role == role]
    return min(times) if times else None


def cut_by_plan(instance: Instance, *, basic_host: bool) -> bool:
    """Whether this instance ended because a free Zoom host's meeting stops at 40 minutes,
    not because anyone ended it."""
    if not basic_host or instance.ended_at is None:
        return False
    return abs((instance.ended_at - instance.started_at) - ZOOM_BASIC_LIMIT) <= CUT_TOLERANCE


@dataclass(frozen=True)
class MeetingEvidence:
    """What settlement's evidence gets from the provider: when the meeting started (its
    first instance) and ended (its last), and whether the plan cut it."""

    started_at: datetime | None
    ended_at: datetime | None
    cut_by_plan: bool = False


def evidence(instances: Iterable[Instance], *, basic_host: bool, ends_at: datetime,
             now: datetime) -> MeetingEvidence:
    """The meeting's evidence across its instances, for a session scheduled to end at
    ``ends_at``:

    * started: the first instance's start; ended: the last instance's end, or None while
      one is still running (a host who ends and restarts within the session is one
      meeting);
    * an end that is the free plan's 40-minute cut is no early end: the meeting is taken
      as still going (``ended_at`` None, ``cut_by_plan`` set so the coach can be warned),
      unless a later instance says otherwise.
    """
    runs = sorted(instances, key=lambda i: i.started_at)
    if not runs:
        return MeetingEvidence(None, None)
    started = runs[0].started_at
    last = runs[-1]
    if last.ended_at is None or last.started_at > now:
        return MeetingEvidence(started, None)
    if last.ended_at < ends_at and cut_by_plan(last, basic_host=basic_host):
        return MeetingEvidence(started, None, cut_by_plan=True)
    return MeetingEvidence(started, last.ended_at)


# --- Jitsi ------------------------------------------------------------------------------


def jitsi_room(session_id: int, random_part: str) -> str:
    """An unguessable room name for a session: ``random_part`` is at least 16 URL-safe
    characters from a secure source (the service passes ``secrets.token_urlsafe``)."""
    if len(random_part) < 16 or not all(c.isalnum() or c in "-_" for c in random_part):
        raise ValueError("a room needs at least 16 URL-safe random characters")
    return f"coachgate-{session_id}-{random_part}"


def jitsi_claims(*, app_id: str, server_host: str, room: str, window: JoinWindow,
                 name: str, email: str, moderator: bool) -> dict[str, Any]:
    """The JWT claims of a Jitsi (prosody token auth) room token valid only in the join
    window: the server itself refuses it before ``nbf`` and after ``exp``."""
    return {
        "aud": "jitsi",
        "iss": app_id,
        "sub": server_host,
        "room": room,
        "nbf": int(window.opens_at.timestamp()),
        "exp": int(window.closes_at.timestamp()),
        "context": {"user": {"name": name, "email": email,
                             "moderator": "true" if moderator else "false"}},
    }


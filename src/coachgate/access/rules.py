"""Pure access rules: the gate timeline of a session and the access it should have now.

No I/O and no clock: ``now`` is always passed in. Everything the worker does is derived
from these functions and the session row, so a run that is late, repeated or follows a
crash computes the same desired state and converges to it (level-triggered).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from coachgate.catalog.rules import AccessPolicy


class GateKind(StrEnum):
    PROVISION = "provision"  # hidden private channel exists
    GRANT = "grant"  # coach and students can see and join
    JOIN_WINDOW = "join_window"  # join button / video link opens (no Discord call)
    REMINDER = "reminder"  # DM/email with the link
    REVOKE = "revoke"  # access removed, channel deleted or archived


class Phase(StrEnum):
    """The access a session should have (desired) or has (recorded)."""

    NONE = "none"  # nothing exists yet
    PROVISIONED = "provisioned"  # channel exists, nobody but the bot can see it
    GRANTED = "granted"  # channel exists, participants can see and join
    REVOKED = "revoked"  # access is gone for good (channel deleted or archived)


PHASE_ORDER = {Phase.NONE: 0, Phase.PROVISIONED: 1, Phase.GRANTED: 2, Phase.REVOKED: 3}


@dataclass(frozen=True, order=True)
class Gate:
    at: datetime
    kind: GateKind
    # For reminders: how many seconds before the start (identifies the reminder).
    before_s: int = 0


def timeline(starts_at: datetime, ends_at: datetime, policy: AccessPolicy) -> list[Gate]:
    """Every gate of a session, sorted by time (ties: the order of the GateKind enum)."""
    grant = starts_at - timedelta(seconds=policy.grant_before_s)
    provision_before = policy.provision_before_s
    provision = (grant if provision_before is None
                 else starts_at - timedelta(seconds=provision_before))
    gates = [
        Gate(provision, GateKind.PROVISION),
        Gate(grant, GateKind.GRANT),
        Gate(starts_at - timedelta(seconds=policy.join_window_before_s), GateKind.JOIN_WINDOW),
        Gate(ends_at + timedelta(seconds=policy.revoke_after_s), GateKind.REVOKE),
    ]
    gates += [Gate(starts_at - timedelta(seconds=s), GateKind.REMINDER, s)
              for s in policy.reminders_before_s]
    order = list(GateKind)
    return sorted(gates, key=lambda g: (g.at, order.index(g.kind), -g.before_s))


def gate_at(gates: list[Gate], kind: GateKind) -> datetime:
    return next(g.at for g in gates if g.kind == kind)


def access_window(starts_at: datetime, ends_at: datetime,
                  policy: AccessPolicy) -> tuple[datetime, datetime]:
    """[provision, revoke): while a channel may exist for the session."""
    gates = timeline(starts_at, ends_at, policy)
    return gate_at(gates, GateKind.PROVISION), gate_at(gates, GateKind.REVOKE)


def desired_phase(gates: list[Gate], *, live: bool, now: datetime) -> Phase:
    """The access the session should have at ``now``. Revocation outranks everything:
    a cancelled session, or any time at or after the revoke gate, is REVOKED."""
    if not live or now >= gate_at(gates, GateKind.REVOKE):
        return Phase.REVOKED
    if now >= gate_at(gates, GateKind.GRANT):
        return Phase.GRANTED
    if now >= gate_at(gates, GateKind.PROVISION):
        return Phase.PROVISIONED
    return Phase.NONE


def next_due(gates: list[Gate], *, now: datetime, live: bool) -> datetime | None:
    """The next gate strictly after ``now`` that needs a run, or None when nothing is left.

    A cancelled session needs one run (to revoke) and nothing after it; the join window
    needs no run (it is read when a page or the API asks)."""
    if not live:
        return None
    return next((g.at for g in gates if g.at > now and g.kind != GateKind.JOIN_WINDOW), None)


def due_reminder(gates: list[Gate], *, now: datetime, booked_at: datetime,
                 starts_at: datetime, last_sent_before_s: int | None) -> int | None:
    """The reminder to send now (its seconds-before-start), or None.

    A reminder is sent at most once; reminders whose time had passed when the session
    was booked are never sent (a session booked 2 h ahead gets no "in 24 hours" message);
    when a late run finds several due, only the latest one goes out. Nothing is sent once
    the session has started.
    """
    if now >= starts_at:
        return None
    due = [g.before_s for g in gates
           if g.kind == GateKind.REMINDER and booked_at <= g.at <= now]
    if not due:
        return None
    latest = min(due)
    if last_sent_before_s is not None and latest >= last_sent_before_s:
        return None
    return latest


def join_window_open(gates: list[Gate], *, live: bool, now: datetime) -> bool:
    """Whether the join button / video link is usable now."""
    return (live and gate_at(gates, GateKind.JOIN_WINDOW) <= now
            < gate_at(gates, GateKind.REVOKE))


def retry_delay(attempts: int) -> timedelta:
    """Backoff after a failed run that may succeed later: 1 s, 2 s, 4 s … capped at 60 s,
    so a gate that fell due during an outage converges within a minute of recovery."""
    return timedelta(seconds=min(60, 2 ** max(0, attempts - 1)))


def channel_name(session_id: int, coach_name: str) -> str:
    """Discord channel name. The ``cg-<id>-`` prefix tags the channel as coachgate's, so
    the sweep recognises its own channels and removes orphans."""
    slug = "".join(c if c.isalnum() else "-" for c in coach_name.lower()).strip("-")
    slug = "-".join(p for p in slug.split("-") if p)[:40] or "session"
    return f"cg-{session_id}-{slug}"


def session_id_from_channel_name(name: str) -> int | None:
    parts = name.split("-", 2)
    if len(parts) >= 2 and parts[0] == "cg" and parts[1].isdigit():
        return int(parts[1])
    return None

"""Access use cases: keep each session's access row in step with the session, and converge
Discord to what the clock says.

Every run is level-triggered: it reads the session, computes the desired phase for
(session, policy, now) with the pure rules, and makes Discord match. A run that is late,
repeated, or follows a crash therefore does the right thing, and revocation outranks
everything because ``desired_phase`` answers REVOKED at or after the revoke gate whatever
happened before.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q

from coachgate.accounts import discord as linked
from coachgate.accounts.models import DiscordLink, Role, User
from coachgate.catalog.models import Delivery, Offer
from coachgate.catalog.rules import AccessPolicy, parse_access_policy
from coachgate.integrations.discord import permissions as perms
from coachgate.integrations.discord.client import (
    ActionRequired,
    CallRecord,
    DiscordClient,
    DiscordError,
    DiscordNotFound,
    LimitReached,
    RetryLater,
)
from coachgate.kit import clock, due, enqueue, metrics
from coachgate.kit.config import conf
from coachgate.kit.errors import CoachgateError
from coachgate.kit.rows import insert as insert_rows
from coachgate.scheduling.lifecycle import LIVE
from coachgate.scheduling.models import Booking, BookingStatus, Session

from . import rules
from .models import Category, DiscordCall, ErrorKind, GateRun, GuildState, OfferRole, SessionAccess
from .rules import GateKind, Phase

log = logging.getLogger(__name__)

# Longer than any run can take (a few calls, each bounded by the client's timeout).
LEASE = timedelta(seconds=conf().ACCESS_LEASE_SECONDS)
BUSY_RETRY = timedelta(seconds=1)
ACTION_RETRY = timedelta(minutes=5)  # a revoke that someone must fix is still retried
CATEGORY_CAPACITY = 50
GUILD_CHANNEL_LIMIT = 500

MEMBER_ALLOW = perms.VIEW_CHANNEL | perms.CONNECT | perms.SPEAK
EVERYONE_DENY = perms.VIEW_CHANNEL | perms.CONNECT
BOT_ALLOW = perms.VIEW_CHANNEL | perms.CONNECT | perms.MANAGE_CHANNELS
LIVE_STATUSES = [s.value for s in LIVE]


class NotConfigured(Exception):
    """No guild or bot token is configured: someone must act."""


class AccessProblem(Exception):
    """Something in Discord that retrying cannot fix (shown to admins)."""


# --- the Discord client, one per process ------------------------------------------------

_local = threading.local()
_clients: dict[tuple[str, str], DiscordClient] = {}
_clients_lock = threading.Lock()
_bot_ids: dict[str, str] = {}


def _on_call(record: CallRecord) -> None:
    calls = getattr(_local, "calls", None)
    if calls is not None:
        calls.append((record, getattr(_local, "shared", 0) > 0))


class _shared_calls:
    """Calls made for something many sessions share (the bot's id, a category, an offer's
    role): recorded without a session, not counted in a session's lifecycle."""

    def __enter__(self) -> None:
        _local.shared = getattr(_local, "shared", 0) + 1

    def __exit__(self, *exc: object) -> None:
        _local.shared -= 1


def discord_client(cfg: linked.GuildSettings) -> DiscordClient:
    """The process's client for this configuration: rate-limit buckets are learnt once
    and shared by every run in the process."""
    key = (cfg.api_url, cfg.bot_token)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = linked.bot_client(on_call=_on_call)
            if client is None:
                raise NotConfigured("Discord is not configured (guild id and bot token).")
            _clients[key] = client
        return client


def _bot_user_id(client: DiscordClient, cfg: linked.GuildSettings) -> str:
    key = cfg.api_url + cfg.bot_token
    if key not in _bot_ids:
        with _shared_calls():
            _bot_ids[key] = str(client.get_current_user()["id"])
    return _bot_ids[key]


# --- keeping the access row in step with the session -------------------------------------


def _policy(source: Session | Offer) -> AccessPolicy:
    """A session's access policy is the one it was booked under (its snapshot); an offer's
    is what a booking made now would get."""
    return parse_access_policy(source.access_policy)


def sync_access_row(session: Session, *, now: datetime) -> SessionAccess:
    """Create or update the session's access row after the session changed (booked,
    rescheduled, cancelled, finished) and schedule the wake-up. Runs in the caller's
    transaction; the wake-up is enqueued with it (kit.enqueue)."""
    policy = _policy(session)
    window_start, window_end = rules.access_window(session.starts_at, session.ends_at, policy)
    # Two bookings of one group session commit at once and both land here: the row is
    # created once (get_or_create retries the read after a lost insert) and then locked,
    # so the second update waits for the first.
    SessionAccess.objects.get_or_create(session=session, defaults={
        "window_start": window_start, "window_end": window_end,
        "discord": session.offer.delivery == Delivery.DISCORD_VOICE,
        "mode": policy.discord_mode})
    row = SessionAccess.objects.select_for_update().get(pk=session.pk)
    previous_due = row.next_due_at
    if (row.window_start, row.window_end) != (window_start, window_end):
        # Rescheduled: reminders and the "access is open" message belong to the new time.
        row.reminder_sent_before_s = None
        row.access_open_sent = False
    row.window_start, row.window_end = window_start, window_end
    if not row.mode:  # a stand-in row made while the policy was unreadable (_create_row)
        row.mode = policy.discord_mode
    _plan_next_run(row, session, policy, now)
    # Only the fields this function owns: a gate run may be writing the Discord ones.
    row.save(update_fields=["window_start", "window_end", "mode", "reminder_sent_before_s",
                            "access_open_sent", "phase", "next_due_at", "updated_at"])
    if row.next_due_at != previous_due:
        # Unchanged: the wake-up enqueued when it was set still stands (and the sweep
        # covers a lost one). A completed session's revoke gate needs no second task.
        wake_up_on_commit(session.pk, row.next_due_at)
    return row


def create_access_row(session: Session, *, now: datetime) -> SessionAccess:
    """``sync_access_row`` for a session created in this transaction (it has no row yet, so
    there is nothing to read or lock): one INSERT."""
    policy = _policy(session)
    window_start, window_end = rules.access_window(session.starts_at, session.ends_at, policy)
    row = SessionAccess(session=session, window_start=window_start, window_end=window_end,
                        discord=session.offer.delivery == Delivery.DISCORD_VOICE,
                        mode=policy.discord_mode)
    _plan_next_run(row, session, policy, now)
    insert_rows(row)
    wake_up_on_commit(session.pk, row.next_due_at)
    return row


def _plan_next_run(row: SessionAccess, session: Session, policy: AccessPolicy,
                   now: datetime) -> None:
    """The row's phase and when it runs next, from the session as it is now."""
    gates = rules.timeline(session.starts_at, session.ends_at, policy)
    live = session.status in LIVE
    desired = rules.desired_phase(gates, live=live, now=now)
    holds_nothing = not (row.channel_id or row.role_id or row.granted
                         or row.create_intent_at or (row.lease_until and row.lease_until > now))
    if desired == Phase.REVOKED and holds_nothing and row.phase in (Phase.NONE, Phase.REVOKED):
        # Cancelled (or over) before anything was made: nothing to undo, no run needed.
        row.phase = Phase.REVOKED
        row.next_due_at = None
    elif row.phase != desired or _reminder_due(row, session, gates, now) is not None:
        row.next_due_at = now
    else:
        row.next_due_at = rules.next_due(gates, now=now, live=live)


def wake_up_on_commit(session_id: int, at: datetime | None) -> None:
    if at is None:
        return
    from .tasks import converge_session  # tasks import services: import here

    enqueue.enqueue(converge_session, session_id, run_after=at)


def _reminder_due(row: SessionAccess, session: Session, gates: list[rules.Gate],
                  now: datetime) -> int | None:
    return rules.due_reminder(gates, now=now, booked_at=session.created_at,
                              starts_at=session.starts_at,
                              last_sent_before_s=row.reminder_sent_before_s)


# --- one run ---------------------------------------------------------------------------


@dataclass
class RunResult:
    session_id: int
    outcome: str  # ok | retry | action | busy | gone
    phase: str = ""
    calls: int = 0
    error: str = ""
    gate: tuple[str, datetime] | None = None  # (kind, due time) when a gate fell due


@dataclass
class _Participant:
    user: User
    link: DiscordLink | None

    @property
    def discord_id(self) -> str | None:
        return self.link.discord_user_id if self.link else None


@dataclass
class _Run:
    row: SessionAccess
    session: Session
    policy: AccessPolicy
    gates: list[rules.Gate]
    now: datetime
    participants: list[_Participant] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def converge(session_id: int, *, now: datetime | None = None, owner: str = "",
             respect_backoff: bool = False) -> RunResult:
    """Converge one session's access to what the clock says. Safe to call at any time,
    any number of times, from any number of workers. ``respect_backoff`` (wake-up tasks):
    a row whose last run failed on its data is left alone until its retry is due."""
    now = now or clock.now()
    owner = owner or due.worker_identity()
    if not 0 < session_id < 2**63:
        return RunResult(session_id, "gone")
    claim = (SessionAccess.objects.filter(pk=session_id)
             .filter(Q(lease_until__isnull=True) | Q(lease_until__lte=now)))
    backing_off = Q(error_kind=ErrorKind.DATA, next_due_at__gt=now)
    if respect_backoff:
        claim = claim.exclude(backing_off)
    claimed = claim.update(lease_until=now + LEASE, lease_owner=owner)
    if not claimed and respect_backoff and SessionAccess.objects.filter(
            backing_off, pk=session_id).exists():
        return RunResult(session_id, "waiting")  # its retry has a wake-up of its own
    if not claimed:
        if not SessionAccess.objects.filter(pk=session_id).exists():
            session = Session.objects.select_related("offer").filter(pk=session_id).first()
            if session is None:
                return RunResult(session_id, "gone")
            created = _create_row(session, now)
            if created is not None:  # its policy cannot be read: recorded on a new row
                metrics.GATE_RUNS.labels(kind="none", result="error").inc()
                return RunResult(session_id, "error", error=created)
            return converge(session_id, now=now, owner=owner)
        # Another run holds it; look again shortly (it may have started before a change).
        with transaction.atomic():
            wake_up_on_commit(session_id, now + BUSY_RETRY)
        metrics.GATE_RUNS.labels(kind="any", result="busy").inc()
        return RunResult(session_id, "busy")

    _local.calls = []
    try:
        row = _claimed_row(session_id)
        snapshot = _session_snapshot(row.session)
        try:
            if row.error_kind == ErrorKind.DATA:
                row = _resync(row, now)
            result = _run_claimed(row, now)
        except Exception as exc:  # not Discord's errors (_run_claimed handles those)
            result = _run_failed(row, exc, now)
    finally:
        calls: list[tuple[CallRecord, bool]] = _local.calls
        _local.calls = None
    result.calls = sum(1 for _, shared in calls if not shared)
    _finish(row, result, calls, now, snapshot)
    return result


def _claimed_row(session_id: int) -> SessionAccess:
    return (SessionAccess.objects
            .select_related("session__offer", "session__coach__user").get(pk=session_id))


def _resync(row: SessionAccess, now: datetime) -> SessionAccess:
    """The last run could not read the session's data: its windows may be stand-ins (see
    ``_create_row``) or stale, so compute them again before running (raises while the
    policy is still unreadable). The row's Discord fields are untouched."""
    with transaction.atomic():
        sync_access_row(row.session, now=now)
    return _claimed_row(row.pk)


def policy_problem(session: Session) -> str | None:
    """Why the session's access policy cannot be used (a row stored before validation
    existed: an unknown key, a duration out of range), or None when it can."""
    try:
        gates_of(session)
    except Exception as exc:  # whatever the bad row raises: InvalidInput, OverflowError …
        return due.describe(exc)
    return None


def _run_failed(row: SessionAccess, exc: Exception, now: datetime) -> RunResult:
    """A run raised something other than Discord's errors: the session's policy cannot be
    read (stored before validation existed), a bug, the database. The error is recorded on
    the row (error kind "data", shown to admins) and the run is retried with backoff
    (kit.due's: 1 s, 2 s, 4 s … at most 10 min); every other session carries on.

    Access never outlives its session: while the policy is unreadable, a session that is
    over (or no longer live) has whatever it holds removed, under the default policy."""
    session = row.session
    first = row.error_kind != ErrorKind.DATA
    row.attempts += 1
    row.error_kind, row.last_error = ErrorKind.DATA, due.describe(exc)
    result = RunResult(session.pk, "error", phase=row.phase, error=row.last_error)
    log.warning("access run for session %s failed (retry %s): %s", session.pk,
                row.attempts, row.last_error, exc_info=not isinstance(exc, CoachgateError))
    if first:
        _tell_admins(row, row.last_error, now)
    retry_at = now + due.backoff(row.attempts)
    over = session.status not in LIVE or now >= session.ends_at
    if not over:
        row.next_due_at = min(retry_at, session.ends_at)
        return result
    if policy_problem(session) is None:
        row.next_due_at = retry_at  # readable: the retry closes access by the policy
        return result
    try:
        if row.discord:
            _converge_discord(_Run(row, session, AccessPolicy(), [], now), Phase.REVOKED)
        row.phase, row.next_due_at = Phase.REVOKED, None
        result.phase = Phase.REVOKED.value
    except Exception as close_exc:  # Discord is down too: try again
        row.last_error = f"{row.last_error}; closing access failed: {_describe(close_exc)}"
        row.last_error = row.last_error[:2000]
        row.next_due_at = retry_at
    return result


def _tell_admins(row: SessionAccess, error: str, now: datetime) -> None:
    """Once per distinct error (the notification key holds its hash): data that retrying
    cannot fix needs an admin."""
    try:
        _notify_admins_problem(_Run(row, row.session, AccessPolicy(), [], now), error)
    except Exception:  # telling is second to recording: the row shows the error anyway
        log.exception("could not tell the admins about session %s", row.pk)


def _run_claimed(row: SessionAccess, now: datetime) -> RunResult:
    session = row.session
    policy = _policy(session)
    gates = rules.timeline(session.starts_at, session.ends_at, policy)
    live = session.status in LIVE
    desired = rules.desired_phase(gates, live=live, now=now)
    run = _Run(row, session, policy, gates, now)
    due = row.next_due_at
    result = RunResult(session.pk, "ok", phase=desired.value)
    if due is not None and due <= now:
        kind = next((g.kind for g in reversed(gates) if g.at <= due), GateKind.PROVISION)
        if row.attempts == 0:  # lateness of a gate, not of a retry
            metrics.GATE_LATENESS.labels(kind=kind.value).observe((now - due).total_seconds())
        if any(g.at == due for g in gates):  # a gate's own run (not a retry's): recorded
            result.gate = (kind.value, due)
    try:
        if row.discord:
            _converge_discord(run, desired)
        row.phase = desired
        row.error_kind, row.last_error, row.attempts = ErrorKind.NONE, "", 0
        if run.problems:
            row.error_kind, row.last_error = ErrorKind.ACTION, "; ".join(run.problems)[:2000]
            result.outcome, result.error = "action", row.last_error
        row.next_due_at = rules.next_due(gates, now=now, live=live)
        if live and row.phase == Phase.GRANTED and not row.access_open_sent:
            _notify_access_open(run)
            row.access_open_sent = True
        reminder = _reminder_due(row, session, gates, now)
        if reminder is not None:
            _notify_reminder(run, reminder)
            row.reminder_sent_before_s = reminder
    except (NotConfigured, AccessProblem, DiscordError) as exc:
        row.attempts += 1
        row.last_error = _describe(exc)
        result.error = row.last_error
        if isinstance(exc, RetryLater):
            row.error_kind, result.outcome = ErrorKind.RETRY, "retry"
            delay = rules.retry_delay(row.attempts)
            if exc.retry_after:
                delay = max(delay, timedelta(seconds=exc.retry_after))
        else:
            row.error_kind, result.outcome = ErrorKind.ACTION, "action"
            delay = ACTION_RETRY
            if row.attempts == 1:
                _notify_admins_problem(run, row.last_error)
        upcoming = rules.next_due(gates, now=now, live=live)
        retry_at = now + delay
        # An action-needed failure waits for the next gate if that comes first; a
        # revocation is always retried (access must close).
        row.next_due_at = min(retry_at, upcoming) if upcoming else retry_at
        log.warning("access run for session %s failed (%s): %s", session.pk,
                    result.outcome, row.last_error)
    return result


def _describe(exc: Exception) -> str:
    if isinstance(exc, DiscordError):
        return f"{type(exc).__name__}: {exc.method} {exc.route} -> {exc.status} " \
               f"(code {exc.code}): {exc.message}"
    return f"{type(exc).__name__}: {exc}"


def _session_snapshot(session: Session) -> tuple[Any, ...]:
    return (session.status, session.starts_at, session.ends_at, session.seats_taken)


def _finish(row: SessionAccess, result: RunResult, calls: list[tuple[CallRecord, bool]],
            now: datetime, snapshot: tuple[Any, ...]) -> None:
    with transaction.atomic():
        fresh = (Session.objects.filter(pk=row.pk)
                 .values_list("status", "starts_at", "ends_at", "seats_taken").first())
        if fresh is not None and tuple(fresh) != snapshot:
            # The session changed while Discord was being called: run again right away.
            row.next_due_at = now
        row.runs += 1
        row.discord_calls += result.calls
        row.last_run_at = now
        row.lease_until, row.lease_owner = None, ""
        row.save(update_fields=[
            "phase", "next_due_at", "lease_until", "lease_owner", "guild_id", "channel_id",
            "category_id", "role_id", "archived", "create_intent_at", "granted",
            "reminder_sent_before_s", "access_open_sent", "error_kind", "last_error",
            "attempts", "runs", "discord_calls", "last_run_at", "verified_at", "updated_at",
        ])
        if result.gate is not None:
            kind, due_at = result.gate
            GateRun.objects.create(
                access_id=row.pk, kind=kind, due_at=due_at, ran_at=now,
                late_ms=max(0, int((now - due_at).total_seconds() * 1000)),
                ok=result.outcome == "ok")
        if calls:
            DiscordCall.objects.bulk_create([
                DiscordCall(access_id=None if shared else row.pk,
                            at=datetime.fromtimestamp(c.at, tz=now.tzinfo),
                            method=c.method, route=c.route[:120], status=c.status,
                            duration_ms=int(c.duration_s * 1000)) for c, shared in calls
            ])
        wake_up_on_commit(row.pk, row.next_due_at)
    metrics.GATE_RUNS.labels(kind=result.phase or "none", result=result.outcome).inc()


# --- Discord convergence -----------------------------------------------------------------


def _participants(session: Session) -> list[_Participant]:
    students = [b.student for b in Booking.objects.select_related("student")
                .filter(session=session, status=BookingStatus.ACTIVE)]
    users = [session.coach.user, *students]
    links = {link.user_id: link for link in
             DiscordLink.objects.filter(user_id__in=[u.pk for u in users])}
    return [_Participant(u, links.get(u.pk)) for u in users]


def _converge_discord(run: _Run, desired: Phase) -> None:
    cfg = linked.guild_settings()
    if cfg is None:
        if desired in (Phase.NONE, Phase.REVOKED) and not (run.row.channel_id or run.row.role_id):
            return
        raise NotConfigured("Discord is not configured (guild id and bot token).")
    client = discord_client(cfg)
    row = run.row
    row.guild_id = row.guild_id or cfg.guild_id
    mode = row.mode or "member_overwrites"
    if desired in (Phase.PROVISIONED, Phase.GRANTED):
        want: set[str] = set()
        if desired == Phase.GRANTED:
            want = _wanted_members(run, client)
        if mode == "member_overwrites":
            _ensure_channel(run, client, cfg, want)
        elif mode == "session_role":
            _ensure_session_role(run, client, cfg, want)
        else:
            _ensure_offer_role(run, client, cfg, want)
    else:
        _teardown(run, client, cfg, mode, archive=desired == Phase.REVOKED
                  and run.policy.end_action == "archive")


def _wanted_members(run: _Run, client: DiscordClient) -> set[str]:
    run.participants = _participants(run.session)
    want: set[str] = set()
    for p in run.participants:
        if p.link is None:
            run.problems.append(f"{p.user.email} has no linked Discord account")
            continue
        if linked.state_of(p.link) != linked.VERIFIED:
            try:
                linked.ensure_in_guild(p.user, now=run.now, client=client)
            except (ActionRequired, CoachgateError) as exc:  # e.g. no OAuth app to refresh
                run.problems.append(f"could not add {p.user.email} to the guild: {exc.message}")
        want.add(p.link.discord_user_id)
    return want


def _reason(run: _Run, what: str) -> str:
    return f"coachgate session {run.session.pk}: {what}"


def _overwrites(cfg: linked.GuildSettings, bot_id: str, member_ids: Iterable[str],
                role_id: str = "") -> list[dict[str, Any]]:
    ow: list[dict[str, Any]] = [
        {"id": cfg.guild_id, "type": 0, "allow": "0", "deny": str(EVERYONE_DENY)},
        {"id": bot_id, "type": 1, "allow": str(BOT_ALLOW), "deny": "0"},
    ]
    if role_id:
        ow.append({"id": role_id, "type": 0, "allow": str(MEMBER_ALLOW), "deny": "0"})
    ow += [{"id": m, "type": 1, "allow": str(MEMBER_ALLOW), "deny": "0"}
           for m in sorted(member_ids)]
    return ow


def _find_tagged_channel(client: DiscordClient, cfg: linked.GuildSettings,
                         session_id: int) -> dict[str, Any] | None:
    for ch in client.list_guild_channels(cfg.guild_id):
        if rules.session_id_from_channel_name(str(ch.get("name", ""))) == session_id:
            return ch
    return None


def _create_session_channel(run: _Run, client: DiscordClient, cfg: linked.GuildSettings,
                            overwrites: list[dict[str, Any]]) -> bool:
    """Create the session's channel (True), or adopt the one a crashed run made (False)."""
    row = run.row
    if row.create_intent_at is not None:
        # A previous run may have created it and died before recording the id.
        found = _find_tagged_channel(client, cfg, run.session.pk)
        if found is not None:
            row.channel_id = str(found["id"])
            row.category_id = str(found.get("parent_id") or "")
            row.granted = sorted(str(o["id"]) for o in found.get("permission_overwrites", [])
                                 if int(o.get("type", 0)) == 1
                                 and int(o.get("allow", "0")) & perms.SPEAK)
            return False
    row.create_intent_at = run.now
    SessionAccess.objects.filter(pk=row.pk).update(create_intent_at=run.now)  # commits now
    name = rules.channel_name(run.session.pk, run.session.coach.display_name)
    for _ in range(3):
        category = _category_with_room(client, cfg)
        try:
            channel = client.create_channel(
                cfg.guild_id, name=name, type=2, parent_id=category or None,
                permission_overwrites=overwrites, reason=_reason(run, "private channel"))
        except LimitReached as exc:
            if category and _is_category_full(exc):
                Category.objects.filter(category_id=category).update(full=True)
                continue
            raise
        row.channel_id = str(channel["id"])
        row.category_id = category
        return True
    raise AccessProblem("no category with room for the channel could be made")


def _is_category_full(exc: LimitReached) -> bool:
    return exc.code == 50035 or "CHANNEL_PARENT_MAX_CHANNELS" in str(exc.message)


def _category_with_room(client: DiscordClient, cfg: linked.GuildSettings) -> str:
    """A category with fewer than 50 channels: the configured platform category first,
    then coachgate's own overflow categories, creating the next one when all are full."""
    if cfg.category_id:
        Category.objects.get_or_create(
            category_id=cfg.category_id,
            defaults={"guild_id": cfg.guild_id, "name": "configured", "configured": True})
    candidates = list(Category.objects.filter(guild_id=cfg.guild_id, full=False)
                      .order_by("-configured", "pk").values_list("category_id", flat=True))
    for cat in candidates:
        used = SessionAccess.objects.filter(category_id=cat).exclude(channel_id="").count()
        if used < CATEGORY_CAPACITY:
            return cat
        Category.objects.filter(category_id=cat).update(full=True)
    number = Category.objects.filter(guild_id=cfg.guild_id).count() + 1
    name = f"coachgate sessions {number}"
    with _shared_calls():
        created = client.create_channel(
            cfg.guild_id, name=name, type=4,
            permission_overwrites=_overwrites(cfg, _bot_user_id(client, cfg), ()),
            reason="coachgate: category for private session channels")
    Category.objects.create(guild_id=cfg.guild_id, category_id=str(created["id"]), name=name)
    return str(created["id"])


def _ensure_channel(run: _Run, client: DiscordClient, cfg: linked.GuildSettings,
                    want: set[str]) -> None:
    """member_overwrites mode: the channel carries one overwrite per participant, made in
    the same call that creates it (1 call), removed with the channel (1 call)."""
    row = run.row
    bot_id = _bot_user_id(client, cfg)
    if not row.channel_id and _create_session_channel(run, client, cfg,
                                                      _overwrites(cfg, bot_id, want)):
        row.granted = sorted(want)
        return
    granted = set(row.granted)
    try:
        for member in sorted(want - granted):
            client.edit_channel_permissions(row.channel_id, member, allow=MEMBER_ALLOW, deny=0,
                                            type=1, reason=_reason(run, "grant"))
            granted.add(member)
        for member in sorted(granted - want):
            client.delete_channel_permission(row.channel_id, member,
                                             reason=_reason(run, "revoke"))
            granted.discard(member)
    except DiscordNotFound:
        # Deleted behind our back: make it again, with the right members, in one call.
        row.channel_id, row.create_intent_at = "", None
        _create_session_channel(run, client, cfg, _overwrites(cfg, bot_id, want))
        granted = set(want)
    row.granted = sorted(granted)


def _ensure_session_role(run: _Run, client: DiscordClient, cfg: linked.GuildSettings,
                         want: set[str]) -> None:
    """session_role mode (reference 000): a role per session gates the channel."""
    row = run.row
    if not row.role_id:
        role = client.create_role(cfg.guild_id, name=f"cg-{run.session.pk} session",
                                  reason=_reason(run, "session role"))
        row.role_id = str(role["id"])
        SessionAccess.objects.filter(pk=row.pk).update(role_id=row.role_id)
    if not row.channel_id:
        _create_session_channel(run, client, cfg,
                                _overwrites(cfg, _bot_user_id(client, cfg), (), row.role_id))
    granted = set(row.granted)
    for member in sorted(want - granted):
        client.add_member_role(cfg.guild_id, member, row.role_id, reason=_reason(run, "grant"))
        granted.add(member)
    for member in sorted(granted - want):
        _remove_role_quietly(client, cfg, member, row.role_id, _reason(run, "revoke"))
        granted.discard(member)
    row.granted = sorted(granted)


def _offer_role(run: _Run, client: DiscordClient, cfg: linked.GuildSettings) -> OfferRole:
    with _shared_calls():
        return _offer_role_unshared(run, client, cfg)


def _offer_role_unshared(run: _Run, client: DiscordClient,
                         cfg: linked.GuildSettings) -> OfferRole:
    offer = run.session.offer
    holder, _ = OfferRole.objects.get_or_create(offer=offer, defaults={"guild_id": cfg.guild_id})
    if not holder.role_id:
        role = client.create_role(cfg.guild_id, name=f"Coaching Access · {offer.title}"[:100],
                                  reason=f"coachgate offer {offer.pk}: coaching access role")
        holder.role_id = str(role["id"])
        holder.save(update_fields=["role_id"])
    if not holder.channel_id:
        channel = client.create_channel(
            cfg.guild_id, name=f"cg-offer-{offer.pk}", type=2,
            parent_id=_category_with_room(client, cfg) or None,
            permission_overwrites=_overwrites(cfg, _bot_user_id(client, cfg), (), holder.role_id),
            reason=f"coachgate offer {offer.pk}: coaching channel")
        holder.channel_id = str(channel["id"])
        holder.save(update_fields=["channel_id"])
    return holder


def _ensure_offer_role(run: _Run, client: DiscordClient, cfg: linked.GuildSettings,
                       want: set[str]) -> None:
    """offer_role mode (reference 002): a shared "Coaching Access" role per offer, held by
    the participants only while one of their sessions of the offer is granted."""
    row = run.row
    if not want and not row.granted:
        return  # provisioning needs nothing in this mode
    holder = _offer_role(run, client, cfg)
    row.role_id = holder.role_id
    granted = set(row.granted)
    for member in sorted(want - granted):
        client.add_member_role(cfg.guild_id, member, holder.role_id,
                               reason=_reason(run, "grant"))
        granted.add(member)
    for member in sorted(granted - want):
        if not _holds_other_grant(run, member):
            _remove_role_quietly(client, cfg, member, holder.role_id, _reason(run, "revoke"))
        granted.discard(member)
    row.granted = sorted(granted)


def _holds_other_grant(run: _Run, member: str) -> bool:
    others = (SessionAccess.objects.filter(session__offer_id=run.session.offer_id,
                                           phase=Phase.GRANTED)
              .exclude(pk=run.session.pk).values_list("granted", flat=True))
    return any(member in (g or []) for g in others)


def _remove_role_quietly(client: DiscordClient, cfg: linked.GuildSettings, member: str,
                         role_id: str, reason: str) -> None:
    # The member left the guild or the role is gone: access is gone either way.
    with contextlib.suppress(DiscordNotFound):
        client.remove_member_role(cfg.guild_id, member, role_id, reason=reason)


def _teardown(run: _Run, client: DiscordClient, cfg: linked.GuildSettings, mode: str,
              *, archive: bool) -> None:
    row = run.row
    if mode == "offer_role":
        _ensure_offer_role(run, client, cfg, set())
        row.role_id = ""
        return
    if row.channel_id and not row.archived:
        if archive:
            # Access closes in a call of its own, without the rename: Discord limits
            # renames to 2 per 10 minutes per channel, and that 429 must not hold access
            # open. The rename follows (below), retried later when refused.
            archive_category = cfg.archive_category_id or None
            try:
                client.modify_channel(
                    row.channel_id, reason=_reason(run, "archive: revoke"),
                    parent_id=archive_category,
                    permission_overwrites=_overwrites(cfg, _bot_user_id(client, cfg), ()))
                row.archived, row.granted = True, []
            except DiscordNotFound:
                row.channel_id = ""
        else:
            with contextlib.suppress(DiscordNotFound):
                client.delete_channel(row.channel_id, reason=_reason(run, "revoke and delete"))
            row.channel_id, row.category_id = "", ""
    if row.role_id:
        with contextlib.suppress(DiscordNotFound):
            client.delete_role(cfg.guild_id, row.role_id, reason=_reason(run, "delete role"))
        row.role_id = ""
    row.granted = []
    row.create_intent_at = None
    if not row.archived and not row.channel_id:
        row.category_id = ""
    if row.archived and row.channel_id and row.phase != Phase.REVOKED:
        _rename_archived(run, client)


def _rename_archived(run: _Run, client: DiscordClient) -> None:
    """An archived channel is renamed ``archived-…`` once its access is closed. A refused
    rename (RetryLater: Discord's hidden rename limit) fails the run, which keeps the row
    short of REVOKED, so the retry, at Discord's ``retry_after``, renames it then."""
    try:
        client.modify_channel(
            run.row.channel_id, reason=_reason(run, "archive: rename"),
            name=f"archived-{rules.channel_name(run.session.pk, 'session')}"[:100])
    except DiscordNotFound:  # deleted by hand meanwhile: nothing left to rename
        run.row.channel_id = ""


# --- notifications -----------------------------------------------------------------------


def discord_channel_url(row: SessionAccess) -> str | None:
    """The session's Discord channel, once there is one."""
    channel = row.channel_id
    if row.mode == "offer_role" and not channel:
        channel = (OfferRole.objects.filter(offer_id=row.session.offer_id)
                   .values_list("channel_id", flat=True).first() or "")
    if row.discord and channel and row.guild_id:
        return f"https://discord.com/channels/{row.guild_id}/{channel}"
    return None


def channel_link(row: SessionAccess) -> str:
    """Where a participant joins: the Discord channel, else coachgate's own join page for
    the session (``/sessions/{id}/join``, which checks who asks and the window before it
    sends anyone on to a video provider: meetings.services.join)."""
    return discord_channel_url(row) or f"{conf().PUBLIC_URL}/sessions/{row.session_id}/join"


def access_row(session: Session) -> SessionAccess | None:
    row = SessionAccess.objects.filter(session=session).first()
    if row is not None:
        row.session = session
    return row


def _session_context(run: _Run) -> dict[str, Any]:
    s = run.session
    return {"session_id": s.pk, "offer_title": s.offer.title,
            "coach_name": s.coach.display_name, "starts_at": s.starts_at.isoformat(),
            "ends_at": s.ends_at.isoformat(), "link": channel_link(run.row)}


def _recipients(run: _Run) -> list[User]:
    if not run.participants:
        run.participants = _participants(run.session)
    return [p.user for p in run.participants]


def _notify_access_open(run: _Run) -> None:
    from coachgate.notify.services import notify

    ctx = _session_context(run)
    start_key = int(run.session.starts_at.timestamp())
    for user in _recipients(run):
        notify(user, "access_open", ctx, key=f"access_open:{run.session.pk}:{start_key}:{user.pk}",
               now=run.now)


def _notify_reminder(run: _Run, before_s: int) -> None:
    from coachgate.notify.services import notify

    ctx = {**_session_context(run), "minutes_before": math.ceil(before_s / 60)}
    start_key = int(run.session.starts_at.timestamp())
    for user in _recipients(run):
        notify(user, "session_reminder", ctx,
               key=f"reminder:{run.session.pk}:{start_key}:{before_s}:{user.pk}", now=run.now)


def _stable_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _notify_admins_problem(run: _Run, error: str) -> None:
    from coachgate.notify.services import notify

    ctx = {**_session_context(run), "error": error}
    for admin in User.objects.filter(role=Role.ADMIN, is_active=True):
        notify(admin, "access_problem", ctx, channels=("email",),
               key=f"access_problem:{run.session.pk}:{_stable_hash(error)}:{admin.pk}",
               now=run.now)


# --- the sweep ---------------------------------------------------------------------------


# A sweep report lists at most this many failed sessions (all of them are counted).
REPORTED_FAILURES = 50


@dataclass
class SweepReport:
    rows_created: int = 0
    converged: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    channels_recreated: int = 0
    overwrites_repaired: int = 0
    orphans_deleted: int = 0
    members_readded: int = 0
    drift_error: str = ""
    errors: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)

    def failed(self, session_id: int, error: str) -> None:
        self.errors += 1
        if len(self.failures) < REPORTED_FAILURES:
            self.failures.append({"session_id": session_id, "error": error})

    def as_dict(self) -> dict[str, Any]:
        return {"rows_created": self.rows_created, "converged": self.converged,
                "outcomes": self.outcomes, "channels_recreated": self.channels_recreated,
                "overwrites_repaired": self.overwrites_repaired,
                "orphans_deleted": self.orphans_deleted,
                "members_readded": self.members_readded, "drift_error": self.drift_error,
                "errors": self.errors, "failures": self.failures}


def due_session_ids(now: datetime, limit: int = 500) -> list[int]:
    """Sessions whose access is behind their gates: one range scan of a partial index."""
    return list(SessionAccess.objects.filter(next_due_at__lte=now)
                .filter(Q(lease_until__isnull=True) | Q(lease_until__lte=now))
                .order_by("next_due_at").values_list("pk", flat=True)[:limit])


def create_missing_rows(now: datetime, limit: int = 500,
                        report: SweepReport | None = None) -> int:
    """Sessions that lost their on-commit event (a crash right after commit) get a row."""
    missing = list(Session.objects.select_related("offer")
                   .filter(access__isnull=True, ends_at__gte=now - timedelta(days=1))
                   .order_by("starts_at")[:limit])
    for session in missing:
        error = _create_row(session, now)
        if error is not None and report is not None:
            report.failed(session.pk, error)
    return len(missing)


def _create_row(session: Session, now: datetime) -> str | None:
    """``sync_access_row`` for a session without a row. When its policy cannot be read,
    the row is made anyway, with the session's own times as stand-in windows and the error
    recorded (admins see it; the row's retries run with backoff and compute the windows
    again, see ``_resync``); returns that error."""
    try:
        with transaction.atomic():
            sync_access_row(session, now=now)
        return None
    except Exception as exc:
        error = due.describe(exc)
        log.warning("no access row for session %s: %s", session.pk, error)
    with transaction.atomic():
        row, created = SessionAccess.objects.get_or_create(session=session, defaults={
            "window_start": session.starts_at, "window_end": session.ends_at,
            "discord": session.offer.delivery == Delivery.DISCORD_VOICE, "phase": Phase.NONE,
            "error_kind": ErrorKind.DATA, "last_error": error, "attempts": 1,
            "next_due_at": now + due.backoff(1)})
        if not created:  # made meanwhile by the session's own event: its runs record errors
            return None
        wake_up_on_commit(session.pk, row.next_due_at)
    _tell_admins(row, error, now)
    return error


def sweep(*, now: datetime | None = None, limit: int = 500, drift: bool = True,
          owner: str = "") -> SweepReport:
    """Find every session that is behind its gates and converge it; then compare Discord
    with our rows and repair drift (channels deleted by hand, overwrites changed,
    orphans left by crashes)."""
    now = now or clock.now()
    owner = owner or due.worker_identity()
    report = SweepReport()
    # Each session on its own: one whose run raises is recorded on its row and retried
    # with backoff (converge), and every other session and step below still runs.
    report.rows_created = create_missing_rows(now, report=report)
    for _ in range(200):  # in batches, until nothing due at the sweep's start is left
        batch = due_session_ids(now, limit)
        for session_id in batch:
            result = _converge_isolated(session_id, now=now, owner=owner)
            report.converged += 1
            report.outcomes[result.outcome] = report.outcomes.get(result.outcome, 0) + 1
            if result.outcome == "error":
                report.failed(session_id, result.error)
        if len(batch) < limit:
            break
    if drift:
        try:
            repair_drift(report, now=now, owner=owner)
        except (DiscordError, NotConfigured) as exc:
            report.drift_error = _describe(exc)
        except Exception as exc:  # a bug or the database: the rest of the sweep still runs
            log.exception("drift repair failed")
            report.drift_error = due.describe(exc)
    due.isolated("task_prune", "pruning finished wake-ups", prune_task_results, now)
    due.isolated("gate_run_prune", "pruning old gate runs", prune_gate_runs, now)
    return report


def _converge_isolated(session_id: int, *, now: datetime, owner: str) -> RunResult:
    """``converge``, never raising: what it cannot record itself (the database failed) is
    recorded with kit.due's backoff, or else the row's lease expires and a later sweep
    retries it."""
    try:
        return converge(session_id, now=now, owner=owner)
    except Exception as exc:
        log.exception("access run for session %s failed", session_id)
        due.record_failure(SessionAccess, session_id, owner=owner, now=now, exc=exc)
        return RunResult(session_id, "error", error=due.describe(exc))


def prune_task_results(now: datetime, keep: timedelta = timedelta(hours=1)) -> int:
    """Wake-ups that ran are history; the truth is in the access rows. Keep an hour."""
    from django_tasks_db.models import DBTaskResult

    old = list(DBTaskResult.objects.finished().filter(finished_at__lt=now - keep)
               .values_list("pk", flat=True)[:5000])
    if old:
        DBTaskResult.objects.filter(pk__in=old).delete()
    return len(old)


GATE_RUNS_KEPT = timedelta(days=400)  # the statistics' longest period, a year, and some


def prune_gate_runs(now: datetime, keep: timedelta = GATE_RUNS_KEPT, batch: int = 5000) -> int:
    """Gate runs older than ``keep`` go, at most ``batch`` per sweep (one gate run per
    gate of every session would otherwise grow without end)."""
    old = list(GateRun.objects.filter(due_at__lt=now - keep).order_by("due_at")
               .values_list("pk", flat=True)[:batch])
    if old:
        GateRun.objects.filter(pk__in=old).delete()
    return len(old)


def _channel_is_gone(client: DiscordClient, channel_id: str) -> bool:
    """A held channel missing from the guild's listing: deleted behind our back, or made
    by a run that finished after the listing was taken (then it is there when asked)."""
    try:
        client.get_channel(channel_id)
    except DiscordNotFound:
        return True
    return False


def repair_drift(report: SweepReport, *, now: datetime, owner: str = "") -> None:
    cfg = linked.guild_settings()
    if cfg is None:
        return
    client = discord_client(cfg)
    channels = client.list_guild_channels(cfg.guild_id)
    by_id = {str(ch["id"]): ch for ch in channels}
    ours = {cid: ch for cid, ch in by_id.items()
            if rules.session_id_from_channel_name(str(ch.get("name", ""))) is not None}
    record_guild_channels(cfg.guild_id, channels, now)
    held = {row.channel_id: row for row in SessionAccess.objects.filter(discord=True)
            .exclude(channel_id="")}
    verified: list[int] = []
    for channel_id, row in held.items():
        if row.lease_until is not None and row.lease_until > now:
            continue  # a run is working on it
        if row.archived:
            continue
        channel = by_id.get(channel_id)
        if channel is None:
            # Gone, or made after the listing by a run that finished in between (not
            # drift). Reset only if the row still holds that channel and no run holds it.
            if _channel_is_gone(client, channel_id) and SessionAccess.objects.filter(
                    pk=row.pk, channel_id=channel_id).filter(
                    Q(lease_until__isnull=True) | Q(lease_until__lte=now)).update(
                    channel_id="", create_intent_at=None, granted=[], next_due_at=now):
                report.channels_recreated += 1
                _converge_isolated(row.pk, now=now, owner=owner)
            continue
        if row.mode == "member_overwrites":
            actual = sorted(str(o["id"]) for o in channel.get("permission_overwrites", [])
                            if int(o.get("type", 0)) == 1
                            and int(o.get("allow", "0")) & perms.SPEAK)
            if actual != sorted(row.granted):
                SessionAccess.objects.filter(pk=row.pk).update(granted=actual, next_due_at=now)
                report.overwrites_repaired += 1
                _converge_isolated(row.pk, now=now, owner=owner)
                continue
        verified.append(row.pk)
    for start in range(0, len(verified), 500):
        SessionAccess.objects.filter(pk__in=verified[start:start + 500]).update(verified_at=now)
    _repair_members(report, client, cfg, now=now)
    in_flight = set(SessionAccess.objects.filter(lease_until__gt=now)
                    .values_list("pk", flat=True))
    for channel_id, ch in ours.items():
        if channel_id in held:
            continue
        session_id = rules.session_id_from_channel_name(str(ch["name"]))
        if session_id in in_flight:
            continue
        if (SessionAccess.objects.filter(pk=session_id, archived=True, channel_id=channel_id)
                .exists()):
            continue
        with contextlib.suppress(DiscordNotFound):
            client.delete_channel(channel_id, reason="coachgate: orphaned session channel")
        report.orphans_deleted += 1


MEMBER_CHECK_EVERY = timedelta(minutes=5)
MEMBER_CHECKS_PER_SWEEP = 20


def _repair_members(report: SweepReport, client: DiscordClient, cfg: linked.GuildSettings,
                    *, now: datetime) -> None:
    """Members holding access who left or were removed from the guild are added back with
    their own guilds.join grant (their channel overwrites still name them). A few per sweep,
    each member at most every 5 minutes, so the check costs little."""
    holders = {m for g in SessionAccess.objects.filter(phase=Phase.GRANTED, discord=True)
               .values_list("granted", flat=True) for m in (g or [])}
    if not holders:
        return
    due = (DiscordLink.objects.select_related("user").filter(discord_user_id__in=holders)
           .filter(Q(checked_at__isnull=True) | Q(checked_at__lt=now - MEMBER_CHECK_EVERY))
           .order_by("checked_at")[:MEMBER_CHECKS_PER_SWEEP])
    for link in due:
        try:
            client.get_guild_member(cfg.guild_id, link.discord_user_id)
            linked.record_guild_membership(link.discord_user_id, True, now=now)
        except DiscordNotFound:
            linked.record_guild_membership(link.discord_user_id, False, now=now)
            try:
                linked.ensure_in_guild(link.user, now=now, client=client)
                report.members_readded += 1
            except (ActionRequired, CoachgateError) as exc:
                log.warning("could not add %s back to the guild: %s", link.user.email,
                            exc.message)


# --- booking guard -----------------------------------------------------------------------


def check_booking_capacity(offer: Offer, start: datetime, end: datetime,
                           now: datetime) -> None:
    """Refuse a Discord booking that could not get its channel: the student must have
    linked Discord, and the guild must have room for the channel throughout its window
    (categories included), so a session is never half-provisioned."""
    from coachgate.kit.errors import DiscordRequired, GuildFull

    del now
    policy = _policy(offer)
    window_start, window_end = rules.access_window(start, end, policy)
    if offer.capacity > 1 and Session.objects.filter(
            offer=offer, starts_at=start, status__in=LIVE_STATUSES).exists():
        return  # joining a group session: its channel is already planned
    cfg = linked.guild_settings()
    if cfg is None:
        raise DiscordRequired(
            "Discord delivery is not available: an admin has not configured the server yet.",
            details={"reason": "not_configured"})
    overlapping = (SessionAccess.objects.filter(discord=True, window_start__lt=window_end,
                                                window_end__gt=window_start)
                   .filter(session__status__in=LIVE_STATUSES)
                   .exclude(mode="offer_role").count())
    state = GuildState.objects.filter(guild_id=cfg.guild_id).first()
    others = state.other_channels if state else 0
    needed = overlapping + 1
    if needed + math.ceil(needed / CATEGORY_CAPACITY) + others > GUILD_CHANNEL_LIMIT:
        raise GuildFull(details={"limit": GUILD_CHANNEL_LIMIT,
                                 "planned_channels": overlapping, "other_channels": others})


def check_student_link(student: User) -> None:
    from coachgate.kit.errors import DiscordRequired

    if linked.verification_state(student) == "not_connected":
        raise DiscordRequired(details={"connect_url": linked.connect_url()})


# --- for pages and the admin --------------------------------------------------------------


def gates_of(session: Session) -> list[rules.Gate]:
    return rules.timeline(session.starts_at, session.ends_at, _policy(session))


class AccessUnavailable(CoachgateError):
    """A session's access policy cannot be read (stored before validation existed): its
    gates are unknown until an admin fixes it. Pages and the API show this instead."""

    status = 409
    code = "access_unavailable"
    default_message = ("Access to this session is unavailable: its access settings cannot "
                       "be read. An admin can see why on the session's access row.")


def readable_gates(session: Session) -> list[rules.Gate]:
    """``gates_of``, raising AccessUnavailable (with the reason for admins in ``details``)
    whatever an unreadable policy raises."""
    try:
        return gates_of(session)
    except Exception as exc:
        raise AccessUnavailable(details={"reason": due.describe(exc)}) from exc


@dataclass(frozen=True)
class JoinInfo:
    open: bool
    opens_at: datetime | None
    closes_at: datetime | None
    link: str | None
    # Set when the session's access cannot be worked out (the page says so, nothing else).
    unavailable: str = ""


def join_info(sessions: list[Session], now: datetime) -> dict[int, JoinInfo]:
    """For pages: when each session's join button opens and, inside the window, where it
    leads. One query for all the access rows. A session whose policy cannot be read is
    marked unavailable; the others are unaffected."""
    rows = SessionAccess.objects.in_bulk([s.pk for s in sessions])
    out: dict[int, JoinInfo] = {}
    for s in sessions:
        try:
            gates = readable_gates(s)
            open_now = rules.join_window_open(gates, live=s.status in LIVE, now=now)
            row = rows.get(s.pk)
            if row is not None:
                row.session = s
            out[s.pk] = JoinInfo(open_now, rules.gate_at(gates, GateKind.JOIN_WINDOW),
                                 rules.gate_at(gates, GateKind.REVOKE),
                                 channel_link(row) if open_now and row is not None else None)
        except AccessUnavailable as exc:
            log.warning("session %s: %s", s.pk, exc.details.get("reason"))
            out[s.pk] = JoinInfo(False, None, None, None, unavailable=exc.message)
    return out


def record_guild_channels(guild_id: str, channels: list[dict[str, Any]],
                          now: datetime) -> int:
    """Remember how many of the guild's channels are not coachgate's (the booking guard
    adds ours on top) and return how many are ours: session and offer channels (tagged
    ``cg-``) and our categories."""
    mine = set(Category.objects.filter(guild_id=guild_id).values_list("category_id", flat=True))
    mine |= set(OfferRole.objects.values_list("channel_id", flat=True))
    ours = sum(1 for c in channels
               if str(c.get("name", "")).startswith("cg-") or str(c["id"]) in mine)
    GuildState.objects.update_or_create(guild_id=guild_id, defaults={
        "other_channels": len(channels) - ours, "checked_at": now})
    return ours


# --- the gate timeline of one session, for its coach's page ---------------------------------

_GATE_PHASE = {GateKind.PROVISION: Phase.PROVISIONED, GateKind.GRANT: Phase.GRANTED,
               GateKind.REVOKE: Phase.REVOKED}
_GATE_WORDS = {
    GateKind.PROVISION: "Private channel made (hidden)",
    GateKind.GRANT: "Access granted to coach and students",
    GateKind.JOIN_WINDOW: "Join button opens",
    GateKind.REMINDER: "Reminder sent",
    GateKind.REVOKE: "Access revoked",
}
_LINK_WORDS = {GateKind.GRANT: "Access opens to coach and students",
               GateKind.REVOKE: "Access closes"}
# The Discord calls that carry out each gate, by method (the first successful one at or
# after the gate's time is when it was done).
_GATE_CALLS = {GateKind.PROVISION: ("POST",), GateKind.GRANT: ("POST", "PUT", "PATCH"),
               GateKind.REVOKE: ("DELETE", "PATCH")}


@dataclass(frozen=True)
class GateStep:
    kind: str
    label: str
    planned_at: datetime
    state: str  # done | due | upcoming | skipped
    done_at: datetime | None = None
    note: str = ""


@dataclass(frozen=True)
class GateTimeline:
    steps: list[GateStep]
    phase: str  # the access that exists now, in words
    last_run_at: datetime | None
    problem: str = ""  # why access is not working, in words, when it is not


_PHASE_WORDS = {Phase.NONE: "nothing made yet", Phase.PROVISIONED: "channel made, hidden",
                Phase.GRANTED: "open to the participants", Phase.REVOKED: "closed for good"}
_LINK_PHASE_WORDS = {**_PHASE_WORDS, Phase.NONE: "not open yet", Phase.PROVISIONED: "not open yet"}


def gate_timeline(session: Session, *, now: datetime, calls_limit: int = 200) -> GateTimeline:
    """Each gate of the session: when it is planned (from the policy the session was booked
    under) and whether and when it was done, read from the session's access row and the
    Discord calls its runs made (two bounded queries). Raises AccessUnavailable when the
    session's access policy cannot be read."""
    gates = readable_gates(session)
    row = SessionAccess.objects.filter(pk=session.pk).first()
    live = session.status in LIVE
    reached = rules.PHASE_ORDER[Phase(row.phase)] if row is not None else 0
    # When access ended: its revoke gate, or (cancelled) when the session last changed.
    ended = rules.gate_at(gates, GateKind.REVOKE) if live else session.updated_at
    calls: list[DiscordCall] = []
    if row is not None and row.discord:
        calls = list(DiscordCall.objects.filter(access=row, status__lt=300)
                     .order_by("at", "pk")[:calls_limit])
    steps: list[GateStep] = []
    discord_delivery = row.discord if row is not None else (
        session.offer.delivery == Delivery.DISCORD_VOICE)
    for g in gates:
        if not discord_delivery and g.kind == GateKind.PROVISION:
            continue  # no channel to make: access opens with the grant
        label = _GATE_WORDS[g.kind] if discord_delivery else _LINK_WORDS.get(
            g.kind, _GATE_WORDS[g.kind])
        if g.kind == GateKind.REMINDER:
            label = f"Reminder {_before_words(g.before_s)} before"
        state, done_at, note = "upcoming", None, ""
        if g.kind == GateKind.JOIN_WINDOW:
            # Read when a page asks: nothing runs, it is open from its time.
            if not live and now < g.at:
                state = "skipped"
            elif now >= g.at:
                state, done_at = "done", g.at
        elif g.kind == GateKind.REMINDER:
            sent = row.reminder_sent_before_s if row is not None else None
            if sent is not None and sent == g.before_s:
                state = "done"
            elif g.at < session.created_at or (sent is not None and g.before_s > sent):
                state, note = "skipped", "its time had passed"
            elif not live:
                state = "skipped"
            elif now >= session.starts_at:  # a reminder never goes out after the start
                state, note = "skipped", "the session had started"
            elif now >= g.at:
                state = "due"
        else:
            phase = _GATE_PHASE[g.kind]
            done_at = next((c.at for c in calls if c.at >= g.at
                            and c.method in _GATE_CALLS[g.kind]), None)
            if g.kind == GateKind.REVOKE:
                reached_it = reached >= rules.PHASE_ORDER[phase]
            elif reached == rules.PHASE_ORDER[Phase.REVOKED]:  # over: was it reached before?
                reached_it = done_at is not None if calls else g.at < ended <= now
            else:
                reached_it = reached >= rules.PHASE_ORDER[phase] and now >= g.at
            if reached_it:
                state = "done"
            elif not live and g.kind != GateKind.REVOKE:
                state = "skipped"
            elif now >= g.at or (not live and g.kind == GateKind.REVOKE):
                state = "due"
        steps.append(GateStep(g.kind.value, label, g.at, state, done_at, note))
    problem = ""
    if row is not None and row.error_kind:
        problem = ("Retrying: the last run could not reach Discord." if row.error_kind == "retry"
                   else "Someone must act: the platform's admins have been told.")
    words = _PHASE_WORDS if discord_delivery else _LINK_PHASE_WORDS
    return GateTimeline(steps, words[Phase(row.phase)] if row else words[Phase.NONE],
                        row.last_run_at if row else None, problem)


def _before_words(seconds: int) -> str:
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return f"{hours} hour{'s' if hours != 1 else ''}"
    minutes = seconds // 60
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


# --- the admin console's failures inbox ---------------------------------------------------

NEEDS_ACTION = (ErrorKind.ACTION, ErrorKind.DATA)

# Discord's error codes an admin is likely to meet, in words, with what to do.
_CAUSES: dict[str, str] = {
    "(code 50013)": "The bot lacks a Discord permission it needs (Missing Permissions): give "
                    "the bot's role Manage Channels and Manage Roles in the guild, then retry.",
    "(code 50001)": "The bot cannot see a channel or category it must manage (Missing "
                    "Access): check the category's permissions for the bot, then retry.",
    "(code 10004)": "Discord does not know the guild: check the guild id in the platform's "
                    "Discord settings, and that the bot was added to that guild.",
    "-> 401": "Discord refused the bot token: it is wrong or was reset; set the new token.",
    "NotConfigured": "Discord is not configured: set the guild id and the bot token.",
}


def explain_access_error(row: SessionAccess) -> str:
    """The row's last error in words, with what to do about it."""
    if row.error_kind == ErrorKind.DATA:
        return ("The session's stored access policy cannot be used (or a bug): "
                f"{row.last_error}. Fix the offer's policy, then retry.")
    for marker, words in _CAUSES.items():
        if marker in row.last_error:
            return words
    return f"Discord answered: {row.last_error}"


def access_needing_action(*, limit: int = 50) -> list[SessionAccess]:
    """Access rows whose last run needs a person (newest first, at most ``limit``)."""
    return list(SessionAccess.objects.filter(error_kind__in=NEEDS_ACTION)
                .select_related("session__offer", "session__coach")
                .order_by("-updated_at")[:limit])


def retry_access(actor: User, session_id: int, *, now: datetime | None = None) -> RunResult:
    """An admin's retry of a session's access (after fixing the bot's permissions, the
    policy or the configuration): run its gates now, as the worker would."""
    from coachgate.kit.errors import Forbidden, NotFound

    if not actor.is_admin:
        raise Forbidden("Only an admin can retry a session's access.")
    if not SessionAccess.objects.filter(pk=session_id).exists():
        raise NotFound("No such session access.")
    log.info("admin %s retries the access of session %s", actor.pk, session_id)
    return converge(session_id, now=now or clock.now())

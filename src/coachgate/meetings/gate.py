"""The meeting of a video session follows it: created once it is booked, moved with it,
deleted when it is cancelled. A gate of the worker like access: level-triggered (each run
compares the session with what the provider was last told, ``rules.wanted``), leased,
retried with backoff, its errors on the row where admins see them.

Exactly one meeting per session, crash or no crash: Zoom's meetings are made with the
session's tag in their topic (``coachgate #<id>``), and a run that finds no meeting
recorded looks for a tagged one first and adopts it (a crash between Zoom's answer and our
commit left it there); duplicates it finds are deleted. Google Meet cannot list spaces: a
crash in that window leaves an unused space behind, which Google expires (documented).
Provider calls run outside database transactions.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, cast

from coachgate.integrations.google import client as google
from coachgate.integrations.zoom import client as zoom
from coachgate.kit import clock, due
from coachgate.kit.config import conf
from coachgate.kit.crypto import decrypt, encrypt
from coachgate.kit.errors import VideoConnectionInvalid, VideoProviderBusy
from coachgate.scheduling.lifecycle import LIVE

from . import connections, rules
from .models import ConnectionState, Meeting, MeetingState, Provider, VideoConnection

log = logging.getLogger(__name__)
LEASE = timedelta(seconds=60)
@dataclass(frozen=True)
class Made:
    external_id: str
    join_url: str
    password: str = ""


class Gone(Exception):
    """The provider has no such meeting (any more)."""


class Later(Exception):
    def __init__(self, message: str, retry_at: datetime | None) -> None:
        super().__init__(message)
        self.retry_at = retry_at


class Rejected(Exception):
    """The provider refused the access token before its expiry: refresh, then retry."""


class MustAct(Exception):
    """Retrying cannot help: an admin or the coach must act (the message says what)."""


class MeetingApi(Protocol):
    def find(self, tag: str) -> list[Made]: ...
    def create(self, *, topic: str, start: datetime, minutes: int, zone: str) -> Made: ...
    def update(self, external_id: str, *, start: datetime, minutes: int) -> None: ...
    def delete(self, external_id: str) -> None: ...
    def start_url(self, external_id: str) -> str | None: ...
    def close(self) -> None: ...


def tag(session_id: int) -> str:
    return f"coachgate #{session_id}"


# --- providers ---------------------------------------------------------------------------


@contextmanager
def _sorted(errors: Any) -> Iterator[None]:
    """A provider client's errors as the gate's: ``errors`` names the client's not found,
    retry later, invalid grant, token rejected and action required classes, in that order."""
    not_found, retry_later, invalid_grant, rejected, action = errors
    try:
        yield
    except not_found as exc:
        raise Gone(str(exc)) from exc
    except retry_later as exc:
        raise Later(str(exc), exc.retry_at) from exc
    except invalid_grant as exc:
        raise VideoConnectionInvalid() from exc
    except rejected as exc:
        raise Rejected(str(exc)) from exc
    except action as exc:
        raise MustAct(str(exc)) from exc


_ZOOM_ERRORS = (zoom.ZoomNotFound, zoom.RetryLater, zoom.InvalidGrant, zoom.TokenRejected,
                zoom.ActionRequired)
_GOOGLE_ERRORS = (google.GoogleNotFound, google.RetryLater, google.InvalidGrant,
                  google.Unauthenticated, google.ActionRequired)


class ZoomApi:
    def __init__(self, token: str) -> None:
        self.client = zoom.ZoomClient(token, api_base=conf().ZOOM_API_URL)

    def close(self) -> None:
        self.client.close()

    def _sorted(self) -> Any:
        return _sorted(_ZOOM_ERRORS)

    def find(self, tag: str) -> list[Made]:
        with self._sorted():
            rows = self.client.list_meetings(kind="upcoming")
        return [Made(str(m["id"]), str(m.get("join_url", ""))) for m in rows
                if str(m.get("topic", "")).endswith(tag)]

    def create(self, *, topic: str, start: datetime, minutes: int, zone: str) -> Made:
        password = zoom.new_password()
        with self._sorted():
            m = self.client.create_meeting(topic=topic, start_time=start,
                                           duration_minutes=minutes, timezone=zone,
                                           password=password, waiting_room=False,
                                           join_before_host=True)
        return Made(str(m["id"]), str(m["join_url"]), str(m.get("password", password)))

    def update(self, external_id: str, *, start: datetime, minutes: int) -> None:
        with self._sorted():
            self.client.update_meeting(external_id, start_time=start, duration=minutes)

    def delete(self, external_id: str) -> None:
        with self._sorted():
            self.client.delete_meeting(external_id)

    def start_url(self, external_id: str) -> str:
        """The host's link, fetched fresh (Zoom's start_url expires after 2 hours)."""
        with self._sorted():
            return str(self.client.get_meeting(external_id)["start_url"])


class MeetApi:
    def __init__(self, token: str) -> None:
        self.client = google.MeetClient(token, api_base=conf().GOOGLE_MEET_API_URL)

    def close(self) -> None:
        self.client.close()

    def _sorted(self) -> Any:
        return _sorted(_GOOGLE_ERRORS)

    def find(self, tag: str) -> list[Made]:
        return []  # Meet has no list of spaces (see the module's docstring)

    def create(self, *, topic: str, start: datetime, minutes: int, zone: str) -> Made:
        with self._sorted():
            space = self.client.create_space({"accessType": "TRUSTED"})
        return Made(str(space["name"]), str(space["meetingUri"]))

    def update(self, external_id: str, *, start: datetime, minutes: int) -> None:
        with self._sorted():  # a space has no time: a moved session keeps its space
            self.client.get_space(external_id)

    def delete(self, external_id: str) -> None:
        with self._sorted():
            self.client.close_space(external_id)

    def start_url(self, external_id: str) -> str | None:
        return None  # the host joins by the space's link


def api_for(conn: VideoConnection, *, now: datetime) -> MeetingApi:
    """The provider's API as the connection's user (its token refreshed first if needed);
    the caller closes it."""
    token = connections.access_token(conn.pk, connections.refresher(conn.provider), now=now)
    if conn.provider == Provider.ZOOM:
        return ZoomApi(token)
    if conn.provider == Provider.GOOGLE_MEET:
        return MeetApi(token)
    raise ValueError(f"{conn.provider} meetings are not made through an API")


# --- rows ----------------------------------------------------------------------------------

#: The deliveries (a provider's value is its delivery's) whose sessions get a provider
#: meeting. Jitsi needs none: its room is derived from the session
#: (meetings.services.jitsi_room_name).
API_PROVIDERS = frozenset({Provider.ZOOM, Provider.GOOGLE_MEET})


def create_row(session: Any, *, now: datetime) -> Meeting | None:
    """The meeting row of a newly booked video session (in the booking's transaction: a
    new session has none yet), due at once; its first run finds the coach's connection.
    None for deliveries without a provider meeting."""
    if session.offer.delivery not in API_PROVIDERS:
        return None
    return Meeting.objects.create(session=session, provider=session.offer.delivery,
                                  created_at=now, next_due_at=now)


def mark_due(session_id: int, *, now: datetime) -> bool:
    """The session changed (moved, cancelled): its meeting, if it has one, is due now."""
    return bool(Meeting.objects.filter(pk=session_id).update(next_due_at=now, attempts=0))


# --- a run ---------------------------------------------------------------------------------


def converge(session_id: int, *, now: datetime | None = None, owner: str = "",
             claimed: bool = False) -> str:
    """Bring one session's provider meeting to what the session needs. Returns what was
    done: created, adopted, updated, deleted, unchanged, busy, or waiting (retry later)."""
    now = now or clock.now()
    owner = owner or due.worker_identity()
    if not claimed and not due.claim_one(Meeting, session_id, now=now, owner=owner,
                                         lease=LEASE):
        return "busy"
    meeting = (Meeting.objects.select_related("session__offer", "session__coach",
                                              "connection").get(pk=session_id))
    session = meeting.session
    conn = meeting.connection or VideoConnection.objects.filter(
        coach_id=session.coach_id, provider=meeting.provider).first()
    exists = bool(meeting.external_id) and meeting.state == MeetingState.LIVE
    want = rules.wanted(live=session.status in LIVE and session.ends_at > now, exists=exists,
                        starts_at=session.starts_at,
                        duration_minutes=int((session.ends_at - session.starts_at)
                                             .total_seconds() // 60),
                        synced_start=meeting.synced_start,
                        synced_minutes=meeting.synced_minutes)
    if want.action == "none":
        if meeting.state == MeetingState.PENDING and session.status not in LIVE:
            due.release(Meeting, session_id, owner=owner, state=MeetingState.DELETED,
                        next_due_at=None)
            return "deleted"
        due.release(Meeting, session_id, owner=owner, next_due_at=None, attempts=0,
                    last_error="")
        return "unchanged"
    try:
        if conn is None or conn.state != ConnectionState.ACTIVE:
            raise VideoConnectionInvalid("The coach has no working connection to "
                                         f"{meeting.get_provider_display()}.")
        api = api_for(conn, now=now)
        try:
            return _carry_out(meeting, session, api, want, conn, owner=owner, now=now)
        finally:
            api.close()
    except Later as exc:
        return _later(meeting, owner, now, str(exc), exc.retry_at)
    except Rejected as exc:  # the next run refreshes the token first
        if conn is not None:
            VideoConnection.objects.filter(pk=conn.pk, version=conn.version).update(
                token_expires_at=now - timedelta(seconds=1))
        return _later(meeting, owner, now, str(exc), now)
    except VideoProviderBusy as exc:
        return _later(meeting, owner, now, exc.message, None)
    except (MustAct, VideoConnectionInvalid) as exc:
        message = getattr(exc, "message", str(exc))
        attempts = meeting.attempts + 1
        due.release(Meeting, session_id, owner=owner, attempts=attempts,
                    last_error=f"Action required: {message}"[:2000],
                    next_due_at=now + due.backoff(attempts))
        log.warning("meeting of session %s: %s", session_id, message)
        return "action_required"


def _later(meeting: Meeting, owner: str, now: datetime, why: str,
           at: datetime | None) -> str:
    attempts = meeting.attempts + 1
    retry = max(at, now) if at is not None else now + due.backoff(attempts)
    due.release(Meeting, meeting.pk, owner=owner, attempts=attempts,
                last_error=f"Retrying at {retry.astimezone(UTC):%Y-%m-%d %H:%M} UTC: "
                           f"{why}"[:2000], next_due_at=retry)
    return "waiting"


def _carry_out(meeting: Meeting, session: Any, api: MeetingApi, want: rules.Wanted,
               conn: VideoConnection, *, owner: str, now: datetime) -> str:
    if want.action == "delete":
        with suppress(Gone):  # deleted already: done
            api.delete(meeting.external_id)
        due.release(Meeting, meeting.pk, owner=owner, state=MeetingState.DELETED,
                    next_due_at=None, attempts=0, last_error="")
        return "deleted"
    start, minutes = cast(datetime, want.start), cast(int, want.minutes)  # create or update
    if want.action == "update":
        try:
            api.update(meeting.external_id, start=start, minutes=minutes)
        except Gone:  # deleted at the provider: make it again (below)
            pass
        else:
            due.release(Meeting, meeting.pk, owner=owner, synced_start=start,
                        synced_minutes=minutes, next_due_at=None, attempts=0, last_error="")
            return "updated"
    found = api.find(tag(session.pk))
    done = "adopted" if found else "created"
    made = found[0] if found else api.create(
        topic=f"{session.offer.title[:150]} · {tag(session.pk)}", start=start,
        minutes=minutes, zone=session.coach.timezone)
    for extra in found[1:]:  # duplicates from earlier crashes: one meeting per session
        with suppress(Gone):
            api.delete(extra.external_id)
    # An adopted meeting's time is not known: due again, so one update makes sure of it.
    due.release(Meeting, meeting.pk, owner=owner, state=MeetingState.LIVE,
                connection=conn, external_id=made.external_id,
                join_url=encrypt(made.join_url), password=encrypt(made.password),
                synced_start=None if found else start,
                synced_minutes=None if found else minutes,
                next_due_at=now if found else None, attempts=0, last_error="")
    return done


def join_url(meeting: Meeting) -> str:
    return decrypt(meeting.join_url)


def host_url(meeting: Meeting, *, now: datetime) -> str:
    """Where the coach joins: Zoom's start_url fetched fresh (it expires), else the link."""
    if meeting.connection is not None and meeting.provider == Provider.ZOOM:
        api = api_for(meeting.connection, now=now)
        try:
            fresh = api.start_url(meeting.external_id)
        except (Later, MustAct, Gone, Rejected):
            log.warning("no fresh start_url for session %s", meeting.pk)
            fresh = None
        finally:
            api.close()
        if fresh:
            return fresh
    return join_url(meeting)


def run_due(*, now: datetime | None = None, owner: str = "") -> int:
    """Every meeting that is due, in batches, each on its own."""
    now = now or clock.now()
    owner = owner or due.worker_identity()
    from .tasks import run_due as task

    ran, _failed = due.drain(Meeting, lambda pk: bool(converge(pk, now=now, owner=owner,
                                                               claimed=True)),
                             now=now, owner=owner, lease=LEASE, batch=20, wake_task=task)
    return ran

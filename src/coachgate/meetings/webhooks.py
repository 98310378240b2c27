"""Zoom's webhooks: verified, stored first, answered at once, processed by a task.

``POST /api/v1/meetings/webhooks/zoom`` checks ``x-zm-signature`` (``v0=`` + hex HMAC-SHA256
with the app's secret token over ``v0:{x-zm-request-timestamp}:{raw body}``, compared in
constant time) and refuses a timestamp more than 5 minutes from our clock (a captured
delivery cannot be replayed later). ``endpoint.url_validation`` is answered at once. Zoom
sends no event id: an event is stored once under its natural key (event, meeting
instance, participant, the event's own time), so a repeated delivery is one row, and the
task that processes it makes the meeting's evidence from every stored event of that
meeting, so events arriving out of order or twice give the same evidence.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.db import transaction

from coachgate.billing import services as billing
from coachgate.integrations.zoom import webhooks as zoom_webhooks
from coachgate.kit import clock, enqueue
from coachgate.kit.config import conf
from coachgate.kit.errors import CoachgateError, InvalidInput, InvalidWebhookSignature
from coachgate.kit.rows import insert as insert_rows
from coachgate.scheduling.models import BookingStatus

from . import connections, rules
from .models import Meeting, Participation, Provider, ProviderEvent, VideoConnection

log = logging.getLogger(__name__)
MEETING_EVENTS = ("meeting.started", "meeting.ended", "meeting.participant_joined",
                  "meeting.participant_left")


class ZoomSignatureInvalid(InvalidWebhookSignature):
    status = 401
    default_message = ("The Zoom signature or its timestamp could not be verified (check the "
                       "app's secret token and this server's clock).")


def receive_zoom(body: bytes, headers: Mapping[str, str], *,
                 now: datetime | None = None) -> dict[str, Any]:
    """One delivery: its answer (the URL validation's, or received/duplicate)."""
    now = now or clock.now()
    secret = conf().ZOOM_WEBHOOK_SECRET
    if not secret or not zoom_webhooks.verify_headers(secret, headers, body, now=now):
        raise ZoomSignatureInvalid()
    try:
        event = json.loads(body)
    except ValueError:
        raise InvalidInput("The body is not JSON.") from None
    if not isinstance(event, dict) or not isinstance(event.get("event"), str):
        raise InvalidInput("A Zoom event has an 'event' name.")
    raw_payload = event.get("payload")
    payload: dict[str, Any] = raw_payload if isinstance(raw_payload, dict) else {}
    if event["event"] == zoom_webhooks.URL_VALIDATION:
        plain = payload.get("plainToken")
        if not isinstance(plain, str) or not 1 <= len(plain) <= 256:
            raise InvalidInput("endpoint.url_validation carries a plainToken.")
        return zoom_webhooks.url_validation_answer(secret, plain)
    key = zoom_webhooks.natural_key(event)
    if key is None:
        return {"received": True, "ignored": True}
    if len(key) > 255:
        key = "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    with transaction.atomic(), enqueue.batch():
        row = ProviderEvent(provider=Provider.ZOOM, natural_key=key, event=event["event"][:64],
                            payload=event, received_at=now)
        created = insert_rows(row, skip_conflicts=True)
        if created:
            from .tasks import process_event

            enqueue.enqueue(process_event, row.pk)
    return {"received": True, "duplicate": not created}


def _obj(event: Mapping[str, Any]) -> dict[str, Any]:
    payload = event.get("payload")
    obj = payload.get("object") if isinstance(payload, dict) else None
    return obj if isinstance(obj, dict) else {}


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return at if at.tzinfo is not None else None


def process_event(pk: int, *, now: datetime | None = None) -> str:
    """Act on one stored Zoom event once; returns (and records) what came of it."""
    now = now or clock.now()
    ev = ProviderEvent.objects.filter(pk=pk).first()
    if ev is None or ev.processed_at is not None:
        return ev.status if ev is not None else "missing"
    try:
        status = _process(ev, now)
    except CoachgateError as exc:  # settlement refused (settled, out of the window)
        status = f"refused: {exc.code}"
    ProviderEvent.objects.filter(pk=pk).update(processed_at=now, status=status[:32])
    return status


def _process(ev: ProviderEvent, now: datetime) -> str:
    payload = ev.payload.get("payload") if isinstance(ev.payload, dict) else None
    if ev.event == "app_deauthorized" and isinstance(payload, dict):
        user_id = str(payload.get("user_id") or "")
        marked = 0
        for conn in VideoConnection.objects.filter(provider=Provider.ZOOM, account_id=user_id):
            marked += connections.mark_invalid(
                conn.pk, "The coach removed coachgate's Zoom app (app_deauthorized).",
                now=now)
        return "connection_invalidated" if marked else "no_connection"
    if ev.event not in MEETING_EVENTS:
        return "ignored"
    obj = _obj(ev.payload)
    meeting = (Meeting.objects.select_related("session__coach__user", "connection")
               .filter(provider=Provider.ZOOM, external_id=str(obj.get("id", ""))).first())
    if meeting is None:
        return "unknown_meeting"
    session = meeting.session
    if ev.event in ("meeting.participant_joined", "meeting.participant_left"):
        return _participant(ev, meeting, obj, now)
    instances = _instances(meeting)
    basic = meeting.connection is not None and meeting.connection.plan == "basic"
    found = rules.evidence(instances, basic_host=basic, ends_at=session.ends_at, now=now)
    if found.started_at is None:
        return "waiting_for_start"
    # Settlement's evidence keeps the earliest start and the latest end, and a start after
    # an end (a restart) reopens it: tell it the first start, then the latest.
    latest = max(instances, key=lambda i: i.started_at)
    for at in sorted({found.started_at, latest.started_at}):
        billing.record_meeting_event(None, session.pk, kind="started", at=at, now=now)
    if found.ended_at is not None:
        billing.record_meeting_event(None, session.pk, kind="ended", at=found.ended_at,
                                     now=now)
    return "cut_by_plan" if found.cut_by_plan else "evidence"


def _instances(meeting: Meeting) -> list[rules.Instance]:
    """Every instance of the meeting from its stored started/ended events (in any order)."""
    starts: dict[str, datetime] = {}
    ends: dict[str, datetime] = {}
    for ev in ProviderEvent.objects.filter(
            provider=Provider.ZOOM, event__in=("meeting.started", "meeting.ended"),
            payload__payload__object__id=meeting.external_id):
        obj = _obj(ev.payload)
        uuid = str(obj.get("uuid", ""))
        start, end = _time(obj.get("start_time")), _time(obj.get("end_time"))
        if start is not None:
            starts[uuid] = min(starts.get(uuid, start), start)
        if ev.event == "meeting.ended" and end is not None:
            ends[uuid] = max(ends.get(uuid, end), end)
    return [rules.Instance(uuid, start, ends.get(uuid)) for uuid, start in starts.items()]


def _participant(ev: ProviderEvent, meeting: Meeting, obj: dict[str, Any],
                 now: datetime) -> str:
    raw_person = obj.get("participant")
    person: dict[str, Any] = raw_person if isinstance(raw_person, dict) else {}
    who = str(person.get("participant_uuid") or person.get("user_id")
              or person.get("email") or "")
    joined = _time(person.get("join_time"))
    if not who or joined is None:
        return "incomplete"
    session = meeting.session
    email = str(person.get("email") or "").lower()
    coach_user = session.coach.user
    host_id = meeting.connection.account_id if meeting.connection is not None else ""
    students = {s.email.lower(): s.pk for s in [
        b.student for b in session.bookings.select_related("student")
        .filter(status=BookingStatus.ACTIVE)]}
    user_id: int | None = None
    if (host_id and str(person.get("id") or "") == host_id) or email == coach_user.email.lower():
        role, user_id = "host", coach_user.pk
    elif email and email in students:
        role, user_id = "student", students[email]
    else:
        role = "other"  # someone other than the host: the student, most likely
    instance = str(obj.get("uuid", ""))
    row, _ = Participation.objects.get_or_create(
        meeting=meeting, instance=instance, participant=who[:255], joined_at=joined,
        defaults={"role": role})
    if ev.event == "meeting.participant_left":
        left = _time(person.get("leave_time"))
        if left is not None and (row.left_at is None or left > row.left_at):
            Participation.objects.filter(pk=row.pk).update(left_at=left)
        return "left"
    if user_id is not None:
        billing.record_meeting_event(None, session.pk, kind="joined", at=joined,
                                     user_id=user_id, now=now)
    return f"joined_{role}"

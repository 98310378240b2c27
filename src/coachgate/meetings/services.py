"""Meeting use cases: where a participant joins, and when.

Every delivery is joined through coachgate's own URL, ``/sessions/{id}/join``: it checks who
is asking and the session's join window (from ``join_window_before_s`` before the start
until access closes, the offer's access policy) and only then sends them on to the
provider. Before the window it shows a countdown; after it, that the session is over. So
the provider's raw link is never in an email or a DM, and a forwarded coachgate link is
worth nothing to anyone else.

Jitsi needs no account and no call: a session's room name is derived from the session and
the server's secret key (HMAC-SHA256), so it is unguessable, the same in every process, and
nothing has to be stored or created for it. With an app id and secret (JWT-secured
servers), the link carries a token whose ``nbf``/``exp`` are the window, so the Jitsi
server refuses it outside the window too.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote, urlsplit

import jwt
from django.conf import settings

from coachgate.access import services as access
from coachgate.accounts.models import User
from coachgate.catalog.models import Delivery
from coachgate.kit import clock
from coachgate.kit.config import conf
from coachgate.kit.crypto import decrypt
from coachgate.kit.errors import NotFound
from coachgate.scheduling import services as scheduling
from coachgate.scheduling.lifecycle import LIVE
from coachgate.scheduling.models import BookingStatus, Session

from . import gate, rules
from .models import ConnectionState, Meeting, MeetingState, Provider, VideoConnection
from .rules import JoinState, JoinWindow


@dataclass(frozen=True)
class Join:
    """What ``/sessions/{id}/join`` does for this person now: send them to ``url`` (state
    OPEN and a url), or show a page (a countdown, "over", "cancelled", or a message such as
    "the coach will call you")."""

    session: Session
    state: JoinState
    window: JoinWindow
    url: str | None
    delivery: str
    message: str = ""

    def opens_in(self, now: datetime) -> timedelta:
        return self.window.opens_in(now)


def join(actor: User, session_id: int, *, now: datetime | None = None) -> Join:
    """Where ``actor`` joins session ``session_id`` now. Only its coach, a student with an
    active booking and admins may ask; anyone else gets 404 (the session stays hidden)."""
    now = now or clock.now()
    session = scheduling.get_session(actor, session_id)
    is_coach = session.coach.user_id == actor.pk
    booked = session.bookings.filter(student=actor, status=BookingStatus.ACTIVE).exists()
    if not (is_coach or booked or actor.is_admin):
        raise NotFound("No such session.")
    window = rules.window_of(access.readable_gates(session))
    state = window.state(live=session.status in LIVE, now=now)
    delivery = session.offer.delivery
    if state != JoinState.OPEN:
        return Join(session, state, window, None, delivery)
    url, message = _provider_link(session, actor, window, moderator=is_coach, now=now)
    return Join(session, state, window, url, delivery, message)


def _provider_link(session: Session, actor: User, window: JoinWindow, *,
                   moderator: bool, now: datetime) -> tuple[str | None, str]:
    delivery = session.offer.delivery
    if delivery == Delivery.DISCORD_VOICE:
        row = access.access_row(session)
        url = access.discord_channel_url(row) if row is not None else None
        if url is None:
            return None, "The private Discord channel is being prepared: try again shortly."
        return url, ""
    if delivery == Delivery.JITSI:
        return jitsi_link(session, actor, window, moderator=moderator), ""
    if delivery == Delivery.PHONE:
        return None, "This session is by phone: the coach calls you at the agreed time."
    meeting = Meeting.objects.select_related("connection").filter(pk=session.pk).first()
    if meeting is None or meeting.state != MeetingState.LIVE:
        return None, "The video meeting is being prepared: try again shortly."
    if moderator:
        return gate.host_url(meeting, now=now), ""
    return gate.join_url(meeting), ""


def jitsi_room_name(session_id: int) -> str:
    digest = hmac.new(settings.SECRET_KEY.encode(), f"jitsi-room:{session_id}".encode(),
                      hashlib.sha256).digest()
    return rules.jitsi_room(session_id, base64.b32encode(digest[:15]).decode().lower())


def jitsi_link(session: Session, actor: User, window: JoinWindow, *,
               moderator: bool) -> str:
    """The session's Jitsi room on the coach's server (or the platform's), with a room
    token valid only in the window when the coach's server takes JWTs."""
    conn = VideoConnection.objects.filter(coach_id=session.coach_id, provider=Provider.JITSI,
                                          state=ConnectionState.ACTIVE).first()
    base = conn.base_url if conn is not None else conf().JITSI_URL
    room = jitsi_room_name(session.pk)
    url = f"{base}/{quote(room)}"
    if conn is not None and conn.app_id:
        claims = rules.jitsi_claims(
            app_id=conn.app_id, server_host=urlsplit(base).hostname or "", room=room,
            window=window, name=actor.display_name or actor.email.split("@")[0],
            email=actor.email, moderator=moderator)
        token = jwt.encode(claims, decrypt(conn.app_secret), algorithm="HS256")
        url += f"?jwt={token}"
    return url

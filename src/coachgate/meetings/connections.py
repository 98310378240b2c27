"""Coaches' video connections: Jitsi servers, and the OAuth grants of Zoom and Google.

The one rule that matters most here is **refresh under concurrency**. Zoom rotates its
refresh token on every refresh (the old one then answers ``invalid_grant``), so two workers
that refresh one connection at once, each with the token it read, would kill it: the slower
one's refresh fails and, read naively, marks the connection dead. Here only one worker at a
time may refresh a connection: it takes a short lease on the row by compare-and-swap on
``version`` (no database lock is held while the provider is called). The others wait for
the version to move and use the tokens the winner stored. A refresh that answers
``invalid_grant`` re-reads the row before it marks anything: if the version moved meanwhile
(a sibling whose lease had run out stored new tokens), those are used.
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit

from django.db import transaction
from django.db.models import F, Q

from coachgate.accounts.models import User
from coachgate.catalog.models import Offer, OfferStatus
from coachgate.catalog.services import coach_profile_of
from coachgate.integrations.google import client as google
from coachgate.integrations.zoom import client as zoom
from coachgate.kit import clock
from coachgate.kit.config import conf
from coachgate.kit.crypto import decrypt, encrypt
from coachgate.kit.errors import (
    InvalidInput,
    NotFound,
    VideoConnectionInUse,
    VideoConnectionInvalid,
    VideoProviderBusy,
)
from coachgate.scheduling.lifecycle import SessionStatus
from coachgate.scheduling.models import Session

from .models import ConnectionState, Provider, VideoConnection

#: A refresh lease: long enough for one token call (the clients time out after ~10 s).
REFRESH_LEASE = timedelta(seconds=30)
#: How long a worker waits for a sibling's refresh before it gives up for now.
REFRESH_WAIT_S = 15.0
#: An access token this close to its expiry is refreshed first.
EXPIRY_MARGIN = timedelta(seconds=60)

_APP_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")


class TokenSet(Protocol):
    """What a provider client's refresh answers (zoom and google clients both)."""

    @property
    def access_token(self) -> str: ...
    @property
    def refresh_token(self) -> str | None: ...
    @property
    def expires_at(self) -> datetime: ...


class InvalidGrantError(Exception):
    """Raised by a ``refresh`` callable when the provider answered ``invalid_grant``."""


Refresh = Callable[[str], TokenSet]


# --- Jitsi -------------------------------------------------------------------------------


def _jitsi_base_url(raw: str) -> str:
    url = raw.strip().rstrip("/")
    problem = None
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        parts, host = None, ""
    if parts is None or not host:
        problem = "Enter the Jitsi server's address, for example https://meet.example.org."
    elif len(url) > 255:
        problem = "The address is at most 255 characters."
    elif parts.username is not None or parts.password is not None:
        problem = "The address may not contain a user name or password."
    elif parts.query or parts.fragment:
        problem = "The address may not have a query (?) or fragment (#)."
    elif parts.scheme != "https" and not (parts.scheme == "http" and _is_loopback(host)):
        problem = "The address must start with https:// (http:// only for this machine)."
    elif any(c.isspace() for c in url):
        problem = "The address may not contain spaces."
    if problem:
        raise InvalidInput(problem, details={"field": "base_url"})
    return url


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def connect_jitsi(actor: User, *, base_url: str, app_id: str = "", app_secret: str = "",
                  now: datetime | None = None) -> VideoConnection:
    """Connect (or change) the coach's Jitsi server. With an app id and secret, rooms get
    JWTs valid only in each session's join window (the server enforces it too). Jitsi has
    no account to call, so nothing is fetched from ``base_url``: students are only sent
    there, in the window."""
    now = now or clock.now()
    coach = coach_profile_of(actor)
    url = _jitsi_base_url(base_url)
    app_id = app_id.strip()
    if bool(app_id) != bool(app_secret):
        raise InvalidInput("Give both the app id and the secret, or neither.",
                           details={"field": "app_id" if not app_id else "app_secret"})
    if app_id and not _APP_ID.fullmatch(app_id):
        raise InvalidInput("The app id is 1–128 letters, digits, dots, dashes or underscores.",
                           details={"field": "app_id"})
    if app_secret and not 16 <= len(app_secret) <= 512:
        raise InvalidInput("The secret is 16 to 512 characters.",
                           details={"field": "app_secret"})
    with transaction.atomic():
        conn, _ = VideoConnection.objects.update_or_create(
            coach=coach, provider=Provider.JITSI,
            defaults={"base_url": url, "app_id": app_id, "app_secret": encrypt(app_secret),
                      "state": ConnectionState.ACTIVE, "connected_at": now, "checked_at": now,
                      "invalid_since": None, "last_error": ""})
    return conn


# --- OAuth grants (Zoom, Google) ----------------------------------------------------------


def store_grant(coach_id: int, provider: str, *, tokens: TokenSet, scopes: frozenset[str],
                needed: frozenset[str], account_id: str, account_email: str, plan: str = "",
                now: datetime) -> VideoConnection:
    """A finished OAuth connection (or reconnection): its tokens, what was granted and what
    coachgate needs but was not granted (shown to the coach at once)."""
    with transaction.atomic():
        conn, _ = VideoConnection.objects.update_or_create(
            coach_id=coach_id, provider=provider,
            defaults={"access_token": encrypt(tokens.access_token),
                      "refresh_token": encrypt(tokens.refresh_token or ""),
                      "token_expires_at": tokens.expires_at,
                      "scopes": " ".join(sorted(scopes)),
                      "missing_scopes": " ".join(sorted(needed - scopes)),
                      "account_id": account_id, "account_email": account_email,
                      "plan": plan, "state": ConnectionState.ACTIVE, "connected_at": now,
                      "checked_at": now, "invalid_since": None, "last_error": "",
                      "refresh_lease_until": None})
        VideoConnection.objects.filter(pk=conn.pk).update(version=F("version") + 1)
    conn.refresh_from_db()
    return conn


def mark_invalid(conn_id: int, reason: str, *, now: datetime,
                 version: int | None = None) -> bool:
    """The connection stopped working: its offers stop taking bookings (with
    ``video_connection_invalid``) until the coach reconnects. With ``version``, only if no
    one stored new tokens since that version was read. Returns whether it was marked."""
    rows = VideoConnection.objects.filter(pk=conn_id)
    if version is not None:
        rows = rows.filter(version=version)
    return bool(rows.exclude(state=ConnectionState.INVALID).update(
        state=ConnectionState.INVALID, invalid_since=now, last_error=reason[:500],
        refresh_lease_until=None))


@dataclass
class Waiting:
    """How a worker waits for a sibling's refresh (tests pass a fast one)."""

    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic
    limit_s: float = REFRESH_WAIT_S
    step_s: float = 0.05


def access_token(conn_id: int, refresh: Refresh, *, now: datetime,
                 waiting: Waiting | None = None) -> str:
    """A working access token of the connection, refreshed first if it is (about to be)
    expired. Safe when several workers ask at once (see the module's docstring). Raises
    VideoConnectionInvalid (the coach must reconnect) or VideoProviderBusy (try later)."""
    waiting = waiting or Waiting()
    deadline = waiting.monotonic() + waiting.limit_s
    while True:
        conn = VideoConnection.objects.filter(pk=conn_id).first()
        if conn is None or conn.state != ConnectionState.ACTIVE:
            raise VideoConnectionInvalid()
        expires = conn.token_expires_at
        if expires is not None and expires - EXPIRY_MARGIN > now:
            return decrypt(conn.access_token)
        free = Q(refresh_lease_until__isnull=True) | Q(refresh_lease_until__lt=now)
        claimed = VideoConnection.objects.filter(free, pk=conn_id, version=conn.version).update(
            refresh_lease_until=now + REFRESH_LEASE)
        if claimed:
            return _refresh(conn, refresh, now=now)
        # Another worker is refreshing (or just did): wait for its tokens.
        if waiting.monotonic() >= deadline:
            raise VideoProviderBusy("Another worker is still refreshing this connection.")
        waiting.sleep(waiting.step_s)


def _refresh(conn: VideoConnection, refresh: Refresh, *, now: datetime) -> str:
    old = decrypt(conn.refresh_token)
    try:
        tokens = refresh(old)  # outside any transaction: a provider call
    except InvalidGrantError:
        current = VideoConnection.objects.filter(pk=conn.pk).first()
        if current is not None and current.version != conn.version:
            if current.state == ConnectionState.ACTIVE:
                return decrypt(current.access_token)  # a sibling rotated it meanwhile
            raise VideoConnectionInvalid() from None
        mark_invalid(conn.pk, "The provider refused the stored grant (invalid_grant): "
                     "the coach must connect again.", now=now, version=conn.version)
        raise VideoConnectionInvalid() from None
    except Exception:
        VideoConnection.objects.filter(pk=conn.pk, version=conn.version).update(
            refresh_lease_until=None)
        raise
    # If nothing is updated, our lease ran out and a sibling stored its refresh first: ours
    # is a valid access token all the same, and the refresh token to keep is the stored one.
    VideoConnection.objects.filter(pk=conn.pk, version=conn.version).update(
        access_token=encrypt(tokens.access_token),
        refresh_token=encrypt(tokens.refresh_token or old),
        token_expires_at=tokens.expires_at, version=F("version") + 1,
        refresh_lease_until=None, checked_at=now, last_error="")
    return tokens.access_token


# --- listing and removing -------------------------------------------------------------------


def connections_of(actor: User) -> list[VideoConnection]:
    coach = coach_profile_of(actor)
    return list(VideoConnection.objects.filter(coach=coach).order_by("provider"))


def uses(coach_id: int, provider: str, *, now: datetime) -> dict[str, int]:
    """What depends on the coach's connection to ``provider``: published offers with its
    delivery (a provider's value is the delivery it serves) and sessions still to come."""
    delivery = Provider(provider).value
    offers = Offer.objects.filter(coach_id=coach_id, delivery=delivery,
                                  status=OfferStatus.PUBLISHED).count()
    sessions = Session.objects.filter(coach_id=coach_id, offer__delivery=delivery,
                                      status=SessionStatus.SCHEDULED,
                                      ends_at__gt=now).count()
    return {"published_offers": offers, "scheduled_sessions": sessions}


def remove_connection(actor: User, provider: str, *, now: datetime | None = None) -> None:
    """Disconnect a provider, unless published offers or scheduled sessions still use it:
    those move to another provider first (a connection is never removed from under a
    session that needs it)."""
    now = now or clock.now()
    coach = coach_profile_of(actor)
    if provider not in Provider.values:
        raise InvalidInput(f"provider is one of {', '.join(Provider.values)}.",
                           details={"field": "provider"})
    with transaction.atomic():
        conn = VideoConnection.objects.select_for_update().filter(
            coach=coach, provider=provider).first()
        if conn is None:
            raise NotFound("That provider is not connected.")
        if provider != Provider.JITSI:  # Jitsi: the platform's server takes over
            used = uses(coach.pk, provider, now=now)
            if any(used.values()):
                raise VideoConnectionInUse(details=used)
        conn.delete()


# --- the OAuth connect flows (the coach's Connections page) and refreshes --------------------

#: Zoom's permission scopes coachgate needs (a missing one is reported when connecting).
ZOOM_NEEDED = frozenset({"meeting:write:meeting", "meeting:update:meeting",
                         "meeting:delete:meeting", "meeting:read:meeting", "user:read:user"})
#: What coachgate asks Google for: who the account is, and Meet spaces it creates.
GOOGLE_SCOPES = frozenset({"openid", "email",
                           "https://www.googleapis.com/auth/meetings.space.created"})


def zoom_oauth() -> zoom.ZoomOAuth:
    cfg = conf()
    return zoom.ZoomOAuth(cfg.ZOOM_CLIENT_ID, cfg.ZOOM_CLIENT_SECRET,
                          oauth_base=cfg.ZOOM_OAUTH_URL)


def google_oauth() -> google.GoogleOAuth:
    cfg = conf()
    return google.GoogleOAuth(cfg.GOOGLE_CLIENT_ID, cfg.GOOGLE_CLIENT_SECRET,
                              auth_base=cfg.GOOGLE_AUTH_URL, token_url=cfg.GOOGLE_TOKEN_URL)


def oauth_configured(provider: str) -> bool:
    cfg = conf()
    if provider == Provider.ZOOM:
        return bool(cfg.ZOOM_CLIENT_ID and cfg.ZOOM_CLIENT_SECRET)
    if provider == Provider.GOOGLE_MEET:
        return bool(cfg.GOOGLE_CLIENT_ID and cfg.GOOGLE_CLIENT_SECRET)
    return False


def authorize_url(provider: str, *, redirect_uri: str, state: str) -> str:
    """Where the coach's browser goes to grant coachgate access."""
    if provider == Provider.ZOOM:
        with zoom_oauth() as z:
            return z.authorize_url(redirect_uri, state)
    with google_oauth() as g:
        return g.authorize_url(redirect_uri, state, tuple(sorted(GOOGLE_SCOPES)))


def refresher(provider: str) -> Refresh:
    """``access_token``'s refresh for a provider: its OAuth refresh, with invalid_grant as
    InvalidGrantError."""
    def refresh(refresh_token: str) -> TokenSet:
        try:
            if provider == Provider.ZOOM:
                with zoom_oauth() as z:
                    return z.refresh(refresh_token, now=clock.now())
            with google_oauth() as g:
                return g.refresh(refresh_token, now=clock.now())
        except (zoom.InvalidGrant, google.InvalidGrant):
            raise InvalidGrantError() from None
    return refresh


def finish_oauth(actor: User, provider: str, *, code: str, redirect_uri: str,
                 now: datetime | None = None) -> VideoConnection:
    """The provider sent the coach back with a code: exchange it (outside any transaction),
    learn whose account it is, store the grant. Raises VideoConnectionInvalid when the
    provider refuses."""
    now = now or clock.now()
    coach = coach_profile_of(actor)
    try:
        if provider == Provider.ZOOM:
            with zoom_oauth() as z:
                tokens: Any = z.exchange_code(code, redirect_uri, now=now)
            with zoom.ZoomClient(tokens.access_token, api_base=conf().ZOOM_API_URL) as api:
                me = api.me()
            plan = "basic" if me.get("type") == 1 else "licensed"
            return store_grant(coach.pk, provider, tokens=tokens, scopes=tokens.scopes,
                               needed=ZOOM_NEEDED, account_id=str(me.get("id", "")),
                               account_email=str(me.get("email", "")), plan=plan, now=now)
        with google_oauth() as g:
            tokens = g.exchange_code(code, redirect_uri, now=now)
            who = g.userinfo(tokens.access_token)
        return store_grant(coach.pk, provider, tokens=tokens, scopes=tokens.scopes,
                           needed=GOOGLE_SCOPES, account_id=str(who.get("sub", "")),
                           account_email=str(who.get("email", "")), now=now)
    except (zoom.ActionRequired, google.ActionRequired) as exc:
        raise VideoConnectionInvalid(f"The provider refused the connection: {exc}") from None
    except (zoom.RetryLater, google.RetryLater):
        raise VideoProviderBusy() from None

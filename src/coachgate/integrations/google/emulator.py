"""A stateful local Google: OAuth 2.0, OpenID Connect userinfo and the Meet REST API v2,
served over HTTP on one port.

    emu = GoogleEmulator().start()            # or: with GoogleEmulator() as emu:
    emu.register_client("cid", "secret")
    sub = emu.create_user("coach@example.com")
    emu.authorize_as(sub)
    oauth = GoogleOAuth("cid", "secret", auth_base=emu.auth_base, token_url=emu.token_url,
                        revoke_url=emu.revoke_url, userinfo_url=emu.userinfo_url)
    meet = MeetClient(tokens.access_token, api_base=emu.api_base)
    ...
    emu.stop()

Run alone with ``python -m coachgate.integrations.google.emulator [--port 8766]``: it
registers a client, creates users, prints ``{"url", "api_base", "client_id", ...}`` as one
JSON line and serves until Ctrl-C (or SIGTERM).

What it does like Google:

* **OAuth** (https://developers.google.com/identity/protocols/oauth2/web-server). The
  consent step ``GET /o/oauth2/v2/auth`` approves at once as the user named by
  ``login_hint`` (an email) or ``authorize_as`` and redirects (302) to the registered
  ``redirect_uri`` with ``state``, ``code`` and ``scope``; an unknown client or redirect URI
  is an error page, not a redirect, as on Google. ``email`` and ``profile`` are granted as
  ``https://www.googleapis.com/auth/userinfo.*``. ``authorize_as(..., withhold=...)`` is a
  user unticking scopes on the consent screen; ``include_granted_scopes=true`` adds the
  app's earlier grants. ``POST /token`` (form body, client credentials in the form or by
  HTTP basic): a code is good once and for 10 minutes; a refresh token is issued only with
  ``access_type=offline``, and, for a user who already gave this app one, only again with
  ``prompt=consent``; a refresh answers no new refresh token (the old one keeps working);
  access tokens (``ya29.``) live 3599 s on the emulator's clock; at most 100 live refresh
  tokens per app and user (the oldest goes). Errors as Google's: 401 ``invalid_client``,
  400 ``invalid_grant`` ("Bad Request" for a used code, "Token has been expired or
  revoked." for a refresh), ``redirect_uri_mismatch``, ``unsupported_grant_type``.
  ``POST /revoke`` revokes the grant behind a refresh or access token (400
  ``invalid_token`` when unknown). ``GET /v1/userinfo``: ``sub``, ``email``,
  ``email_verified`` (and ``name`` with the profile scope); 401 ``invalid_request``
  otherwise; also the older ``GET /oauth2/v2/userinfo`` (``id``, ``verified_email``). With
  the ``openid`` scope a token answer carries an ``id_token`` (iss
  ``https://accounts.google.com``, aud and azp the client id, sub, email, iat, exp), signed
  HS256 with the client secret, not with Google's RS256 keys: a client that verifies
  signatures against Google's certificates rejects it; one that trusts a token it fetched
  itself over TLS (django-allauth's code flow does) accepts it.
* **Meet v2** under ``/v2`` (https://developers.google.com/workspace/meet/api/reference/
  rest/v2): spaces (create, get by name or meeting code, patch with ``updateMask``,
  ``:endActiveConference``), conference records (list with ``filter`` on ``space.name``,
  ``space.meeting_code`` and ``end_time IS NULL``; get), participants and participant
  sessions (list, get), newest first, with ``pageSize``/``pageToken`` (25 records, 100
  participants by default; ``set_page_size`` makes pages smaller). Bodies are checked
  against SpaceConfig's fields and enums (400 INVALID_ARGUMENT). Scopes as the discovery
  document gives them: ``meetings.space.created`` (or ``.readonly``/``.settings`` where
  allowed) else 403 PERMISSION_DENIED with an ErrorInfo ``ACCESS_TOKEN_SCOPE_INSUFFICIENT``;
  with ``meetings.space.created`` an app sees only the spaces it created (others: 403), with
  ``.readonly`` all of the user's. A missing, unknown, revoked or expired token: 401
  UNAUTHENTICATED (``ACCESS_TOKEN_EXPIRED`` in the details when expired). Errors are
  Google's JSON: ``{"error": {"code", "message", "status", "details"?}}``.
* A conference ends with ``endTime`` and an ``expireTime`` 30 days later, after which its
  record is gone. ``:endActiveConference`` on a space with no conference answers 400
  FAILED_PRECONDITION: an assumption (Google's reference does not say), which
  ``MeetClient.end_conference_if_active`` relies on.

What happens in a meeting is simulated from Python (nobody joins over HTTP):
``start_conference``, ``join``, ``leave``, ``end_conference``; a join starts a conference
when none is on, so a space gets one conference record per conference held in it. A
signed-in participant is ``users/<sub>`` (the OpenID ``sub`` of the same user), one
participant per user per conference with a session per join; an anonymous or phone
participant is identified by display name within a conference.

What it adds for tests: a clock (``now``, ``set_time``, ``advance``; it follows real time
until set) used for token expiry and conference times; ``fail_next`` (injected answers,
with ``Retry-After``), ``timeout_next`` (late answers, the change made or not); every
request in ``calls``.

What it does not model: Google's certificates for ID tokens, PKCE, incremental-consent
screens, knocking and admission (access types are stored, not enforced on ``join``),
recordings, transcripts, smart notes, space members (v2beta), Workspace domain policies,
quotas (inject 429s instead) and push notifications.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
import secrets
import string
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, cast
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from coachgate.integrations.localserver import LoopbackService, TrackedHandler, TrackingServer

log = logging.getLogger(__name__)

JSON = dict[str, Any]

MEET_SPACE_CREATED = "https://www.googleapis.com/auth/meetings.space.created"
MEET_SPACE_READONLY = "https://www.googleapis.com/auth/meetings.space.readonly"
MEET_SPACE_SETTINGS = "https://www.googleapis.com/auth/meetings.space.settings"
USERINFO_EMAIL = "https://www.googleapis.com/auth/userinfo.email"
USERINFO_PROFILE = "https://www.googleapis.com/auth/userinfo.profile"
ID_TOKEN_ISSUER = "https://accounts.google.com"  # noqa: S105 (a URL, not a secret)
#: Short scope names the consent step accepts, and what Google grants for them.
SCOPE_ALIASES = {"email": USERINFO_EMAIL, "profile": USERINFO_PROFILE}

ACCESS_TOKEN_LIFETIME = 3599  # seconds, as Google's expires_in
AUTH_CODE_LIFETIME = timedelta(minutes=10)
MAX_REFRESH_TOKENS = 100  # per app and user; Google revokes the oldest past this
RECORD_RETENTION = timedelta(days=30)
DEFAULT_PAGE_SIZES = {"conferenceRecords": (25, 100), "participants": (100, 250),
                      "participantSessions": (100, 250)}

#: SpaceConfig's fields (Meet v2 discovery document) and the enums the emulator checks.
SPACE_CONFIG_ENUMS: dict[str, tuple[str, ...]] = {
    "accessType": ("OPEN", "TRUSTED", "RESTRICTED"),
    "entryPointAccess": ("ALL", "CREATOR_APP_ONLY"),
    "moderation": ("OFF", "ON"),
    "attendanceReportGenerationType": ("GENERATE_REPORT", "DO_NOT_GENERATE"),
}
SPACE_CONFIG_OBJECTS = ("artifactConfig", "moderationRestrictions")
SPACE_FIELDS = ("name", "meetingUri", "meetingCode", "config", "activeConference",
                "phoneAccess", "gatewaySipAccess")

_STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                 404: "NOT_FOUND", 409: "ALREADY_EXISTS", 429: "RESOURCE_EXHAUSTED",
                 499: "CANCELLED", 500: "INTERNAL", 501: "NOT_IMPLEMENTED",
                 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
_WWW_REALM = 'Bearer realm="https://accounts.google.com/"'
_ID_ALPHABET = string.ascii_letters + string.digits


# --- Public records ---------------------------------------------------------------------


class Call(NamedTuple):
    """One HTTP request: ``at`` is the emulator's clock on arrival; ``route`` is templated
    as the client names it (``/spaces/{space}``, ``/token``; the raw path for unknown
    routes); ``status`` is what the emulator answered."""

    at: datetime
    method: str
    route: str
    status: int


# --- Internal state ---------------------------------------------------------------------


@dataclass
class _Client:
    secret: str
    redirect_uris: tuple[str, ...] | None


@dataclass
class _User:
    sub: str
    email: str
    name: str


@dataclass
class _Code:
    client_id: str
    sub: str
    redirect_uri: str
    scopes: frozenset[str]
    offline: bool
    consent: bool
    expires_at: datetime


@dataclass
class _Grant:
    """What one token answer created: an access token, and a refresh token when offline.
    Refreshing adds access tokens to the same grant; revoking kills all of them."""

    client_id: str
    sub: str
    scopes: frozenset[str]
    refresh_token: str | None
    issued: int  # order, for the 100-refresh-tokens limit
    revoked: bool = False


@dataclass
class _Access:
    grant: _Grant
    expires_at: datetime


@dataclass
class _Session:
    id: str
    start: datetime
    end: datetime | None = None


@dataclass
class _Participant:
    id: str
    kind: str  # "signedinUser", "anonymousUser", "phoneUser"
    display_name: str
    sub: str | None
    sessions: list[_Session] = field(default_factory=list)


@dataclass
class _Record:
    id: str
    space_id: str
    start: datetime
    end: datetime | None = None
    participants: dict[str, _Participant] = field(default_factory=dict)  # id -> participant


@dataclass
class _Space:
    id: str
    meeting_code: str
    owner: str  # sub
    client_id: str
    config: JSON
    active: str | None = None  # record id
    records: list[str] = field(default_factory=list)


@dataclass
class _Fault:
    method: str
    route: str
    status: int
    retry_after: float | str | None
    times: int
    reason: str | None
    message: str | None
    detail: str | None


@dataclass
class _Timeout:
    method: str
    route: str
    seconds: float
    applied: bool
    times: int


@dataclass
class _Answer:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None  # non-JSON body
    hold: float = 0.0  # seconds to sit on the answer (timeout_next)


class _Fail(Exception):
    def __init__(self, answer: _Answer) -> None:
        super().__init__(answer.status)
        self.answer = answer


def _google_error(status: int, message: str, *, status_name: str | None = None,
                  details: Iterable[JSON] = (), headers: Mapping[str, str] | None = None,
                  ) -> _Fail:
    error: JSON = {"code": status, "message": message,
                   "status": status_name or _STATUS_NAMES.get(status, "UNKNOWN")}
    details = list(details)
    if details:
        error["details"] = details
    return _Fail(_Answer(status, {"error": error}, dict(headers or {})))


def _error_info(reason: str, method: str | None = None) -> JSON:
    info: JSON = {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason,
                  "domain": "googleapis.com"}
    metadata = {"service": "meet.googleapis.com"}
    if method:
        metadata["method"] = method
    info["metadata"] = metadata
    return info


def _oauth_error(status: int, error: str, description: str) -> _Fail:
    return _Fail(_Answer(status, {"error": error, "error_description": description}))


def _not_found() -> _Fail:
    return _google_error(404, "Requested entity was not found.")


def _invalid(message: str) -> _Fail:
    return _google_error(400, message)


def _ts(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _new_id(n: int = 12) -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(n))


@dataclass(frozen=True)
class _Route:
    method: str
    template: str  # as the client names it
    regex: re.Pattern[str]
    handler: str
    scopes: tuple[str, ...] | None  # None: no bearer token needed here
    rpc: str = ""  # Google's RPC method name, for ErrorInfo metadata


def _route(method: str, prefix: str, template: str, handler: str,
           scopes: tuple[str, ...] | None = None, rpc: str = "") -> _Route:
    pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/:]+)", re.escape(template))
    return _Route(method, template, re.compile(f"^{re.escape(prefix)}{pattern}$"), handler,
                  scopes, rpc)


_CREATED = (MEET_SPACE_CREATED,)
_READ = (MEET_SPACE_CREATED, MEET_SPACE_READONLY)
_SPACES = "google.apps.meet.v2.SpacesService."
_RECORDS = "google.apps.meet.v2.ConferenceRecordsService."
_ROUTES: tuple[_Route, ...] = (
    _route("GET", "", "/o/oauth2/v2/auth", "authorize"),
    _route("POST", "", "/token", "token"),
    _route("POST", "", "/revoke", "revoke"),
    _route("GET", "", "/v1/userinfo", "userinfo", ()),
    _route("GET", "", "/oauth2/v2/userinfo", "userinfo_v2", ()),
    _route("POST", "/v2", "/spaces", "create_space", _CREATED, _SPACES + "CreateSpace"),
    _route("GET", "/v2", "/spaces/{space}", "get_space",
           (*_READ, MEET_SPACE_SETTINGS), _SPACES + "GetSpace"),
    _route("PATCH", "/v2", "/spaces/{space}", "patch_space",
           (MEET_SPACE_CREATED, MEET_SPACE_SETTINGS), _SPACES + "UpdateSpace"),
    _route("POST", "/v2", "/spaces/{space}:endActiveConference", "end_active_conference",
           _CREATED, _SPACES + "EndActiveConference"),
    _route("GET", "/v2", "/conferenceRecords", "list_records", _READ,
           _RECORDS + "ListConferenceRecords"),
    _route("GET", "/v2", "/conferenceRecords/{conferenceRecord}", "get_record", _READ,
           _RECORDS + "GetConferenceRecord"),
    _route("GET", "/v2", "/conferenceRecords/{conferenceRecord}/participants",
           "list_participants", _READ, _RECORDS + "ListParticipants"),
    _route("GET", "/v2", "/conferenceRecords/{conferenceRecord}/participants/{participant}",
           "get_participant", _READ, _RECORDS + "GetParticipant"),
    _route("GET", "/v2", "/conferenceRecords/{conferenceRecord}/participants/{participant}"
           "/participantSessions", "list_sessions", _READ, _RECORDS + "ListParticipantSessions"),
)


@dataclass
class _Ctx:
    params: dict[str, str]
    query: dict[str, str]
    body: Any
    authorization: str
    grant: _Grant | None = None

    @property
    def who(self) -> _Grant:
        """The bearer's grant (Meet routes always have one)."""
        if self.grant is None:
            raise RuntimeError("this route takes no bearer token")
        return self.grant


def _known_route(method: str, route: str) -> None:
    if not any(r.method == method and r.template == route for r in _ROUTES):
        raise KeyError(f"unknown route {method} {route}")


class GoogleEmulator(LoopbackService):
    """A local Google for tests, demos and benchmarks; see the module docstring.

    All state sits behind one lock; the Python API below may be called from any thread
    while the server answers requests.
    """

    thread_name = "google-emulator"

    def __init__(self, *, port: int = 0, meeting_host: str = "https://meet.google.com",
                 default_access_type: str = "TRUSTED") -> None:
        self._port = port
        self._lock = threading.RLock()
        self.meeting_host = meeting_host.rstrip("/")
        self.default_access_type = default_access_type
        self._now: datetime | None = None
        self._clients: dict[str, _Client] = {}
        self._users: dict[str, _User] = {}
        self._by_email: dict[str, str] = {}
        self._authorize_as: str | None = None
        self._withhold: frozenset[str] = frozenset()
        self._deny = False
        self._consented: dict[tuple[str, str], set[str]] = {}  # (client, sub) -> scopes
        self._codes: dict[str, _Code] = {}
        self._grants: list[_Grant] = []
        self._by_refresh: dict[str, _Grant] = {}
        self._by_access: dict[str, _Access] = {}
        self._issued = 0
        self._spaces: dict[str, _Space] = {}
        self._by_code: dict[str, str] = {}  # meeting code -> space id
        self._records: dict[str, _Record] = {}
        self._page_tokens: dict[str, tuple[str, int]] = {}  # token -> (listing key, offset)
        self._page_size: int | None = None
        self._faults: list[_Fault] = []
        self._timeouts: list[_Timeout] = []
        self._calls: list[Call] = []
        self._stopping = threading.Event()

    # --- Lifecycle ----------------------------------------------------------------------

    def _new_server(self) -> _Server:
        server = _Server(("127.0.0.1", self._port), _Handler)
        server.emulator = self
        return server

    @property
    def url(self) -> str:
        """The server root (``http://127.0.0.1:PORT``)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def auth_base(self) -> str:
        """Like ``https://accounts.google.com`` (the consent step is under it)."""
        return self.url

    @property
    def token_url(self) -> str:
        return f"{self.url}/token"

    @property
    def revoke_url(self) -> str:
        return f"{self.url}/revoke"

    @property
    def userinfo_url(self) -> str:
        return f"{self.url}/v1/userinfo"

    @property
    def api_base(self) -> str:
        """Like ``https://meet.googleapis.com/v2``."""
        return f"{self.url}/v2"

    # --- Clock --------------------------------------------------------------------------

    @property
    def now(self) -> datetime:
        """The emulator's time: real time until ``set_time``, then fixed (``advance``
        moves it)."""
        with self._lock:
            return self._now if self._now is not None else datetime.now(UTC)

    @now.setter
    def now(self, value: datetime) -> None:
        self.set_time(value)

    def set_time(self, value: datetime) -> None:
        if value.tzinfo is None:
            raise ValueError("the emulator's time must be timezone-aware")
        with self._lock:
            self._now = value.astimezone(UTC)

    def advance(self, seconds: float) -> datetime:
        with self._lock:
            moved = self.now + timedelta(seconds=seconds)
            self._now = moved
            return moved

    # --- Setup API: OAuth ---------------------------------------------------------------

    def register_client(self, client_id: str, client_secret: str,
                        redirect_uris: Iterable[str] | None = None) -> None:
        """An OAuth client (a Google Cloud project's web client). ``redirect_uris``: the
        only ones allowed (None: any)."""
        with self._lock:
            self._clients[client_id] = _Client(
                client_secret, tuple(redirect_uris) if redirect_uris is not None else None)

    def create_user(self, email: str, *, name: str | None = None) -> str:
        """A Google account; returns its ``sub`` (21 digits, as Google's)."""
        with self._lock:
            key = email.strip().lower()
            if key in self._by_email:
                raise ValueError(f"a user with email {email} exists")
            sub = "1" + "".join(secrets.choice(string.digits) for _ in range(20))
            self._users[sub] = _User(sub, email.strip(), name or email.split("@")[0])
            self._by_email[key] = sub
            return sub

    def user_by_email(self, email: str) -> str | None:
        with self._lock:
            return self._by_email.get(email.strip().lower())

    def authorize_as(self, sub: str | None, *, withhold: Iterable[str] = (),
                     deny: bool = False) -> None:
        """Who approves the consent step from now on (unless ``login_hint`` names another
        user). ``withhold``: scopes the user unticks (short names or URLs); ``deny``: the
        user presses Cancel (``error=access_denied``)."""
        with self._lock:
            if sub is not None and sub not in self._users:
                raise KeyError(f"unknown user {sub}")
            self._authorize_as = sub
            self._withhold = frozenset(SCOPE_ALIASES.get(s, s) for s in withhold)
            self._deny = deny

    def issue_tokens(self, sub: str, client_id: str, scopes: Iterable[str], *,
                     offline: bool = True) -> JSON:
        """Skip the consent step: a token answer as ``POST /token`` would give it."""
        with self._lock:
            if sub not in self._users or client_id not in self._clients:
                raise KeyError("unknown user or client")
            granted = frozenset(SCOPE_ALIASES.get(s, s) for s in scopes)
            self._consented.setdefault((client_id, sub), set()).update(granted)
            return self._issue(client_id, sub, granted, offline=offline)

    def expire_tokens(self, sub: str) -> None:
        """Every access token of the user expires now (refresh tokens keep working)."""
        with self._lock:
            now = self.now
            for access in self._by_access.values():
                if access.grant.sub == sub:
                    access.expires_at = min(access.expires_at, now)

    def revoke_grant(self, sub: str, client_id: str | None = None) -> None:
        """The user removes the app (or every app) from their account: its refresh and
        access tokens stop working, its granted scopes are forgotten."""
        with self._lock:
            for grant in self._grants:
                if grant.sub == sub and client_id in (None, grant.client_id):
                    grant.revoked = True
            for key in [k for k in self._consented
                        if k[1] == sub and client_id in (None, k[0])]:
                del self._consented[key]

    def live_refresh_tokens(self, sub: str, client_id: str) -> int:
        with self._lock:
            return sum(1 for g in self._grants if g.sub == sub and g.client_id == client_id
                       and g.refresh_token is not None and not g.revoked)

    # --- Setup API: Meet ----------------------------------------------------------------

    def set_page_size(self, size: int | None) -> None:
        """Cap every list page at ``size`` items (None: Google's defaults), to exercise
        ``nextPageToken``."""
        with self._lock:
            self._page_size = size

    def create_space(self, sub: str, client_id: str, config: Mapping[str, Any] | None = None,
                     ) -> str:
        """A space owned by ``sub`` and created by ``client_id``; returns its name."""
        with self._lock:
            return str(self._create_space(sub, client_id, dict(config or {}))["name"])

    def space(self, name: str) -> JSON:
        """A space's JSON as the API answers it (KeyError when unknown)."""
        with self._lock:
            return self._space_json(self._space_or_key_error(name))

    def spaces(self, sub: str | None = None) -> list[JSON]:
        with self._lock:
            return [self._space_json(s) for s in self._spaces.values()
                    if sub is None or s.owner == sub]

    def start_conference(self, space_name: str, *, at: datetime | None = None) -> str:
        """A conference begins in the space; returns its record's name. ValueError when
        one is already on."""
        with self._lock:
            space = self._space_or_key_error(space_name)
            if space.active is not None:
                raise ValueError(f"{space_name} already has a conference on")
            record = _Record(_new_id(16), space.id, self._at(at))
            self._records[record.id] = record
            space.records.append(record.id)
            space.active = record.id
            return f"conferenceRecords/{record.id}"

    def join(self, space_name: str, display_name: str, *, email: str | None = None,
             signed_in: bool = True, phone: bool = False, at: datetime | None = None) -> str:
        """Someone joins (starting a conference if none is on); returns the participant's
        name. Signed in: the user with ``email`` (created if new; without ``email``, a user
        named after ``display_name``); else anonymous (or ``phone``), identified by
        ``display_name``. A participant already in is a ValueError."""
        with self._lock:
            when = self._at(at)
            space = self._space_or_key_error(space_name)
            record_id = space.active or self.start_conference(
                space_name, at=when).removeprefix("conferenceRecords/")
            record = self._records[record_id]
            kind, sub = self._participant_kind(display_name, email, signed_in, phone)
            participant = self._find_participant(record, kind, sub, display_name)
            if participant is None:
                participant = _Participant(_new_id(10), kind, display_name, sub)
                record.participants[participant.id] = participant
            elif any(s.end is None for s in participant.sessions):
                raise ValueError(f"{display_name} is already in the conference")
            participant.sessions.append(_Session(_new_id(14), when))
            return f"conferenceRecords/{record.id}/participants/{participant.id}"

    def leave(self, space_name: str, display_name: str | None = None, *,
              email: str | None = None, at: datetime | None = None) -> str:
        """Someone in the conference leaves (found by ``email`` for a signed-in user, else
        by ``display_name``); returns the participant's name."""
        with self._lock:
            space = self._space_or_key_error(space_name)
            if space.active is None:
                raise ValueError(f"{space_name} has no conference on")
            record = self._records[space.active]
            sub = self.user_by_email(email) if email else None
            for p in record.participants.values():
                if (sub is not None and p.sub == sub) or (
                        sub is None and email is None and p.display_name == display_name):
                    open_sessions = [s for s in p.sessions if s.end is None]
                    if open_sessions:
                        open_sessions[-1].end = self._at(at)
                        return f"conferenceRecords/{record.id}/participants/{p.id}"
            raise ValueError(f"{email or display_name} is not in the conference")

    def end_conference(self, space_name: str, *, at: datetime | None = None) -> str:
        """The conference on in the space ends (everyone still in leaves); returns its
        record's name. ValueError when none is on."""
        with self._lock:
            space = self._space_or_key_error(space_name)
            if space.active is None:
                raise ValueError(f"{space_name} has no conference on")
            return self._end(space, self._at(at))

    # --- Setup API: faults and history --------------------------------------------------

    def fail_next(self, method: str, route: str, status: int,
                  retry_after: float | str | None = None, *, times: int = 1,
                  reason: str | None = None, detail: str | None = None,
                  message: str | None = None) -> None:
        """The next ``times`` requests to ``method route`` (the client's template, such as
        ``POST /spaces`` or ``POST /token``) answer ``status`` in Google's error shape,
        changing nothing. ``reason`` overrides the status name (``RESOURCE_EXHAUSTED``...);
        ``detail`` is the reason of an ErrorInfo in ``details`` (a 429 has
        ``RATE_LIMIT_EXCEEDED`` unless told); ``retry_after`` (seconds, or an HTTP date as a
        string) is sent as Retry-After."""
        _known_route(method, route)
        with self._lock:
            self._faults.append(_Fault(method, route, status, retry_after, times, reason,
                                       message, detail))

    def timeout_next(self, method: str, route: str, seconds: float, *,
                     applied: bool = True, times: int = 1) -> None:
        """Hold the answers to the next ``times`` requests to ``method route`` for
        ``seconds`` (longer than the client's timeout). ``applied=True``: the change is
        made, only the answer is late (Google did the work, the client gave up waiting; a
        retried create makes a second space); ``applied=False``: nothing changes (a 504
        comes late)."""
        _known_route(method, route)
        with self._lock:
            self._timeouts.append(_Timeout(method, route, float(seconds), applied, times))

    def reset_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._timeouts.clear()

    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    # --- Internals: OAuth ---------------------------------------------------------------

    def _at(self, at: datetime | None) -> datetime:
        if at is None:
            return self.now
        if at.tzinfo is None:
            raise ValueError("times must be timezone-aware")
        return at.astimezone(UTC)

    def _issue(self, client_id: str, sub: str, scopes: frozenset[str], *,
               offline: bool) -> JSON:
        self._issued += 1
        refresh = "1//0" + secrets.token_urlsafe(48) if offline else None
        grant = _Grant(client_id, sub, scopes, refresh, self._issued)
        self._grants.append(grant)
        if refresh is not None:
            self._by_refresh[refresh] = grant
            live = [g for g in self._grants if g.client_id == client_id and g.sub == sub
                    and g.refresh_token is not None and not g.revoked]
            for old in sorted(live, key=lambda g: g.issued)[:-MAX_REFRESH_TOKENS]:
                old.revoked = True
        answer = self._access_answer(grant)
        if refresh is not None:
            answer["refresh_token"] = refresh
        return answer

    def _access_answer(self, grant: _Grant) -> JSON:
        token = "ya29." + secrets.token_urlsafe(48)
        self._by_access[token] = _Access(
            grant, self.now + timedelta(seconds=ACCESS_TOKEN_LIFETIME))
        answer: JSON = {"access_token": token, "expires_in": ACCESS_TOKEN_LIFETIME,
                        "scope": " ".join(sorted(grant.scopes)), "token_type": "Bearer"}
        if "openid" in grant.scopes:
            answer["id_token"] = self._id_token(grant)
        return answer

    def _id_token(self, grant: _Grant) -> str:
        """An OpenID Connect ID token for the grant's user, HS256-signed with the client
        secret (OpenID Connect allows that; Google signs with RS256 keys of its own)."""
        user = self._users[grant.sub]
        issued = int(self.now.timestamp())
        claims: JSON = {"iss": ID_TOKEN_ISSUER, "azp": grant.client_id,
                        "aud": grant.client_id, "sub": user.sub, "iat": issued,
                        "exp": issued + 3600}
        if USERINFO_EMAIL in grant.scopes:
            claims.update({"email": user.email, "email_verified": True})
        if USERINFO_PROFILE in grant.scopes:
            claims["name"] = user.name

        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        signing_input = (b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "."
                         + b64(json.dumps(claims, separators=(",", ":")).encode()))
        key = self._clients[grant.client_id].secret.encode()
        signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
        return signing_input + "." + b64(signature)

    def _bearer(self, authorization: str, route: _Route) -> _Grant:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise _google_error(
                401, "Request is missing required authentication credential. Expected OAuth "
                     "2 access token, login cookie or other valid authentication credential.",
                details=[_error_info("CREDENTIALS_MISSING", route.rpc)],
                headers={"WWW-Authenticate": _WWW_REALM})
        access = self._by_access.get(token.strip())
        expired = access is not None and access.expires_at <= self.now
        if access is None or access.grant.revoked or expired:
            details = [_error_info("ACCESS_TOKEN_EXPIRED", route.rpc)] if expired else []
            raise _google_error(
                401, "Request had invalid authentication credentials. Expected OAuth 2 access "
                     "token, login cookie or other valid authentication credential.",
                details=details,
                headers={"WWW-Authenticate": f'{_WWW_REALM}, error="invalid_token"'})
        return access.grant

    # --- Internals: Meet ----------------------------------------------------------------

    def _space_or_key_error(self, name: str) -> _Space:
        space = self._lookup_space(name.removeprefix("spaces/"))
        if space is None:
            raise KeyError(f"unknown space {name}")
        return space

    def _lookup_space(self, key: str) -> _Space | None:
        space = self._spaces.get(key)
        if space is None and key.lower() in self._by_code:
            space = self._spaces[self._by_code[key.lower()]]
        return space

    def _meeting_code(self) -> str:
        while True:
            parts = ["".join(secrets.choice(string.ascii_lowercase) for _ in range(n))
                     for n in (3, 4, 3)]
            code = "-".join(parts)
            if code not in self._by_code:
                return code

    def _check_config(self, config: Any, where: str = "space.config") -> JSON:
        if not isinstance(config, dict):
            raise _invalid(f"Invalid value at '{where}': expected an object.")
        for key, value in config.items():
            if key in SPACE_CONFIG_ENUMS:
                if value not in SPACE_CONFIG_ENUMS[key]:
                    raise _invalid(f"Invalid value at '{where}.{key}', \"{value}\"")
            elif key in SPACE_CONFIG_OBJECTS:
                if not isinstance(value, dict):
                    raise _invalid(f"Invalid value at '{where}.{key}': expected an object.")
            else:
                raise _invalid(f"Invalid JSON payload received. Unknown name \"{key}\" at "
                               f"'{where}': Cannot find field.")
        return dict(config)

    def _create_space(self, sub: str, client_id: str, config: JSON) -> JSON:
        space_id = _new_id(12)
        while space_id in self._spaces:
            space_id = _new_id(12)
        code = self._meeting_code()
        full = {"accessType": self.default_access_type, "entryPointAccess": "ALL",
                **self._check_config(config)}
        space = _Space(space_id, code, sub, client_id, full)
        self._spaces[space_id] = space
        self._by_code[code] = space_id
        return self._space_json(space)

    def _space_json(self, space: _Space) -> JSON:
        out: JSON = {"name": f"spaces/{space.id}",
                     "meetingUri": f"{self.meeting_host}/{space.meeting_code}",
                     "meetingCode": space.meeting_code, "config": dict(space.config)}
        if space.active is not None:
            out["activeConference"] = {"conferenceRecord": f"conferenceRecords/{space.active}"}
        return out

    def _visible(self, space: _Space, grant: _Grant) -> bool:
        if space.owner != grant.sub:
            return False
        return space.client_id == grant.client_id or bool(
            grant.scopes & {MEET_SPACE_READONLY, MEET_SPACE_SETTINGS})

    def _ctx_space(self, ctx: _Ctx) -> _Space:
        space = self._lookup_space(ctx.params["space"])
        if space is None:
            raise _not_found()
        if not self._visible(space, ctx.who):
            raise _google_error(403, "Permission denied on resource Space (or it might not "
                                     "exist)")
        return space

    def _end(self, space: _Space, at: datetime) -> str:
        """End the space's active conference (the caller checked there is one)."""
        record = self._records[space.active or ""]
        record.end = at
        for p in record.participants.values():
            for s in p.sessions:
                if s.end is None:
                    s.end = at
        space.active = None
        return f"conferenceRecords/{record.id}"

    def _participant_kind(self, display_name: str, email: str | None, signed_in: bool,
                          phone: bool) -> tuple[str, str | None]:
        if phone:
            return "phoneUser", None
        if not signed_in:
            return "anonymousUser", None
        address = email or re.sub(r"[^a-z0-9]+", ".", display_name.lower()).strip(".") \
            + "@example.com"
        sub = self.user_by_email(address) or self.create_user(address, name=display_name)
        return "signedinUser", sub

    @staticmethod
    def _find_participant(record: _Record, kind: str, sub: str | None,
                          display_name: str) -> _Participant | None:
        for p in record.participants.values():
            if p.kind == kind and (p.sub == sub if sub is not None
                                   else p.display_name == display_name):
                return p
        return None

    def _record_json(self, record: _Record) -> JSON:
        out: JSON = {"name": f"conferenceRecords/{record.id}",
                     "startTime": _ts(record.start)}
        if record.end is not None:
            out["endTime"] = _ts(record.end)
            out["expireTime"] = _ts(record.end + RECORD_RETENTION)
        out["space"] = f"spaces/{record.space_id}"
        return out

    def _participant_json(self, record: _Record, p: _Participant) -> JSON:
        out: JSON = {"name": f"conferenceRecords/{record.id}/participants/{p.id}"}
        if p.kind == "signedinUser":
            out["signedinUser"] = {"user": f"users/{p.sub}", "displayName": p.display_name}
        else:
            out[p.kind] = {"displayName": p.display_name}
        out["earliestStartTime"] = _ts(min(s.start for s in p.sessions))
        if all(s.end is not None for s in p.sessions):
            out["latestEndTime"] = _ts(max(s.end for s in p.sessions if s.end is not None))
        return out

    def _session_json(self, record: _Record, p: _Participant, s: _Session) -> JSON:
        out: JSON = {"name": f"conferenceRecords/{record.id}/participants/{p.id}"
                             f"/participantSessions/{s.id}", "startTime": _ts(s.start)}
        if s.end is not None:
            out["endTime"] = _ts(s.end)
        return out

    def _live_record(self, record_id: str) -> _Record | None:
        record = self._records.get(record_id)
        if record is None or (record.end is not None
                              and record.end + RECORD_RETENTION <= self.now):
            return None
        return record

    def _ctx_record(self, ctx: _Ctx) -> _Record:
        record = self._live_record(ctx.params["conferenceRecord"])
        if record is None:
            raise _not_found()
        if not self._visible(self._spaces[record.space_id], ctx.who):
            raise _google_error(403, "The caller does not have permission")
        return record

    def _ctx_participant(self, ctx: _Ctx) -> tuple[_Record, _Participant]:
        record = self._ctx_record(ctx)
        participant = record.participants.get(ctx.params["participant"])
        if participant is None:
            raise _not_found()
        return record, participant

    def _page(self, ctx: _Ctx, kind: str, listing: str, items: list[JSON]) -> JSON:
        default, maximum = DEFAULT_PAGE_SIZES[kind]
        raw_size = ctx.query.get("pageSize")
        try:
            size = int(raw_size) if raw_size else default
        except ValueError:
            raise _invalid(f"Invalid value at 'page_size' (TYPE_INT32), \"{raw_size}\"") \
                from None
        if size < 0:
            raise _invalid("Page size must be non-negative.")
        size = min(size or default, maximum)
        if self._page_size is not None:
            size = min(size, self._page_size)
        offset = 0
        token = ctx.query.get("pageToken")
        if token:
            saved = self._page_tokens.get(token)
            if saved is None or saved[0] != listing:
                raise _invalid("Invalid page token.")
            offset = saved[1]
        out: JSON = {kind: items[offset:offset + size]}
        if offset + size < len(items):
            next_token = secrets.token_urlsafe(24)
            self._page_tokens[next_token] = (listing, offset + size)
            out["nextPageToken"] = next_token
        if not out[kind]:
            del out[kind]  # Google leaves an empty repeated field out
        return out

    _FILTER_TERM = re.compile(
        r'^\s*(?:(space\.name|space\.meeting_code)\s*=\s*"([^"]*)"|(end_time)\s+IS\s+NULL)\s*$')

    def _record_filter(self, raw: str) -> Callable[[_Record], bool]:
        tests: list[Callable[[_Record], bool]] = []
        for term in re.split(r"\s+AND\s+", raw.strip()) if raw.strip() else []:
            match = self._FILTER_TERM.match(term)
            if match is None:
                raise _invalid(f"Invalid filter: {raw[:100]}")
            fieldname, value, end_time = match.groups()
            if end_time:
                tests.append(lambda r: r.end is None)
            elif fieldname == "space.name":
                tests.append(self._in_space(value))
            else:
                tests.append(self._with_code(value.lower()))
        return lambda r: all(t(r) for t in tests)

    @staticmethod
    def _in_space(name: str) -> Callable[[_Record], bool]:
        return lambda r: f"spaces/{r.space_id}" == name

    def _with_code(self, code: str) -> Callable[[_Record], bool]:
        return lambda r: self._spaces[r.space_id].meeting_code == code

    # --- HTTP dispatch ------------------------------------------------------------------

    def _handle(self, method: str, raw_path: str, headers: Mapping[str, str],
                body: bytes) -> _Answer:
        """Answer one request; ``headers`` have lower-case names."""
        parts = urlsplit(raw_path)
        route: _Route | None = None
        params: dict[str, str] = {}
        for candidate in _ROUTES:
            match = candidate.regex.match(parts.path)
            if match is not None and candidate.method == method:
                route, params = candidate, {k: unquote(v) for k, v in match.groupdict().items()}
                break
        with self._lock:
            arrived = self.now
            try:
                if route is None:
                    raise _google_error(404, "Method not found.")
                answer = self._process(route, params, parts.query, headers, body)
            except _Fail as exc:
                answer = exc.answer
            self._calls.append(Call(arrived, method, route.template if route else parts.path,
                                    answer.status))
            return answer

    def _process(self, route: _Route, params: dict[str, str], query: str,
                 headers: Mapping[str, str], raw: bytes) -> _Answer:
        fault = self._take_fault(route)
        if fault is not None:
            return fault
        hold, applied = self._take_timeout(route)
        if hold and not applied:
            answer = _google_error(504, "Deadline exceeded.").answer
        else:
            try:
                answer = self._apply(route, params, query, headers, raw)
            except _Fail as exc:
                answer = exc.answer
        answer.hold = hold
        return answer

    def _take_timeout(self, route: _Route) -> tuple[float, bool]:
        for i, timeout in enumerate(self._timeouts):
            if (timeout.method, timeout.route) != (route.method, route.template):
                continue
            timeout.times -= 1
            if timeout.times <= 0:
                del self._timeouts[i]
            return timeout.seconds, timeout.applied
        return 0.0, True

    def _apply(self, route: _Route, params: dict[str, str], query: str,
               headers: Mapping[str, str], raw: bytes) -> _Answer:
        q = dict(parse_qsl(query, keep_blank_values=True))
        if route.handler == "authorize":
            return self._h_authorize(q)
        ctx = _Ctx(params=params, query=q, body=self._parse_body(headers, raw),
                   authorization=headers.get("authorization", ""))
        if route.scopes is not None:
            if route.handler.startswith("userinfo"):
                return self._h_userinfo(ctx) if route.handler == "userinfo" \
                    else self._h_userinfo_v2(ctx)
            ctx.grant = self._bearer(ctx.authorization, route)
            if not ctx.grant.scopes & set(route.scopes):
                raise _google_error(
                    403, "Request had insufficient authentication scopes.",
                    details=[_error_info("ACCESS_TOKEN_SCOPE_INSUFFICIENT", route.rpc)],
                    headers={"WWW-Authenticate": f'{_WWW_REALM}, error="insufficient_scope", '
                                                 f'scope="{" ".join(route.scopes)}"'})
        handler: Callable[[_Ctx], _Answer] = getattr(self, "_h_" + route.handler)
        return handler(ctx)

    def _take_fault(self, route: _Route) -> _Answer | None:
        for i, fault in enumerate(self._faults):
            if (fault.method, fault.route) != (route.method, route.template):
                continue
            fault.times -= 1
            if fault.times <= 0:
                del self._faults[i]
            headers: dict[str, str] = {}
            if isinstance(fault.retry_after, str):
                headers["Retry-After"] = fault.retry_after
            elif fault.retry_after is not None:
                headers["Retry-After"] = str(int(fault.retry_after)) \
                    if float(fault.retry_after).is_integer() else str(fault.retry_after)
            message = fault.message or {
                429: "Quota exceeded for quota metric 'Requests' of service "
                     "'meet.googleapis.com'.",
                500: "Internal error encountered.", 503: "The service is currently "
                                                         "unavailable."}.get(
                fault.status, "Injected failure.")
            detail = fault.detail or ("RATE_LIMIT_EXCEEDED" if fault.status == 429 else None)
            details = [_error_info(detail, route.rpc)] if detail else []
            return _google_error(fault.status, message, status_name=fault.reason,
                                 details=details, headers=headers).answer
        return None

    @staticmethod
    def _parse_body(headers: Mapping[str, str], raw: bytes) -> Any:
        if not raw:
            return None
        ctype = (headers.get("content-type") or "").split(";")[0].strip().lower()
        text = raw.decode("utf-8", errors="replace")
        if ctype == "application/x-www-form-urlencoded":
            return dict(parse_qsl(text, keep_blank_values=True))
        try:
            return json.loads(text)
        except ValueError:
            raise _invalid("Invalid JSON payload received.") from None

    # --- Handlers: OAuth ----------------------------------------------------------------

    def _h_authorize(self, q: dict[str, str]) -> _Answer:
        def page(status: int, text: str) -> _Answer:
            return _Answer(status, raw=text.encode(),
                           headers={"Content-Type": "text/plain; charset=utf-8"})

        client_id = q.get("client_id", "")
        client = self._clients.get(client_id)
        if client is None:
            return page(401, "Access blocked: Authorization Error. Error 401: invalid_client "
                             "(The OAuth client was not found.)")
        redirect_uri = q.get("redirect_uri", "")
        if not redirect_uri or (client.redirect_uris is not None
                                and redirect_uri not in client.redirect_uris):
            return page(400, "Access blocked: This app's request is invalid. "
                             "Error 400: redirect_uri_mismatch")
        asked = frozenset(SCOPE_ALIASES.get(s, s) for s in q.get("scope", "").split())
        if not asked:
            return page(400, "Error 400: invalid_request. Missing required parameter: scope")
        hint = q.get("login_hint")
        sub = self.user_by_email(hint) if hint else None
        sub = sub or self._authorize_as
        params: dict[str, str] = {}
        if "state" in q:
            params["state"] = q["state"]
        if q.get("response_type") != "code":
            params["error"] = "unsupported_response_type"
        elif sub is None:
            return page(400, "No user to sign in as: call emu.authorize_as(sub) or pass "
                             "login_hint=<email of a user made with emu.create_user>.")
        elif self._deny:
            params["error"] = "access_denied"
        else:
            granted = set(asked - self._withhold)
            if q.get("include_granted_scopes") == "true":
                granted |= self._consented.get((client_id, sub), set())
            self._consented.setdefault((client_id, sub), set()).update(asked - self._withhold)
            code = "4/0" + secrets.token_urlsafe(32)
            self._codes[code] = _Code(
                client_id=client_id, sub=sub, redirect_uri=redirect_uri,
                scopes=frozenset(granted), offline=q.get("access_type") == "offline",
                consent="consent" in q.get("prompt", "").split(),
                expires_at=self.now + AUTH_CODE_LIFETIME)
            params.update({"code": code, "scope": " ".join(sorted(granted)),
                           "authuser": "0", "prompt": "consent"})
        sep = "&" if "?" in redirect_uri else "?"
        return _Answer(302, raw=b"", headers={"Location": redirect_uri + sep
                                              + urlencode(params)})

    def _client_credentials(self, ctx: _Ctx) -> str:
        form = ctx.body if isinstance(ctx.body, dict) else {}
        client_id = str(form.get("client_id") or "")
        secret = str(form.get("client_secret") or "")
        scheme, _, credential = ctx.authorization.partition(" ")
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(credential, validate=True).decode()
            except (ValueError, binascii.Error):
                decoded = ":"
            basic_id, _, basic_secret = decoded.partition(":")
            client_id, secret = unquote(basic_id), unquote(basic_secret)
        client = self._clients.get(client_id)
        if client is None:
            raise _oauth_error(401, "invalid_client", "The OAuth client was not found.")
        if not secrets.compare_digest(client.secret.encode(), secret.encode()):
            raise _oauth_error(401, "invalid_client", "Unauthorized")
        return client_id

    def _h_token(self, ctx: _Ctx) -> _Answer:
        client_id = self._client_credentials(ctx)
        form = ctx.body if isinstance(ctx.body, dict) else {}
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            code = self._codes.pop(str(form.get("code") or ""), None)
            if code is None or code.expires_at <= self.now or code.client_id != client_id:
                raise _oauth_error(400, "invalid_grant", "Bad Request")
            if form.get("redirect_uri") != code.redirect_uri:
                raise _oauth_error(400, "redirect_uri_mismatch", "Bad Request")
            has_live = self.live_refresh_tokens(code.sub, client_id) > 0
            # Google issues a refresh token for an offline grant the first time, and again
            # only when the user is made to consent again (prompt=consent).
            offline = code.offline and (code.consent or not has_live)
            return _Answer(200, self._issue(client_id, code.sub, code.scopes, offline=offline))
        if grant_type == "refresh_token":
            grant = self._by_refresh.get(str(form.get("refresh_token") or ""))
            if grant is None or grant.revoked or grant.client_id != client_id:
                raise _oauth_error(400, "invalid_grant", "Token has been expired or revoked.")
            return _Answer(200, self._access_answer(grant))
        raise _oauth_error(400, "unsupported_grant_type", f"Invalid grant_type: {grant_type}")

    def _h_revoke(self, ctx: _Ctx) -> _Answer:
        form = ctx.body if isinstance(ctx.body, dict) else {}
        token = str(form.get("token") or ctx.query.get("token") or "")
        grant = self._by_refresh.get(token)
        if grant is None and token in self._by_access:
            grant = self._by_access[token].grant
        if grant is None or grant.revoked:
            raise _oauth_error(400, "invalid_token", "Token expired or revoked")
        grant.revoked = True
        return _Answer(200, {})

    def _userinfo_grant(self, ctx: _Ctx) -> _Grant:
        scheme, _, token = ctx.authorization.partition(" ")
        access = self._by_access.get(token.strip()) if scheme.lower() == "bearer" else None
        if access is None or access.grant.revoked or access.expires_at <= self.now:
            raise _Fail(_Answer(401, {"error": "invalid_request",
                                      "error_description": "Invalid Credentials"},
                                {"WWW-Authenticate": f'{_WWW_REALM}, error="invalid_token"'}))
        return access.grant

    def _h_userinfo(self, ctx: _Ctx) -> _Answer:
        grant = self._userinfo_grant(ctx)
        user = self._users[grant.sub]
        out: JSON = {"sub": user.sub}
        if USERINFO_PROFILE in grant.scopes:
            out["name"] = user.name
        if USERINFO_EMAIL in grant.scopes:
            out.update({"email": user.email, "email_verified": True})
        return _Answer(200, out)

    def _h_userinfo_v2(self, ctx: _Ctx) -> _Answer:
        """The older ``/oauth2/v2/userinfo`` (``id``, ``verified_email``), which
        django-allauth's Google provider reads when a token answer has no id_token."""
        grant = self._userinfo_grant(ctx)
        user = self._users[grant.sub]
        out: JSON = {"id": user.sub}
        if USERINFO_EMAIL in grant.scopes:
            out.update({"email": user.email, "verified_email": True})
        if USERINFO_PROFILE in grant.scopes:
            out["name"] = user.name
        return _Answer(200, out)

    # --- Handlers: Meet -----------------------------------------------------------------

    def _space_body(self, ctx: _Ctx) -> JSON:
        body = ctx.body if ctx.body is not None else {}
        if not isinstance(body, dict):
            raise _invalid("Invalid JSON payload received. Expected an object.")
        for key in body:
            if key not in SPACE_FIELDS:
                raise _invalid(f"Invalid JSON payload received. Unknown name \"{key}\": "
                               "Cannot find field.")
        return body

    def _h_create_space(self, ctx: _Ctx) -> _Answer:
        body = self._space_body(ctx)  # output-only fields are ignored, as by Google
        return _Answer(200, self._create_space(ctx.who.sub, ctx.who.client_id,
                                               self._check_config(body.get("config") or {})))

    def _h_get_space(self, ctx: _Ctx) -> _Answer:
        return _Answer(200, self._space_json(self._ctx_space(ctx)))

    def _h_patch_space(self, ctx: _Ctx) -> _Answer:
        space = self._ctx_space(ctx)
        body = self._space_body(ctx)
        config = self._check_config(body.get("config") or {})
        mask = [p.strip() for p in ctx.query.get("updateMask", "").split(",") if p.strip()]
        if mask == ["*"] or mask == ["config"]:
            space.config = {"accessType": self.default_access_type, "entryPointAccess": "ALL",
                            **config}
        elif not mask:
            space.config.update(config)
        else:
            for path in mask:
                camel = re.sub(r"_([a-z])", lambda m: m.group(1).upper(), path)
                head, _, key = camel.partition(".")
                if head != "config" or (key not in SPACE_CONFIG_ENUMS
                                        and key not in SPACE_CONFIG_OBJECTS):
                    raise _invalid(f"Invalid update mask path: \"{path}\"")
                if key in config:
                    space.config[key] = config[key]
                else:
                    space.config.pop(key, None)
        return _Answer(200, self._space_json(space))

    def _h_end_active_conference(self, ctx: _Ctx) -> _Answer:
        space = self._ctx_space(ctx)
        if space.active is None:
            raise _google_error(400, "The space has no active conference.",
                                status_name="FAILED_PRECONDITION")
        self._end(space, self.now)
        return _Answer(200, {})

    def _h_list_records(self, ctx: _Ctx) -> _Answer:
        raw_filter = ctx.query.get("filter", "")
        keep = self._record_filter(raw_filter)
        records = [r for rid in list(self._records)
                   if (r := self._live_record(rid)) is not None
                   and self._visible(self._spaces[r.space_id], ctx.who) and keep(r)]
        records.sort(key=lambda r: r.start, reverse=True)
        listing = f"records:{ctx.who.sub}:{ctx.who.client_id}:{raw_filter}"
        return _Answer(200, self._page(ctx, "conferenceRecords", listing,
                                       [self._record_json(r) for r in records]))

    def _h_get_record(self, ctx: _Ctx) -> _Answer:
        return _Answer(200, self._record_json(self._ctx_record(ctx)))

    def _h_list_participants(self, ctx: _Ctx) -> _Answer:
        record = self._ctx_record(ctx)
        people = sorted(record.participants.values(),
                        key=lambda p: min(s.start for s in p.sessions), reverse=True)
        if ctx.query.get("filter", "").strip() == "latest_end_time IS NULL":
            people = [p for p in people if any(s.end is None for s in p.sessions)]
        elif ctx.query.get("filter", "").strip():
            raise _invalid(f"Invalid filter: {ctx.query['filter'][:100]}")
        return _Answer(200, self._page(ctx, "participants", f"participants:{record.id}",
                                       [self._participant_json(record, p) for p in people]))

    def _h_get_participant(self, ctx: _Ctx) -> _Answer:
        record, participant = self._ctx_participant(ctx)
        return _Answer(200, self._participant_json(record, participant))

    def _h_list_sessions(self, ctx: _Ctx) -> _Answer:
        record, p = self._ctx_participant(ctx)
        sessions = sorted(p.sessions, key=lambda s: s.start, reverse=True)
        return _Answer(200, self._page(ctx, "participantSessions", f"sessions:{p.id}",
                                       [self._session_json(record, p, s) for s in sessions]))


# --- HTTP server --------------------------------------------------------------------------


class _Server(TrackingServer):
    emulator: GoogleEmulator


class _Handler(TrackedHandler):
    server_version = "google-emulator"

    def _serve(self) -> None:
        emulator = cast(_Server, self.server).emulator
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        answer = emulator._handle(self.command, self.path, headers, raw)
        if answer.hold > 0:
            emulator._stopping.wait(answer.hold)
        if answer.raw is not None:
            payload = answer.raw
        elif answer.body is not None:
            payload = json.dumps(answer.body, separators=(",", ":")).encode()
            answer.headers.setdefault("Content-Type", "application/json; charset=UTF-8")
        else:
            payload = b""
        try:
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if payload and self.command != "HEAD":
                self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:  # quiet; calls are in .calls
        log.debug("emulator: " + format, *args)


# --- Standalone ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m coachgate.integrations.google.emulator",
        description="A local Google (OAuth, userinfo, Meet v2): registers a client, makes "
                    "users, prints one JSON line (urls, client, users), serves until Ctrl-C.")
    parser.add_argument("--port", type=int, default=8766, help="0 picks a free port")
    parser.add_argument("--client-id", default="coachgate-emulator.apps.googleusercontent.com")
    parser.add_argument("--client-secret", default="coachgate-emulator-secret")
    parser.add_argument("--user", action="append", default=[],
                        help="an email to create a user for (repeatable); the first one is "
                             "who the consent step approves as")
    args = parser.parse_args(argv)

    emu = GoogleEmulator(port=args.port).start()

    def describe() -> dict[str, Any]:
        emu.register_client(args.client_id, args.client_secret)
        users = {email: emu.create_user(email) for email in args.user}
        if users:
            emu.authorize_as(next(iter(users.values())))
        return {"url": emu.url, "auth_base": emu.auth_base, "token_url": emu.token_url,
                "revoke_url": emu.revoke_url, "userinfo_url": emu.userinfo_url,
                "api_base": emu.api_base, "client_id": args.client_id,
                "client_secret": args.client_secret, "users": users}

    return emu.serve_until_signal(describe)


if __name__ == "__main__":
    sys.exit(main())

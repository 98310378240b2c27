"""A stateful local Zoom: the OAuth host and the REST routes coachgate uses, on one port.

    emu = ZoomEmulator().start()             # or: with ZoomEmulator() as emu:
    emu.register_app("cid", "secret", webhook_secret_token="whsec")
    coach = emu.create_user("coach@example.com")          # plan="basic" for a free account
    emu.authorize_as(coach)
    oauth = ZoomOAuth("cid", "secret", oauth_base=emu.oauth_base)
    ...                                                   # GET emu.oauth_base/oauth/authorize
    client = ZoomClient(tokens.access_token, api_base=emu.api_base, clock=emu.now)

Run alone with ``python -m coachgate.integrations.zoom.emulator [--port 8766]``: it
registers an app and a user, prints ``{"oauth_base", "api_base", ...}`` as one JSON line
and serves until Ctrl-C (or SIGTERM).

What it does like Zoom (https://developers.zoom.us/docs/api/):

* OAuth at ``/oauth/authorize`` (redirects to ``redirect_uri`` with ``code`` and
  ``state`` for the user chosen with ``authorize_as``) and ``/oauth/token`` (HTTP Basic
  client auth only; a wrong secret is 401 ``invalid_client``). Access tokens live an hour;
  refresh tokens 90 days and **rotate**: a refresh gives a new one and the old one answers
  400 ``{"reason": "Invalid Token!", "error": "invalid_grant"}`` (as does a used code).
  ``revoke`` (the user removed the app) kills the user's tokens for that app and sends
  ``app_deauthorized``. The old access token stays valid until it expires.
* The API under ``/v2``: ``GET /users/me``; ``POST /users/me/meetings`` (also
  ``/users/{userId}/meetings`` with the token's own id or email); ``GET``, ``PATCH`` (204)
  and ``DELETE`` (204) ``/meetings/{meetingId}``; ``GET /past_meetings/{meetingId}/
  instances`` and ``/past_meetings/{meetingUUID}/participants`` (paged with
  ``page_size``/``next_page_token``). Each checks the token's scopes (granular, such as
  ``meeting:write:meeting``, or the classic ``meeting:write``): a missing one is 400 code
  4711. A bad or expired token is 401 code 124. An app's consent grants ``DEFAULT_SCOPES``
  unless ``register_app`` says otherwise: the five for users/me and meeting CRUD, and
  ``meeting:read:list_past_instances`` / ``meeting:read:list_past_participants`` for the
  past-meeting routes. The answers on these routes follow Zoom's published description
  (tests/specs/zoom; checked by tests/integrations/zoom/test_zoom_fidelity.py).
* Validation as Zoom answers it: 400 ``{"code": 300, "message": "Validation Failed.",
  "errors": [{"field", "message"}]}`` for a topic over 200 characters, a type other than 1
  (instant) or 2 (scheduled), a ``start_time`` not ``yyyy-MM-ddTHH:mm:ss[Z]``, a duration
  that is not a whole number of minutes from 1, a passcode over 10 characters or outside
  ``a-z A-Z 0-9 @ - _ *``, an unknown time zone; a body that is not JSON: code 300
  "Request Body should be a valid JSON object.". An unknown meeting is 404 code 3001;
  deleting a meeting in progress is 400 code 3002.
* The per-user daily limit of 100 meeting creates and updates, reset at 00:00 UTC: 429
  with ``X-RateLimit-Type: Daily-limit``, ``X-RateLimit-Limit``, ``X-RateLimit-Remaining:
  0`` and no ``Retry-After``. ``set_daily_limit`` lowers it for tests.
* A meeting's life: ``start_meeting``, ``join``, ``leave`` and ``end_meeting`` change the
  state and produce the webhook events Zoom sends (``meeting.started``,
  ``meeting.participant_joined``, ``meeting.participant_left``, ``meeting.ended``), signed
  with the app's secret token (``x-zm-signature``, ``x-zm-request-timestamp``) and POSTed
  to the app's ``webhook_url`` when it has one (else kept in ``deliveries`` for the test
  to deliver). Events go to the app whose token created the meeting. Starting a meeting
  again after it ended makes a new instance (a new uuid, the same id). A **basic** host's
  meeting is cut at 40 minutes: ``advance_to`` (or any later simulated moment) ends it at
  start + 40 min. Ended instances and their participants are what the past-meeting routes
  serve, with two rules of Zoom's reference: past participants need a paid host (a basic
  one gets 400 code 200), and an instance with only one participant lists nobody.
  ``send_url_validation`` sends ``endpoint.url_validation`` and returns the answer.

Time: the emulator's clock is real time until ``set_clock`` freezes it; ``advance_to``
moves it forward and applies what falls due (40-minute cuts). Simulated moments (``at=``)
later than a frozen clock move it too. Token lifetimes and the daily limit use this clock.

What it does not model: recurring meetings (types 3, 8) and webinars, registrants, waiting
rooms (a participant joins at once), the host's own join (call ``join`` for the host if a
test needs them), account-level apps and Server-to-Server OAuth, Zoom's per-second rate
limits (inject them with ``fail_next``), event retries by Zoom, the deprecated
verification token and the deauthorization ``signature`` field.

For tests: ``fail_next`` (an answer of any status, JSON or XML, with ``Retry-After`` or a
held answer), every HTTP request in ``calls``, every event in ``deliveries``.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import re
import secrets
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, cast
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx

from coachgate.integrations.localserver import LoopbackService, TrackedHandler, TrackingServer
from coachgate.integrations.zoom import webhooks

log = logging.getLogger(__name__)

JSON = dict[str, Any]

DEFAULT_SCOPES = (
    "meeting:write:meeting", "meeting:update:meeting", "meeting:delete:meeting",
    "meeting:read:meeting", "user:read:user",
    "meeting:read:list_past_instances", "meeting:read:list_past_participants",
)
#: Classic (pre-granular) scopes that cover a granular one.
_CLASSIC = {"meeting:write:meeting": "meeting:write", "meeting:update:meeting": "meeting:write",
            "meeting:delete:meeting": "meeting:write", "meeting:read:meeting": "meeting:read",
            "meeting:read:list_past_instances": "meeting:read",
            "meeting:read:list_past_participants": "meeting:read", "user:read:user": "user:read"}
ACCESS_TOKEN_LIFETIME = timedelta(seconds=3599)
REFRESH_TOKEN_LIFETIME = timedelta(days=90)
AUTH_CODE_LIFETIME = timedelta(minutes=10)
DAILY_CREATE_UPDATE_LIMIT = 100
BASIC_MEETING_LIMIT = timedelta(minutes=40)
MAX_TOPIC = 200
MAX_AGENDA = 2000
MAX_PAGE_SIZE = 300
_PASSWORD = re.compile(r"[A-Za-z0-9@\-_*]{1,10}")
_START_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z?")
BASIC, LICENSED = 1, 2


# --- Public records ---------------------------------------------------------------------


class Call(NamedTuple):
    """One HTTP request: ``at`` is time.time() on arrival; ``route`` is templated
    (``/v2/meetings/{meetingId}``; the raw path for unknown routes); ``status`` is what the
    emulator answered."""

    at: float
    method: str
    route: str
    status: int


@dataclass
class Delivery:
    """One webhook event: ``body`` is exactly the bytes signed and sent, ``headers`` its
    Zoom headers. ``status`` and ``answer`` are the receiver's reply (None when the app
    has no ``webhook_url`` or the POST failed; ``error`` says why)."""

    client_id: str
    event: JSON
    body: bytes
    headers: dict[str, str]
    status: int | None = None
    answer: Any = None
    error: str | None = None

    @property
    def name(self) -> str:
        return str(self.event["event"])


# --- Internal state ---------------------------------------------------------------------


@dataclass
class _App:
    client_id: str
    client_secret: str = field(repr=False)
    webhook_secret_token: str = field(repr=False)
    webhook_url: str | None
    scopes: tuple[str, ...]


@dataclass
class _User:
    id: str
    email: str
    plan: int
    account_id: str
    first_name: str
    timezone: str = "UTC"
    pmi: int = 0


@dataclass
class _Grant:
    user_id: str
    client_id: str
    scopes: tuple[str, ...]
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: datetime
    refresh_expires_at: datetime
    alive: bool = True


@dataclass
class _Code:
    client_id: str
    user_id: str
    redirect_uri: str
    expires_at: datetime


@dataclass
class _Participant:
    participant_uuid: str
    user_id: str  # Zoom's per-meeting participant id ("16778240")
    name: str
    email: str | None
    zoom_user_id: str  # the signed-in Zoom user's id, "" for a guest
    join_time: datetime
    leave_time: datetime | None = None


@dataclass
class _Instance:
    uuid: str
    start_time: datetime
    end_time: datetime | None = None
    cut_at: datetime | None = None
    participants: list[_Participant] = field(default_factory=list)


@dataclass
class _Meeting:
    id: int
    host_id: str
    client_id: str
    topic: str
    type: int
    start_time: datetime
    duration: int
    timezone: str
    password: str
    agenda: str
    settings: JSON
    created_at: datetime
    planned_uuid: str  # a scheduled meeting has a uuid before it starts; the first start
    instances: list[_Instance] = field(default_factory=list)

    @property
    def live(self) -> _Instance | None:
        if self.instances and self.instances[-1].end_time is None:
            return self.instances[-1]
        return None


@dataclass
class _Fault:
    method: str
    route: str
    status: int
    xml: bool
    retry_after: str | None
    rate_limit_type: str | None
    code: int | None
    message: str | None
    hold_s: float


@dataclass
class _Answer:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None
    hold: float = 0.0


class _Fail(Exception):
    def __init__(self, status: int, body: JSON, headers: Mapping[str, str] | None = None
                 ) -> None:
        super().__init__(body.get("message"))
        self.status = status
        self.body = body
        self.headers = dict(headers or {})


def _err(status: int, code: int, message: str) -> _Fail:
    return _Fail(status, {"code": code, "message": message})


def _invalid(field_name: str, message: str = "Invalid field.") -> _Fail:
    return _Fail(400, {"code": 300, "message": "Validation Failed.",
                       "errors": [{"field": field_name, "message": message}]})


def _not_found(meeting: object) -> _Fail:
    return _err(404, 3001, f"Meeting does not exist: {meeting}.")


@dataclass
class _Ctx:
    method: str
    template: str
    params: dict[str, str]
    query: dict[str, str]
    raw: bytes
    grant: _Grant | None = None


@dataclass(frozen=True)
class _Route:
    method: str
    template: str
    regex: re.Pattern[str]
    handler: str
    scope: str | None  # None: no bearer token (the OAuth host)


def _route(method: str, template: str, handler: str, scope: str | None) -> _Route:
    pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
    return _Route(method, template, re.compile(f"^{pattern}$"), handler, scope)


_ROUTES: tuple[_Route, ...] = (
    _route("GET", "/oauth/authorize", "oauth_authorize", None),
    _route("POST", "/oauth/token", "oauth_token", None),
    _route("GET", "/v2/users/me", "get_me", "user:read:user"),
    _route("POST", "/v2/users/{userId}/meetings", "create_meeting", "meeting:write:meeting"),
    _route("GET", "/v2/users/{userId}/meetings", "list_meetings", "meeting:read:meeting"),
    _route("GET", "/v2/meetings/{meetingId}", "get_meeting", "meeting:read:meeting"),
    _route("PATCH", "/v2/meetings/{meetingId}", "update_meeting", "meeting:update:meeting"),
    _route("DELETE", "/v2/meetings/{meetingId}", "delete_meeting", "meeting:delete:meeting"),
    _route("GET", "/v2/past_meetings/{meetingId}/instances", "past_instances",
           "meeting:read:list_past_instances"),
    _route("GET", "/v2/past_meetings/{meetingUUID}/participants", "past_participants",
           "meeting:read:list_past_participants"),
)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _new_uuid() -> str:
    """Like Zoom's meeting uuids: base64 of 16 random bytes (may hold ``/`` and ``+``)."""
    return base64.b64encode(secrets.token_bytes(16)).decode()


def _zoom_id() -> str:
    """Like Zoom's user and account ids: 22 URL-safe characters."""
    return secrets.token_urlsafe(16)[:22]


def _aware(value: datetime, name: str = "at") -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
    return value.astimezone(UTC)


class ZoomEmulator(LoopbackService):
    """A local Zoom for tests, demos and benchmarks; see the module docstring.

    All state sits behind one lock; the Python API may be called from any thread while the
    server answers. Webhooks are POSTed outside the lock (a receiver may call back)."""

    thread_name = "zoom-emulator"

    def __init__(self, *, port: int = 0) -> None:
        self._port = port
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._clock: datetime | None = None  # None: real time
        self._apps: dict[str, _App] = {}
        self._users: dict[str, _User] = {}
        self._grants_by_access: dict[str, _Grant] = {}
        self._grants_by_refresh: dict[str, _Grant] = {}
        self._codes: dict[str, _Code] = {}
        self._authorize_user: str | None = None
        self._meetings: dict[int, _Meeting] = {}
        self._deleted: set[int] = set()
        self._daily_limit = DAILY_CREATE_UPDATE_LIMIT
        self._daily: dict[tuple[str, str], int] = {}  # (user id, UTC date) -> count
        self._faults: list[_Fault] = []
        self._calls: list[Call] = []
        self._deliveries: list[Delivery] = []
        self._account_id = _zoom_id()
        self._next_participant = 16778240
        self._http = httpx.Client(timeout=5.0)

    # --- Lifecycle and addresses --------------------------------------------------------

    def _new_server(self) -> _Server:
        server = _Server(("127.0.0.1", self._port), _Handler)
        server.emulator = self
        return server

    def stop(self) -> None:
        super().stop()
        self._http.close()
        self._http = httpx.Client(timeout=5.0)  # a restarted emulator can deliver again

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def oauth_base(self) -> str:
        """Like ``https://zoom.us``."""
        return self.url

    @property
    def api_base(self) -> str:
        """Like ``https://api.zoom.us/v2``."""
        return f"{self.url}/v2"

    # --- Clock --------------------------------------------------------------------------

    def now(self) -> datetime:
        with self._lock:
            return self._clock if self._clock is not None else datetime.now(UTC)

    def set_clock(self, at: datetime | None) -> None:
        """Freeze the clock at ``at`` (None: real time again). Nothing falls due; use
        ``advance_to`` to let time pass."""
        with self._lock:
            self._clock = _aware(at) if at is not None else None

    def advance_to(self, at: datetime) -> list[Delivery]:
        """Move the (frozen) clock to ``at`` and apply what fell due on the way: a basic
        host's meeting is ended at start + 40 min. Returns the events that produced."""
        at = _aware(at)
        with self._lock:
            if self._clock is None or at > self._clock:
                self._clock = at
            pending = self._apply_due(at)
        return self._deliver(pending)

    # --- Setup API ----------------------------------------------------------------------

    def register_app(self, client_id: str, client_secret: str, *, webhook_secret_token: str,
                     webhook_url: str | None = None,
                     scopes: tuple[str, ...] | list[str] = DEFAULT_SCOPES) -> None:
        """A user-managed OAuth app; ``scopes`` are what a consent grants."""
        with self._lock:
            self._apps[client_id] = _App(client_id, client_secret, webhook_secret_token,
                                         webhook_url, tuple(scopes))

    def set_webhook_url(self, client_id: str, url: str | None) -> None:
        with self._lock:
            self._apps[client_id].webhook_url = url

    def create_user(self, email: str, *, plan: str = "licensed", first_name: str = "",
                    timezone: str = "UTC") -> str:
        """A Zoom user; ``plan`` "licensed" (type 2) or "basic" (type 1, the free plan:
        its meetings end at 40 minutes). Returns the user id."""
        if plan not in ("licensed", "basic"):
            raise ValueError("plan is 'licensed' or 'basic'")
        with self._lock:
            user = _User(_zoom_id(), email, LICENSED if plan == "licensed" else BASIC,
                         self._account_id, first_name or email.split("@")[0], timezone,
                         pmi=secrets.randbelow(9 * 10**9) + 10**9)
            self._users[user.id] = user
            return user.id

    def set_plan(self, user_id: str, plan: str) -> None:
        with self._lock:
            self._users[user_id].plan = LICENSED if plan == "licensed" else BASIC

    def authorize_as(self, user_id: str | None) -> None:
        """Who ``/oauth/authorize`` approves as (None: refuse, ``error=access_denied``)."""
        with self._lock:
            self._authorize_user = user_id

    def issue_tokens(self, user_id: str, client_id: str) -> JSON:
        """Tokens as if the user had consented (skips the authorize page): the
        ``/oauth/token`` answer."""
        with self._lock:
            return self._issue(user_id, client_id, self._apps[client_id].scopes)

    def expire_tokens(self, user_id: str) -> None:
        """The user's access tokens expire now (refresh tokens stay valid)."""
        with self._lock:
            past = self.now() - timedelta(seconds=1)
            for grant in self._grants_by_access.values():
                if grant.user_id == user_id:
                    grant.expires_at = past

    def revoke(self, user_id: str, client_id: str | None = None) -> list[Delivery]:
        """The user removed the app (every app when ``client_id`` is None): its tokens die
        and ``app_deauthorized`` is sent to the app."""
        with self._lock:
            at = self.now()
            apps = set()
            for grant in list(self._grants_by_access.values()):
                if grant.alive and grant.user_id == user_id \
                        and client_id in (None, grant.client_id):
                    grant.alive = False
                    apps.add(grant.client_id)
            user = self._users[user_id]
            pending = [self._event(app, "app_deauthorized", at, {
                "account_id": user.account_id, "user_id": user.id,
                "deauthorization_time": at.astimezone(UTC).isoformat(
                    timespec="milliseconds").replace("+00:00", "Z"),
                "client_id": app}) for app in sorted(apps)]
        return self._deliver(pending)

    def set_daily_limit(self, limit: int) -> None:
        """Meeting creates + updates per user per UTC day (Zoom's is 100)."""
        with self._lock:
            self._daily_limit = int(limit)

    def fail_next(self, method: str, route_template: str, status: int, *, xml: bool = False,
                  retry_after: str | int | float | None = None,
                  rate_limit_type: str | None = None, code: int | None = None,
                  message: str | None = None, hold_s: float = 0.0) -> None:
        """The next request matching ``method`` and ``route_template`` (Zoom's template,
        with or without ``/v2``: ``/meetings/{meetingId}``) answers ``status`` without
        changing anything: a Zoom-style JSON error body (``xml=True``: the XML one),
        ``Retry-After`` when given, ``X-RateLimit-Type`` (a 429 defaults to ``QPS``).
        ``code`` and ``message`` replace the body's defaults. ``hold_s`` holds the answer
        that long first (longer than a client's timeout: a timeout)."""
        template = route_template if route_template.startswith("/oauth") \
            or route_template.startswith("/v2") else "/v2" + route_template
        with self._lock:
            self._faults.append(_Fault(method.upper(), template, int(status), xml,
                                       None if retry_after is None else str(retry_after),
                                       rate_limit_type or ("QPS" if status == 429 else None),
                                       code, message, float(hold_s)))

    # --- Meeting life (what people do in Zoom) ------------------------------------------

    def start_meeting(self, meeting_id: int, at: datetime | None = None, *,
                      uuid: str | None = None) -> list[Delivery]:
        """The host starts the meeting: a new instance (``uuid`` for tests that need a
        particular one, such as one starting with ``/``) and ``meeting.started``. Starting
        a live meeting changes nothing."""
        with self._lock:
            at = self._moment(at)
            pending = self._apply_due(at)
            meeting = self._meeting_or_key_error(meeting_id)
            if meeting.live is None:
                self._start(meeting, at, uuid, pending)
        return self._deliver(pending)

    def join(self, meeting_id: int, name: str, email: str | None = None,
             at: datetime | None = None, *, zoom_user_id: str = "") -> list[Delivery]:
        """Someone joins (a live meeting; with ``join_before_host`` a meeting not started
        starts first): ``meeting.participant_joined``. Each join is a new participant uuid,
        as in Zoom; a rejoin after leaving is another row in past participants."""
        with self._lock:
            at = self._moment(at)
            pending = self._apply_due(at)
            meeting = self._meeting_or_key_error(meeting_id)
            instance = meeting.live
            if instance is None:
                if not meeting.settings.get("join_before_host"):
                    raise RuntimeError(f"meeting {meeting_id} has not started and does not "
                                       "allow joining before the host")
                instance = self._start(meeting, at, None, pending)
            self._next_participant += 1
            person = _Participant(participant_uuid=_new_uuid().rstrip("="),
                                  user_id=str(self._next_participant), name=name,
                                  email=email, zoom_user_id=zoom_user_id, join_time=at)
            instance.participants.append(person)
            pending.append(self._participant_event(meeting, instance, person,
                                                   "meeting.participant_joined", at))
        return self._deliver(pending)

    def leave(self, meeting_id: int, who: str, at: datetime | None = None) -> list[Delivery]:
        """A participant leaves: ``who`` is their participant uuid, email or name (the one
        in the meeting now). ``meeting.participant_left``."""
        with self._lock:
            at = self._moment(at)
            pending = self._apply_due(at)
            meeting = self._meeting_or_key_error(meeting_id)
            instance = meeting.live
            person = None if instance is None else next(
                (p for p in instance.participants if p.leave_time is None
                 and who in (p.participant_uuid, p.email, p.name)), None)
            if instance is None or person is None:
                raise KeyError(f"{who!r} is not in meeting {meeting_id}")
            person.leave_time = at
            pending.append(self._participant_event(
                meeting, instance, person, "meeting.participant_left", at,
                leave_reason="left the meeting. Reason : left the meeting"))
        return self._deliver(pending)

    def end_meeting(self, meeting_id: int, at: datetime | None = None) -> list[Delivery]:
        """The host ends the meeting for all: everyone still in leaves
        (``meeting.participant_left``), then ``meeting.ended``. Ending a meeting that is
        not live changes nothing."""
        with self._lock:
            at = self._moment(at)
            pending = self._apply_due(at)
            meeting = self._meeting_or_key_error(meeting_id)
            live = meeting.live
            if live is not None:
                pending.extend(self._end(meeting, live, at, "the host ended the meeting"))
        return self._deliver(pending)

    def send_url_validation(self, client_id: str, plain_token: str | None = None
                            ) -> Delivery:
        """Zoom's endpoint check: ``endpoint.url_validation`` to the app's webhook URL. The
        receiver must answer 200 with ``webhooks.url_validation_answer`` for its secret
        token; compare ``Delivery.answer`` with it."""
        with self._lock:
            pending = [self._event(client_id, webhooks.URL_VALIDATION, self.now(),
                                   {"plainToken": plain_token or secrets.token_urlsafe(16)})]
        return self._deliver(pending)[0]

    # --- Views --------------------------------------------------------------------------

    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    @property
    def deliveries(self) -> list[Delivery]:
        with self._lock:
            return list(self._deliveries)

    def meeting(self, meeting_id: int) -> JSON | None:
        """The meeting as ``GET /meetings/{id}`` answers it (None: unknown or deleted)."""
        with self._lock:
            m = self._meetings.get(int(meeting_id))
            return None if m is None else self._meeting_json(m)

    def meeting_ids(self, user_id: str | None = None) -> list[int]:
        with self._lock:
            return [m.id for m in self._meetings.values()
                    if user_id is None or m.host_id == user_id]

    def daily_count(self, user_id: str) -> int:
        """Creates and updates counted today (emulator clock, UTC) for the user."""
        with self._lock:
            return self._daily.get((user_id, self.now().date().isoformat()), 0)

    # --- Internals: time, grants, JSON --------------------------------------------------

    def _moment(self, at: datetime | None) -> datetime:
        """A simulated moment; a later one moves a frozen clock forward."""
        if at is None:
            return self.now()
        at = _aware(at)
        if self._clock is not None and at > self._clock:
            self._clock = at
        return at

    def _issue(self, user_id: str, client_id: str, scopes: tuple[str, ...]) -> JSON:
        now = self.now()
        grant = _Grant(user_id=user_id, client_id=client_id, scopes=scopes,
                       access_token="emu-at-" + secrets.token_urlsafe(32),
                       refresh_token="emu-rt-" + secrets.token_urlsafe(32),
                       expires_at=now + ACCESS_TOKEN_LIFETIME,
                       refresh_expires_at=now + REFRESH_TOKEN_LIFETIME)
        self._grants_by_access[grant.access_token] = grant
        self._grants_by_refresh[grant.refresh_token] = grant
        return {"access_token": grant.access_token, "token_type": "bearer",
                "refresh_token": grant.refresh_token,
                "expires_in": int(ACCESS_TOKEN_LIFETIME.total_seconds()),
                "scope": " ".join(scopes), "api_url": self.url}

    def _meeting_or_key_error(self, meeting_id: int) -> _Meeting:
        meeting = self._meetings.get(int(meeting_id))
        if meeting is None:
            raise KeyError(f"unknown meeting {meeting_id}")
        return meeting

    def _user_json(self, user: _User) -> JSON:
        return {
            "id": user.id, "first_name": user.first_name, "last_name": "",
            "display_name": user.first_name, "email": user.email, "type": user.plan,
            "role_name": "Owner", "pmi": user.pmi, "use_pmi": False,
            "personal_meeting_url": f"https://zoom.us/j/{user.pmi}",
            "timezone": user.timezone, "verified": 1, "dept": "",
            "created_at": "2024-01-01T00:00:00Z", "last_login_time": _iso(self.now()),
            "pic_url": "", "language": "en-US", "phone_number": "", "status": "active",
            "role_id": "0", "account_id": user.account_id, "account_number": 100000001,
            "cluster": "us06", "user_created_at": "2024-01-01T00:00:00Z",
        }

    def _meeting_json(self, m: _Meeting) -> JSON:
        host = self._users[m.host_id]
        live = m.live
        uuid = live.uuid if live else (m.instances[-1].uuid if m.instances
                                       else m.planned_uuid)
        encrypted = base64.urlsafe_b64encode(m.password.encode()).decode().rstrip("=")
        return {
            "uuid": uuid, "id": m.id, "host_id": m.host_id, "host_email": host.email,
            "assistant_id": "", "topic": m.topic, "type": m.type,
            "status": "started" if live else "waiting",
            "start_time": _iso(m.start_time), "duration": m.duration,
            "timezone": m.timezone, "agenda": m.agenda, "created_at": _iso(m.created_at),
            "start_url": f"{self.url}/s/{m.id}?zak=emu-" + secrets.token_urlsafe(12),
            "join_url": f"{self.url}/j/{m.id}?pwd={encrypted}",
            "password": m.password, "h323_password": m.password,
            "pstn_password": m.password, "encrypted_password": encrypted,
            "settings": dict(m.settings), "pre_schedule": False,
        }

    def _count_daily(self, user_id: str) -> None:
        key = (user_id, self.now().date().isoformat())
        used = self._daily.get(key, 0)
        if used >= self._daily_limit:
            raise _Fail(429, {"code": 429, "message": (
                f"You have exceeded the daily rate limit of ({self._daily_limit}) meeting "
                "create/update requests permitted for this particular user. You may resume "
                "these requests at GMT 00:00:00.")},
                {"X-RateLimit-Type": "Daily-limit", "X-RateLimit-Category": "Light",
                 "X-RateLimit-Limit": str(self._daily_limit), "X-RateLimit-Remaining": "0"})
        self._daily[key] = used + 1

    # --- Internals: meeting life and events ---------------------------------------------

    def _start(self, meeting: _Meeting, at: datetime, uuid: str | None,
               pending: list[Delivery]) -> _Instance:
        """A new instance (the first keeps the planned uuid) and ``meeting.started``."""
        if uuid is None:
            uuid = meeting.planned_uuid if not meeting.instances else _new_uuid()
        instance = _Instance(uuid=uuid, start_time=at)
        if self._users[meeting.host_id].plan == BASIC:
            instance.cut_at = at + BASIC_MEETING_LIMIT
        meeting.instances.append(instance)
        pending.append(self._event(meeting.client_id, "meeting.started", at, {
            "account_id": self._users[meeting.host_id].account_id,
            "object": self._event_object(meeting, instance)}))
        return instance

    def _end(self, meeting: _Meeting, instance: _Instance, at: datetime,
             reason: str) -> list[Delivery]:
        out = []
        for person in instance.participants:
            if person.leave_time is None:
                person.leave_time = at
                out.append(self._participant_event(
                    meeting, instance, person, "meeting.participant_left", at,
                    leave_reason=f"left the meeting. Reason : {reason}"))
        instance.end_time = at
        obj = self._event_object(meeting, instance)
        obj["end_time"] = _iso(at)
        out.append(self._event(meeting.client_id, "meeting.ended", at, {
            "account_id": self._users[meeting.host_id].account_id, "object": obj}))
        return out

    def _apply_due(self, at: datetime) -> list[Delivery]:
        """End every basic host's meeting whose 40 minutes passed by ``at``."""
        out: list[Delivery] = []
        for meeting in self._meetings.values():
            live = meeting.live
            if live is not None and live.cut_at is not None and live.cut_at <= at:
                out.extend(self._end(meeting, live, live.cut_at,
                                     "the meeting time limit ended"))
        return out

    def _event_object(self, meeting: _Meeting, instance: _Instance) -> JSON:
        return {"id": str(meeting.id), "uuid": instance.uuid, "host_id": meeting.host_id,
                "topic": meeting.topic, "type": meeting.type,
                "start_time": _iso(instance.start_time), "timezone": meeting.timezone,
                "duration": meeting.duration}

    def _participant_event(self, meeting: _Meeting, instance: _Instance,
                           person: _Participant, name: str, at: datetime,
                           leave_reason: str | None = None) -> Delivery:
        participant: JSON = {
            "user_id": person.user_id, "user_name": person.name, "id": person.zoom_user_id,
            "participant_uuid": person.participant_uuid, "join_time": _iso(person.join_time),
            "email": person.email or "", "participant_user_id": person.zoom_user_id,
            "registrant_id": "", "customer_key": "", "phone_number": "",
        }
        if leave_reason is not None and person.leave_time is not None:
            participant["leave_time"] = _iso(person.leave_time)
            participant["leave_reason"] = leave_reason
        obj = self._event_object(meeting, instance)
        obj["participant"] = participant
        return self._event(meeting.client_id, name, at, {
            "account_id": self._users[meeting.host_id].account_id, "object": obj})

    def _event(self, client_id: str, name: str, at: datetime, payload: JSON) -> Delivery:
        """A signed event (delivered by ``_deliver`` once the lock is released)."""
        app = self._apps[client_id]
        event = {"event": name, "payload": payload,
                 "event_ts": int(at.timestamp() * 1000)}
        body = json.dumps(event, separators=(",", ":")).encode()
        timestamp = str(int(at.timestamp()))
        headers = {"content-type": "application/json",
                   webhooks.TIMESTAMP_HEADER: timestamp,
                   webhooks.SIGNATURE_HEADER: webhooks.sign(app.webhook_secret_token,
                                                            timestamp, body),
                   "user-agent": "Zoom Marketplace/1.0a"}
        delivery = Delivery(client_id, event, body, headers)
        self._deliveries.append(delivery)
        return delivery

    def _deliver(self, pending: list[Delivery]) -> list[Delivery]:
        """POST each event to its app's webhook URL, in order, without the lock held."""
        for delivery in pending:
            with self._lock:
                url = self._apps[delivery.client_id].webhook_url
            if url is None:
                continue
            try:
                response = self._http.post(url, content=delivery.body,
                                           headers=delivery.headers)
            except httpx.HTTPError as exc:
                delivery.error = type(exc).__name__
                continue
            delivery.status = response.status_code
            try:
                delivery.answer = response.json()
            except ValueError:
                delivery.answer = response.text
        return pending

    # --- HTTP dispatch ------------------------------------------------------------------

    def _handle(self, method: str, raw_path: str, headers: Mapping[str, str],
                body: bytes) -> tuple[_Answer, list[Delivery]]:
        """Answer one request; ``headers`` have lower-case names."""
        arrived = time.time()
        parts = urlsplit(raw_path)
        route: _Route | None = None
        params: dict[str, str] = {}
        known_path = False
        for candidate in _ROUTES:
            match = candidate.regex.match(parts.path)
            if match is None:
                continue
            known_path = True
            if candidate.method == method:
                route, params = candidate, match.groupdict()
                break
        with self._lock:
            pending = self._apply_due(self.now())
            if route is None:
                answer = _Answer(405 if known_path else 404, {
                    "code": 405 if known_path else 404,
                    "message": "Method not allowed." if known_path else "Not Found."})
                template = parts.path
            else:
                template = route.template
                try:
                    answer = self._process(route, method, params, parts.query, headers, body)
                except _Fail as exc:
                    answer = _Answer(exc.status, exc.body, exc.headers)
                if route.scope is not None:
                    answer.headers.setdefault("X-RateLimit-Category", "Light")
            self._calls.append(Call(arrived, method, template, answer.status))
        return answer, pending

    def _process(self, route: _Route, method: str, params: dict[str, str], query: str,
                 headers: Mapping[str, str], raw: bytes) -> _Answer:
        fault = self._take_fault(method, route.template)
        if fault is not None:
            return fault
        ctx = _Ctx(method, route.template, params, dict(parse_qsl(query)), raw)
        if route.scope is None:
            if route.handler == "oauth_authorize":
                return self._h_oauth_authorize(ctx)
            return self._h_oauth_token(ctx, headers.get("authorization") or "",
                                       headers.get("content-type") or "")
        scheme, _, token = (headers.get("authorization") or "").partition(" ")
        grant = self._grants_by_access.get(token) if scheme.lower() == "bearer" else None
        if grant is None or not grant.alive:
            raise _err(401, 124, "Invalid access token.")
        if grant.expires_at <= self.now():
            raise _err(401, 124, "Access token is expired.")
        if route.scope not in grant.scopes and _CLASSIC.get(route.scope) not in grant.scopes:
            raise _err(400, 4711, "Invalid access token, does not contain scopes:"
                                  f"[{route.scope}].")
        ctx.grant = grant
        handler: Callable[[_Ctx], _Answer] = getattr(self, "_h_" + route.handler)
        return handler(ctx)

    def _take_fault(self, method: str, template: str) -> _Answer | None:
        for i, fault in enumerate(self._faults):
            if (fault.method, fault.route) != (method, template):
                continue
            del self._faults[i]
            code = fault.code if fault.code is not None else fault.status
            message = {429: "You have reached the maximum per-second rate limit for this "
                            "API. Try again later.",
                       500: "Internal Error.", 502: "Bad Gateway.",
                       503: "Service Unavailable.", 504: "Gateway Timeout."}.get(
                fault.status, "Request failed.") if fault.message is None else fault.message
            out_headers: dict[str, str] = {}
            if fault.retry_after is not None:
                out_headers["Retry-After"] = fault.retry_after
            if fault.rate_limit_type is not None:
                out_headers["X-RateLimit-Type"] = fault.rate_limit_type
            if fault.xml:
                xml = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
                       f"<error><code>{code}</code><message>{message}</message></error>")
                out_headers["Content-Type"] = "application/xml;charset=UTF-8"
                return _Answer(fault.status, raw=xml.encode(), headers=out_headers,
                               hold=fault.hold_s)
            return _Answer(fault.status, {"code": code, "message": message}, out_headers,
                           hold=fault.hold_s)
        return None

    @staticmethod
    def _json_body(ctx: _Ctx) -> JSON:
        try:
            body = json.loads(ctx.raw.decode("utf-8")) if ctx.raw else None
        except (UnicodeDecodeError, ValueError):
            body = None
        if not isinstance(body, dict):
            raise _err(400, 300, "Request Body should be a valid JSON object.")
        return body

    # --- Route handlers: OAuth ----------------------------------------------------------

    def _h_oauth_authorize(self, ctx: _Ctx) -> _Answer:
        q = ctx.query

        def page(text: str) -> _Answer:
            return _Answer(400, raw=text.encode(),
                           headers={"Content-Type": "text/plain; charset=utf-8"})

        app = self._apps.get(q.get("client_id", ""))
        if app is None:
            return page("Invalid client_id (call emu.register_app first).")
        redirect_uri = q.get("redirect_uri")
        if not redirect_uri:
            return page("Invalid redirect: redirect_uri is missing.")
        params: dict[str, str] = {}
        uid = q.get("emulator_user") or self._authorize_user
        if q.get("response_type") != "code":
            params["error"] = "unsupported_response_type"
        elif uid is None:
            params["error"] = "access_denied"
        elif uid not in self._users:
            return page(f"No such user {uid}.")
        else:
            code = secrets.token_urlsafe(24)
            self._codes[code] = _Code(app.client_id, uid, redirect_uri,
                                      self.now() + AUTH_CODE_LIFETIME)
            params["code"] = code
        if "state" in q:
            params["state"] = q["state"]
        sep = "&" if "?" in redirect_uri else "?"
        return _Answer(302, raw=b"", headers={"Location": redirect_uri + sep
                                              + urlencode(params)})

    def _h_oauth_token(self, ctx: _Ctx, authorization: str, content_type: str) -> _Answer:
        def oauth_error(status: int, error: str, reason: str) -> _Answer:
            return _Answer(status, {"reason": reason, "error": error})

        scheme, _, credential = authorization.partition(" ")
        client_id = secret = ""
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(credential, validate=True).decode()
            except ValueError:
                decoded = ":"
            client_id, _, secret = decoded.partition(":")
        app = self._apps.get(client_id)
        if app is None or not secrets.compare_digest(app.client_secret.encode(),
                                                     secret.encode()):
            return oauth_error(401, "invalid_client", "Invalid client_id or client_secret")
        form: dict[str, str] = dict(parse_qsl(ctx.raw.decode("utf-8", errors="replace"),
                                              keep_blank_values=True))
        form.update(ctx.query)  # Zoom also takes the parameters in the query string
        now = self.now()
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            code = self._codes.pop(form.get("code", ""), None)
            if code is None or code.expires_at <= now or code.client_id != client_id:
                return oauth_error(400, "invalid_grant", "Invalid authorization code")
            if form.get("redirect_uri") != code.redirect_uri:
                return oauth_error(400, "invalid_request", "Redirect URI mismatch.")
            return _Answer(200, self._issue(code.user_id, client_id, app.scopes))
        if grant_type == "refresh_token":
            token = form.get("refresh_token", "")
            old = self._grants_by_refresh.get(token)
            if old is None or not old.alive or old.client_id != client_id \
                    or old.refresh_expires_at <= now:
                return oauth_error(400, "invalid_grant", "Invalid Token!")
            del self._grants_by_refresh[token]
            return _Answer(200, self._issue(old.user_id, client_id, old.scopes))
        return oauth_error(400, "unsupported_grant_type", "Unsupported grant type")

    # --- Route handlers: API ------------------------------------------------------------

    def _me(self, ctx: _Ctx) -> _User:
        if ctx.grant is None:  # _process sets it on every API route
            raise _err(401, 124, "Invalid access token.")
        return self._users[ctx.grant.user_id]

    def _h_get_me(self, ctx: _Ctx) -> _Answer:
        return _Answer(200, self._user_json(self._me(ctx)))

    def _meeting(self, ctx: _Ctx) -> _Meeting:
        raw = unquote(ctx.params["meetingId"])
        meeting = self._meetings.get(int(raw)) if raw.isdigit() else None
        if meeting is None or meeting.host_id != self._me(ctx).id:
            raise _not_found(raw)
        return meeting

    def _check_fields(self, body: JSON, *, creating: bool) -> JSON:
        """Zoom's validation of the fields coachgate sends; the valid values, parsed."""
        out: JSON = {}
        if "topic" in body or creating:
            topic = body.get("topic", "")
            if not isinstance(topic, str) or len(topic) > MAX_TOPIC:
                raise _invalid("topic")
            out["topic"] = topic
        if "type" in body or creating:
            kind = body.get("type", 2)
            if kind not in (1, 2) or isinstance(kind, bool):
                raise _invalid("type")
            out["type"] = kind
        if "timezone" in body:
            tz = body["timezone"]
            try:
                if not isinstance(tz, str) or not tz:
                    raise ValueError(tz)
                ZoneInfo(tz)
            except (ValueError, ZoneInfoNotFoundError):
                raise _invalid("timezone") from None
            out["timezone"] = tz
        if "start_time" in body:
            value = body["start_time"]
            if not isinstance(value, str) or not _START_TIME.fullmatch(value):
                raise _invalid("start_time")
            try:
                parsed = datetime.fromisoformat(value.removesuffix("Z"))
            except ValueError:
                raise _invalid("start_time") from None
            if value.endswith("Z"):
                out["start_time"] = parsed.replace(tzinfo=UTC)
            else:  # local time in the meeting's time zone
                out["_local_start"] = parsed
        if "duration" in body:
            duration = body["duration"]
            if not isinstance(duration, int) or isinstance(duration, bool) or duration < 1:
                raise _invalid("duration")
            out["duration"] = duration
        if "password" in body:
            password = body["password"]
            if not isinstance(password, str) or not _PASSWORD.fullmatch(password):
                raise _invalid("password", "Password can only have a maximum length of 10 "
                                           "characters and only contain alphanumeric "
                                           "characters and the @, -, _, and * characters.")
            out["password"] = password
        if "agenda" in body:
            agenda = body["agenda"]
            if not isinstance(agenda, str) or len(agenda) > MAX_AGENDA:
                raise _invalid("agenda")
            out["agenda"] = agenda
        if "settings" in body:
            settings = body["settings"]
            if not isinstance(settings, dict):
                raise _invalid("settings")
            for key in ("waiting_room", "join_before_host"):
                if key in settings and not isinstance(settings[key], bool):
                    raise _invalid(f"settings.{key}")
            out["settings"] = settings
        return out

    def _h_create_meeting(self, ctx: _Ctx) -> _Answer:
        user = self._me(ctx)
        target = unquote(ctx.params["userId"])
        if target not in ("me", user.id, user.email):
            raise _err(404, 1001, f"User does not exist: {target}.")
        fields = self._check_fields(self._json_body(ctx), creating=True)
        self._count_daily(user.id)
        now = self.now()
        tz = fields.get("timezone", user.timezone)
        start = fields.get("start_time")
        if "_local_start" in fields:
            start = fields["_local_start"].replace(tzinfo=ZoneInfo(tz)).astimezone(UTC)
        if start is None or fields["type"] == 1:
            start = now
        settings: JSON = {"host_video": False, "participant_video": False,
                          "join_before_host": False, "waiting_room": False,
                          "mute_upon_entry": False, "approval_type": 2, "audio": "both",
                          "auto_recording": "none", "meeting_authentication": False,
                          "jbh_time": 0}
        settings.update(fields.get("settings", {}))
        meeting_id = secrets.randbelow(9 * 10**10) + 10**10  # 11 digits, like Zoom's
        while meeting_id in self._meetings or meeting_id in self._deleted:
            meeting_id = secrets.randbelow(9 * 10**10) + 10**10
        password = fields.get("password")
        if password is None:  # Zoom makes a passcode when none is given
            alphabet = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
            password = "".join(secrets.choice(alphabet) for _ in range(6))
        meeting = _Meeting(id=meeting_id, host_id=user.id,
                           client_id=ctx.grant.client_id if ctx.grant else "",
                           topic=fields["topic"] or "Zoom meeting", type=fields["type"],
                           start_time=start, duration=fields.get("duration", 60),
                           timezone=tz, password=password, agenda=fields.get("agenda", ""),
                           settings=settings, created_at=now, planned_uuid=_new_uuid())
        self._meetings[meeting_id] = meeting
        return _Answer(201, self._meeting_json(meeting))

    def _h_list_meetings(self, ctx: _Ctx) -> _Answer:
        """The user's scheduled meetings (``type=scheduled``, the default, or ``upcoming``:
        not yet ended), ``page_size`` (at most 300) per page with ``next_page_token``."""
        user = self._me(ctx)
        target = unquote(ctx.params["userId"])
        if target not in ("me", user.id, user.email):
            raise _err(404, 1001, f"User does not exist: {target}.")
        kind = ctx.query.get("type", "scheduled")
        if kind not in ("scheduled", "live", "upcoming", "upcoming_meetings",
                        "previous_meetings"):
            raise _invalid("type")
        try:
            size = min(int(ctx.query.get("page_size", "30")), 300)
            offset = int(ctx.query.get("next_page_token") or "0")
        except ValueError:
            raise _invalid("page_size") from None
        mine = sorted((m for m in self._meetings.values() if m.host_id == user.id),
                      key=lambda m: (m.start_time, m.id))
        if kind == "live":
            mine = [m for m in mine if m.live is not None]
        elif kind.startswith("upcoming"):
            now = self.now()
            mine = [m for m in mine if m.live is not None or m.start_time
                    + timedelta(minutes=m.duration) > now]
        page = mine[offset:offset + max(size, 1)]
        more = offset + len(page) < len(mine)
        rows = [{k: v for k, v in self._meeting_json(m).items()
                 if k in ("uuid", "id", "host_id", "topic", "type", "start_time", "duration",
                          "timezone", "agenda", "created_at", "join_url")} for m in page]
        return _Answer(200, {"page_size": size, "total_records": len(mine),
                             "next_page_token": str(offset + len(page)) if more else "",
                             "meetings": rows})

    def _h_get_meeting(self, ctx: _Ctx) -> _Answer:
        return _Answer(200, self._meeting_json(self._meeting(ctx)))

    def _h_update_meeting(self, ctx: _Ctx) -> _Answer:
        meeting = self._meeting(ctx)
        fields = self._check_fields(self._json_body(ctx), creating=False)
        self._count_daily(meeting.host_id)
        if "timezone" in fields:
            meeting.timezone = fields["timezone"]
        if "_local_start" in fields:
            fields["start_time"] = fields["_local_start"].replace(
                tzinfo=ZoneInfo(meeting.timezone)).astimezone(UTC)
        for name in ("topic", "type", "start_time", "duration", "password", "agenda"):
            if name in fields:
                setattr(meeting, name, fields[name])
        if "settings" in fields:
            meeting.settings.update(fields["settings"])
        return _Answer(204)

    def _h_delete_meeting(self, ctx: _Ctx) -> _Answer:
        meeting = self._meeting(ctx)
        if meeting.live is not None:
            raise _err(400, 3002, "Sorry, you cannot delete this meeting since it is in "
                                  "progress.")
        del self._meetings[meeting.id]
        self._deleted.add(meeting.id)
        return _Answer(204)

    def _h_past_instances(self, ctx: _Ctx) -> _Answer:
        meeting = self._meeting(ctx)
        return _Answer(200, {"meetings": [
            {"uuid": i.uuid, "start_time": _iso(i.start_time)}
            for i in meeting.instances if i.end_time is not None]})

    def _past_instance(self, ctx: _Ctx) -> _Instance:
        """The instance a ``meetingUUID`` segment names, decoded as Zoom's gateway does:
        once by routing, and the second time only for a uuid that needed double encoding.
        A numeric id means the meeting's last ended instance."""
        value = unquote(ctx.params["meetingUUID"])
        if "%" in value:
            value = unquote(value)
        elif value.startswith("/") or "//" in value:
            # Singly encoded, the gateway would have split it as path segments.
            raise _not_found(value)
        user = self._me(ctx)
        ended = [(m, i) for m in self._meetings.values() if m.host_id == user.id
                 for i in m.instances if i.end_time is not None]
        if value.isdigit():
            for meeting, instance in reversed(ended):
                if meeting.id == int(value):
                    return instance
        for _meeting, instance in ended:
            if instance.uuid == value:
                return instance
        raise _not_found(value)

    def _h_past_participants(self, ctx: _Ctx) -> _Answer:
        if self._me(ctx).plan == BASIC:  # Zoom: "Paid account on a Pro or higher plan"
            raise _err(400, 200, "Only available for paid users.")
        instance = self._past_instance(ctx)
        try:
            page_size = min(max(int(ctx.query.get("page_size", "30")), 1), MAX_PAGE_SIZE)
            offset = int(ctx.query.get("next_page_token") or "0")
        except ValueError:
            raise _invalid("page_size") from None
        rows = []
        people = {p.email or p.zoom_user_id or p.name for p in instance.participants}
        # Zoom's reference: "the API doesn't return results if there's only one
        # participant in a meeting" (a coach alone: the student did not come).
        for p in instance.participants if len(people) > 1 else ():
            left = p.leave_time or instance.end_time or p.join_time
            rows.append({"id": p.zoom_user_id, "user_id": p.user_id, "registrant_id": "",
                         "name": p.name, "user_email": p.email or "",
                         "join_time": _iso(p.join_time), "leave_time": _iso(left),
                         "duration": int((left - p.join_time).total_seconds()),
                         "failover": False, "status": "in_meeting",
                         "internal_user": bool(p.zoom_user_id)})
        page = rows[offset:offset + page_size]
        more = offset + page_size < len(rows)
        return _Answer(200, {
            "page_count": max(1, -(-len(rows) // page_size)), "page_size": page_size,
            "total_records": len(rows),
            "next_page_token": str(offset + page_size) if more else "",
            "participants": page})


# --- HTTP server --------------------------------------------------------------------------


class _Server(TrackingServer):
    emulator: ZoomEmulator


class _Handler(TrackedHandler):
    server_version = "zoom-emulator"

    def _serve(self) -> None:
        emulator = cast(_Server, self.server).emulator
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        answer, pending = emulator._handle(self.command, self.path, headers, raw)
        if answer.hold > 0:
            emulator._stopping.wait(answer.hold)
        if answer.raw is not None:
            payload = answer.raw
        elif answer.body is not None:
            payload = json.dumps(answer.body, separators=(",", ":")).encode()
            answer.headers.setdefault("Content-Type", "application/json;charset=UTF-8")
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
        if pending:  # a 40-minute cut that fell due while answering
            emulator._deliver(pending)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:  # quiet; calls are in .calls
        log.debug("zoom emulator: " + format, *args)


# --- Standalone ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m coachgate.integrations.zoom.emulator",
        description="A local Zoom emulator: registers an app and a user, prints one JSON "
                    "line (oauth_base, api_base, client id and secret), serves until Ctrl-C.")
    parser.add_argument("--port", type=int, default=8766, help="0 picks a free port")
    parser.add_argument("--client-id", default="coachgate-zoom-emulator")
    parser.add_argument("--client-secret", default="coachgate-zoom-emulator-secret")
    parser.add_argument("--webhook-secret-token", default="coachgate-zoom-webhook-secret")
    parser.add_argument("--webhook-url", default=None)
    parser.add_argument("--user", default="coach@example.com",
                        help="the user /oauth/authorize approves as")
    parser.add_argument("--plan", choices=("licensed", "basic"), default="licensed")
    args = parser.parse_args(argv)

    emu = ZoomEmulator(port=args.port).start()

    def describe() -> dict[str, Any]:
        emu.register_app(args.client_id, args.client_secret,
                         webhook_secret_token=args.webhook_secret_token,
                         webhook_url=args.webhook_url)
        user_id = emu.create_user(args.user, plan=args.plan)
        emu.authorize_as(user_id)
        return {"oauth_base": emu.oauth_base, "api_base": emu.api_base,
                "client_id": args.client_id, "client_secret": args.client_secret,
                "webhook_secret_token": args.webhook_secret_token, "user_id": user_id}

    return emu.serve_until_signal(describe)


if __name__ == "__main__":
    sys.exit(main())

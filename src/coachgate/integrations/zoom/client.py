"""A thin, synchronous Zoom client on httpx: OAuth (``ZoomOAuth``) and the REST API as one
user (``ZoomClient``).

It speaks Zoom's routes and JSON as they are (dicts come back parsed; meeting ids are
integers, uuids strings) and adds:

* **Errors sorted by what to do about them.** ``RetryLater`` (429, any 5xx, timeouts,
  connection errors) with ``retry_at`` when the answer says when: ``Retry-After``
  (seconds or a date), else for Zoom's per-user daily limit on creating and updating
  meetings (``X-RateLimit-Type: Daily-limit``, 100 a day, reset at 00:00 UTC and often
  sent without ``Retry-After``; Zoom's reference also lists it as an HTTP 300 with code
  300, recognised by its wording) the next 00:00 UTC. ``ActionRequired`` (someone must act:
  401, 403, other 4xx), with ``TokenRejected`` (401: refresh the access token, once),
  ``ZoomNotFound`` (404 or code 3001 "Meeting does not exist": for a delete, the meeting
  is already gone) and ``InvalidGrant`` (the OAuth grant is dead: the refresh token was
  used already, expired or the app was removed; the user must connect Zoom again) under
  it. Zoom's numeric error code is read from its JSON body ``{"code", "message"}`` or from
  the XML body (``<error><code>…</code><message>…</message></error>``) it sometimes sends.
* **A 429 with a short Retry-After is waited out** (at most ``max_retry_wait`` seconds, a
  couple of times): Zoom's per-second limits clear quickly and a 429 means nothing was
  done. Nothing else is retried here.
* **Every HTTP attempt reported** to ``on_call`` as a ``CallRecord`` (failures and
  transport errors included).

Tokens and client secrets go only into the Authorization header; they are never logged,
put in an exception or shown by ``repr`` (``TokenSet`` hides them too).
"""

from __future__ import annotations

import base64
import html
import logging
import re
import secrets
import string
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from coachgate.integrations.calls import CallRecord as CallRecord  # callers import it here
from coachgate.integrations.calls import report_call

log = logging.getLogger(__name__)

JSON = dict[str, Any]

# Zoom error codes the client sorts on.
VALIDATION_FAILED = 300
INVALID_ACCESS_TOKEN = 124
USER_NOT_FOUND = 1001
MEETING_NOT_FOUND = 3001
NOT_FOUND_CODES = frozenset({MEETING_NOT_FOUND, USER_NOT_FOUND})

DAILY_LIMIT = "Daily-limit"
#: How many 429s one call waits through before giving up with RetryLater.
MAX_RATE_LIMIT_RETRIES = 2

#: Zoom's passcode rule: at most 10 characters from these.
PASSWORD_ALPHABET = string.ascii_letters + string.digits + "@-_*"
MAX_PASSWORD_LENGTH = 10
_PASSWORD = re.compile(r"[A-Za-z0-9@\-_*]{1,10}")

#: The daily create/update limit as Zoom's reference words it under HTTP 300 ("A maximum of
#: {n} meetings can be created/updated for a single user in one day") and as its 429 does
#: ("You have exceeded the daily rate limit ...").
_DAILY_LIMIT_MESSAGE = re.compile(r"for a single user in one day|daily rate limit",
                                  re.IGNORECASE)
_XML_CODE = re.compile(r"<code>\s*(-?\d+)\s*</code>", re.IGNORECASE)
_XML_MESSAGE = re.compile(r"<message>(.*?)</message>", re.IGNORECASE | re.DOTALL)


# --- Errors ---------------------------------------------------------------------------


class ZoomError(Exception):
    """A Zoom call failed. ``status`` is the HTTP status (None: no answer), ``code``
    Zoom's numeric error code (None when the answer had none), ``route`` the templated
    route (``/meetings/{meetingId}``)."""

    def __init__(self, message: str = "Zoom call failed", *, status: int | None = None,
                 code: int | None = None, method: str = "", route: str = "") -> None:
        self.message = message
        self.status = status
        self.code = code
        self.method = method
        self.route = route
        super().__init__(message)

    def __str__(self) -> str:
        where = f"{self.method} {self.route}".strip()
        status = "no answer" if self.status is None else str(self.status)
        code = "" if self.code is None else f" (code {self.code})"
        prefix = f"{where}: " if where else ""
        return f"{prefix}{status}{code}: {self.message}"


class RetryLater(ZoomError):
    """Not now: rate limited (429), Zoom failing (5xx), a timeout or a connection error.
    ``retry_at`` (aware UTC) when the answer says when; ``rate_limit_type`` is Zoom's
    ``X-RateLimit-Type`` (``Daily-limit``, ``QPS``, ``Per-second-Limit``...) on a 429."""

    def __init__(self, message: str = "Zoom asked to retry later", *,
                 retry_at: datetime | None = None, rate_limit_type: str | None = None,
                 **kwargs: Any) -> None:
        self.retry_at = retry_at
        self.rate_limit_type = rate_limit_type
        super().__init__(message, **kwargs)


class ActionRequired(ZoomError):
    """Retrying cannot fix this; someone must act (a rejected token, a missing scope, a
    malformed request, a plan that does not allow it)."""


class TokenRejected(ActionRequired):
    """401: the access token is expired, revoked or wrong. Refresh it (once); if the
    refresh fails with InvalidGrant, the user must connect Zoom again."""


class ZoomNotFound(ActionRequired):
    """404, or code 3001 (meeting does not exist) / 1001 (user does not exist): for a
    delete, the thing is already gone."""


class InvalidGrant(ActionRequired):
    """OAuth ``invalid_grant``: the code or refresh token is used, expired or revoked
    (Zoom rotates refresh tokens: an old one is dead once a refresh succeeded)."""


# --- Records --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenSet:
    """What ``/oauth/token`` granted. Store ``refresh_token`` at once: Zoom rotates it on
    every refresh and the old one stops working. ``repr`` hides both tokens."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: datetime
    scopes: frozenset[str]

    def expires_within(self, seconds: float, *, now: datetime) -> bool:
        return self.expires_at - now <= timedelta(seconds=seconds)


# --- Passwords ------------------------------------------------------------------------


def valid_password(p: str) -> bool:
    """Zoom's passcode rule: 1 to 10 characters, only ``a-z A-Z 0-9 @ - _ *``."""
    return isinstance(p, str) and _PASSWORD.fullmatch(p) is not None


def new_password(length: int = MAX_PASSWORD_LENGTH) -> str:
    """A random passcode Zoom accepts (letters and digits only: a student may have to type
    it, and symbols are what people mistype)."""
    if not 1 <= length <= MAX_PASSWORD_LENGTH:
        raise ValueError(f"a Zoom passcode has 1 to {MAX_PASSWORD_LENGTH} characters")
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def zoom_time(value: datetime) -> str:
    """An aware datetime as Zoom's UTC form, ``YYYY-MM-DDTHH:MM:SSZ``."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("start_time must be timezone-aware")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def encode_uuid(uuid: str) -> str:
    """A meeting uuid as a path segment: URL-encoded, twice when it starts with ``/`` or
    contains ``//`` (Zoom's documented rule; its gateway decodes once before routing)."""
    once = quote(uuid, safe="")
    if uuid.startswith("/") or "//" in uuid:
        return quote(once, safe="")
    return once


# --- Answers --------------------------------------------------------------------------


def _next_utc_midnight(now: datetime) -> datetime:
    day = now.astimezone(UTC).date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _parse_retry_after(value: str | None, now: datetime) -> datetime | None:
    """``Retry-After`` as an instant: seconds, an HTTP date, or an ISO 8601 time (Zoom has
    sent each)."""
    if not value:
        return None
    value = value.strip()
    try:
        return now + timedelta(seconds=max(float(value), 0.0))
    except ValueError:
        pass
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _error_body(response: httpx.Response) -> tuple[int | None, str | None, str | None]:
    """(code, message, OAuth error) from a JSON or XML error body."""
    text = response.text
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        raw = body.get("code")
        code = raw if isinstance(raw, int) and not isinstance(raw, bool) else None
        if isinstance(raw, str) and raw.lstrip("-").isdigit():
            code = int(raw)
        message = body.get("message") or body.get("reason") or body.get("error_description")
        oauth = body.get("error") if isinstance(body.get("error"), str) else None
        errors = body.get("errors")
        if isinstance(errors, list) and errors:  # "Validation Failed." alone says little
            details = [f"{e.get('field')}: {e.get('message')}" for e in errors[:3]
                       if isinstance(e, dict)]
            message = f"{message or 'Validation Failed.'} " + "; ".join(details)
        return code, str(message) if message else None, oauth
    if "<error" in text.lower():
        code_match = _XML_CODE.search(text)
        message_match = _XML_MESSAGE.search(text)
        return (int(code_match.group(1)) if code_match else None,
                html.unescape(message_match.group(1)).strip() if message_match else None,
                None)
    return None, text[:200] or None, None


def _sort_error(response: httpx.Response, method: str, route: str, now: datetime) -> ZoomError:
    status = response.status_code
    code, message, oauth = _error_body(response)
    message = message or response.reason_phrase or f"HTTP {status}"
    kwargs: dict[str, Any] = {"status": status, "code": code, "method": method,
                              "route": route}
    if status == 429:
        kind = response.headers.get("X-RateLimit-Type")
        retry_at = _parse_retry_after(response.headers.get("Retry-After"), now)
        if retry_at is None and kind is not None and kind.lower() == DAILY_LIMIT.lower():
            retry_at = _next_utc_midnight(now)
        return RetryLater(message, retry_at=retry_at, rate_limit_type=kind, **kwargs)
    if status in (300, 400) and _DAILY_LIMIT_MESSAGE.search(message):
        return RetryLater(message, retry_at=_next_utc_midnight(now),
                          rate_limit_type=DAILY_LIMIT, **kwargs)
    if status >= 500 or status == 408:
        return RetryLater(message, retry_at=_parse_retry_after(
            response.headers.get("Retry-After"), now), **kwargs)
    if oauth is not None:  # the token endpoint: a dead grant, or a wrong client or form
        return InvalidGrant(message, **kwargs) if oauth == "invalid_grant" \
            else ActionRequired(message, **kwargs)
    if status == 404 or code in NOT_FOUND_CODES:
        return ZoomNotFound(message, **kwargs)
    if status == 401:
        return TokenRejected(message, **kwargs)
    # 400, 403, 409... and the HTTP 300 Zoom's reference lists for some validation errors.
    return ActionRequired(message, **kwargs)


def _redacted(error: ZoomError, secrets_sent: tuple[str, ...]) -> ZoomError:
    for secret in secrets_sent:
        if secret and secret in error.message:
            error.message = error.message.replace(secret, "[redacted]")
            error.args = (error.message,)
    return error


def _utc_now() -> datetime:
    return datetime.now(UTC)


class _Http:
    """What ZoomOAuth and ZoomClient share: one httpx client, the attempt loop, the
    records and the error sorting."""

    def __init__(self, base: str, *, http: httpx.Client | None, timeout: float,
                 on_call: Callable[[CallRecord], None] | None,
                 clock: Callable[[], datetime], max_retry_wait: float) -> None:
        self.base = base.rstrip("/")
        self._own = http is None
        self._http = http if http is not None else httpx.Client(
            timeout=httpx.Timeout(timeout), follow_redirects=False,
            headers={"User-Agent": "coachgate (zoom)"})
        self.on_call = on_call
        self.clock = clock
        self.max_retry_wait = max_retry_wait

    def close(self) -> None:
        if self._own:
            self._http.close()

    def request(self, method: str, route: str, path: str, *, headers: Mapping[str, str],
                json: Any = None, data: Mapping[str, str] | None = None,
                params: Mapping[str, str | int] | None = None,
                redact: tuple[str, ...] = ()) -> httpx.Response:
        """One call (a 429 with a short Retry-After is waited out). ``redact``: secrets
        the request carried, cut out of any error message (Zoom's OAuth errors can echo
        the code or token they refuse)."""
        rate_limited = 0
        while True:
            at = time.time()
            started = time.monotonic()
            try:
                response = self._http.request(method, self.base + path, json=json, data=data,
                                              params=params, headers=dict(headers))
            except httpx.TimeoutException as exc:
                self._report(method, route, 0, started, at)
                raise RetryLater(f"timed out: {type(exc).__name__}", method=method,
                                 route=route) from exc
            except httpx.RequestError as exc:
                self._report(method, route, 0, started, at)
                raise RetryLater(f"connection failed: {type(exc).__name__}", method=method,
                                 route=route) from exc
            self._report(method, route, response.status_code, started, at)
            if 200 <= response.status_code < 300:
                return response
            error = _sort_error(response, method, route, self.clock())
            if isinstance(error, RetryLater) and response.status_code == 429 \
                    and error.retry_at is not None and rate_limited < MAX_RATE_LIMIT_RETRIES:
                wait = (error.retry_at - self.clock()).total_seconds()
                if wait <= self.max_retry_wait:
                    rate_limited += 1
                    log.info("zoom: 429 on %s %s, retrying in %.3fs", method, route, wait)
                    time.sleep(max(wait, 0.0))
                    continue
            raise _redacted(error, redact)

    def _report(self, method: str, route: str, status: int, started: float, at: float) -> None:
        report_call(self.on_call, log, "zoom", method, route, status, started, at)


def _json(response: httpx.Response, method: str, route: str) -> JSON:
    try:
        body = response.json()
    except ValueError as exc:
        raise RetryLater("answer is not JSON", status=response.status_code, method=method,
                         route=route) from exc
    if not isinstance(body, dict):
        raise RetryLater("answer is not a JSON object", status=response.status_code,
                         method=method, route=route)
    return body


# --- OAuth ----------------------------------------------------------------------------


class ZoomOAuth:
    """Zoom's OAuth for a user-managed app (https://developers.zoom.us/docs/integrations/
    oauth/): the consent URL, the code exchange and refreshes. ``oauth_base`` is
    ``https://zoom.us`` or an emulator's ``oauth_base``."""

    def __init__(self, client_id: str, client_secret: str, *,
                 oauth_base: str = "https://zoom.us", http: httpx.Client | None = None,
                 timeout: float = 10.0, on_call: Callable[[CallRecord], None] | None = None,
                 ) -> None:
        self.client_id = client_id
        self._secret = client_secret
        self.oauth_base = oauth_base.rstrip("/")
        self._http = _Http(self.oauth_base, http=http, timeout=timeout, on_call=on_call,
                           clock=_utc_now, max_retry_wait=0.0)

    def __repr__(self) -> str:
        return f"ZoomOAuth({self.client_id!r}, oauth_base={self.oauth_base!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ZoomOAuth:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def authorize_url(self, redirect_uri: str, state: str) -> str:
        """Where to send the coach to connect Zoom; Zoom redirects back to ``redirect_uri``
        with ``code`` and ``state``."""
        query = urlencode({"response_type": "code", "client_id": self.client_id,
                           "redirect_uri": redirect_uri, "state": state})
        return f"{self.oauth_base}/oauth/authorize?{query}"

    def exchange_code(self, code: str, redirect_uri: str, *, now: datetime) -> TokenSet:
        """Trade the authorization code (once) for tokens; ``redirect_uri`` must be the one
        the authorize URL carried."""
        return self._token({"grant_type": "authorization_code", "code": code,
                            "redirect_uri": redirect_uri}, now)

    def refresh(self, refresh_token: str, *, now: datetime) -> TokenSet:
        """New tokens. Zoom rotates the refresh token: store the returned one before using
        the access token; reusing the old one raises InvalidGrant."""
        return self._token({"grant_type": "refresh_token", "refresh_token": refresh_token},
                           now)

    def _token(self, form: dict[str, str], now: datetime) -> TokenSet:
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("now must be timezone-aware")
        route = "/oauth/token"
        basic = base64.b64encode(f"{self.client_id}:{self._secret}".encode()).decode()
        response = self._http.request(
            "POST", route, route, data=form, headers={"Authorization": f"Basic {basic}"},
            redact=(self._secret, basic, form.get("code", ""), form.get("refresh_token", "")))
        body = _json(response, "POST", route)
        access, refresh = body.get("access_token"), body.get("refresh_token")
        if not isinstance(access, str) or not isinstance(refresh, str):
            raise RetryLater("token answer without tokens", status=response.status_code,
                             method="POST", route=route)
        expires_in = body.get("expires_in")
        seconds = float(expires_in) if isinstance(expires_in, int | float) else 3600.0
        scope = body.get("scope")
        return TokenSet(access_token=access, refresh_token=refresh,
                        expires_at=now.astimezone(UTC) + timedelta(seconds=seconds),
                        scopes=frozenset(scope.split()) if isinstance(scope, str)
                        else frozenset())


# --- REST -----------------------------------------------------------------------------


class ZoomClient:
    """Zoom's REST API as the user who granted ``access_token`` (``/users/me``...).

    ``api_base`` is ``https://api.zoom.us/v2`` or an emulator's ``api_base``. ``clock``
    gives the time used to turn ``Retry-After`` and the daily limit into ``retry_at``.
    ``max_retry_wait`` bounds the sleep for a 429 (longer raises RetryLater). ``http`` is
    a shared httpx.Client (its timeouts apply and ``close`` leaves it open); without it
    the client makes its own with ``timeout`` per attempt. It keeps no state between
    calls: one client may be shared by threads."""

    def __init__(self, access_token: str, *, api_base: str = "https://api.zoom.us/v2",
                 http: httpx.Client | None = None,
                 on_call: Callable[[CallRecord], None] | None = None,
                 timeout: float = 10.0, max_retry_wait: float = 1.0,
                 clock: Callable[[], datetime] = _utc_now) -> None:
        self._token = access_token
        self.api_base = api_base.rstrip("/")
        self._http = _Http(self.api_base, http=http, timeout=timeout, on_call=on_call,
                           clock=clock, max_retry_wait=max_retry_wait)

    def __repr__(self) -> str:
        return f"ZoomClient(api_base={self.api_base!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ZoomClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- Users --------------------------------------------------------------------------

    def me(self) -> JSON:
        """The user: ``id``, ``email``, ``type`` (1 basic, 2 licensed), ``timezone``..."""
        return self._call("GET", "/users/me")

    # --- Meetings -----------------------------------------------------------------------

    def create_meeting(self, *, topic: str, start_time: datetime, duration_minutes: int,
                       timezone: str, password: str, waiting_room: bool,
                       join_before_host: bool, agenda: str = "") -> JSON:
        """A scheduled meeting (type 2) starting at ``start_time`` (sent in UTC;
        ``timezone`` only changes how Zoom shows it). Returns ``id``, ``uuid``,
        ``join_url``, ``start_url`` (the host's: a secret), ``password``, ``start_time``,
        ``duration``... Counts towards the user's 100 creates and updates a day."""
        body: JSON = {
            "topic": topic, "type": 2, "start_time": zoom_time(start_time),
            "duration": int(duration_minutes), "timezone": timezone, "password": password,
            "agenda": agenda,
            "settings": {"waiting_room": bool(waiting_room),
                         "join_before_host": bool(join_before_host)},
        }
        return self._call("POST", "/users/me/meetings", json=body)

    def get_meeting(self, meeting_id: int | str) -> JSON:
        return self._call("GET", "/meetings/{meetingId}", meetingId=meeting_id)

    def update_meeting(self, meeting_id: int | str, **changes: Any) -> None:
        """Change fields (``topic``, ``start_time`` as an aware datetime, ``duration``,
        ``password``, ``settings``...); Zoom answers 204. Counts towards the daily limit."""
        if isinstance(changes.get("start_time"), datetime):
            changes["start_time"] = zoom_time(changes["start_time"])
        self._call("PATCH", "/meetings/{meetingId}", json=changes, meetingId=meeting_id)

    def delete_meeting(self, meeting_id: int | str) -> None:
        """Delete; ZoomNotFound (code 3001) when it is already gone."""
        self._call("DELETE", "/meetings/{meetingId}", meetingId=meeting_id)

    def meeting_instances(self, meeting_id: int | str) -> list[JSON]:
        """The ended instances of a meeting: ``[{"uuid", "start_time"}]``; a meeting
        started again after it ended has one instance per start."""
        body = self._call("GET", "/past_meetings/{meetingId}/instances",
                          meetingId=meeting_id)
        meetings = body.get("meetings")
        return [m for m in meetings if isinstance(m, dict)] if isinstance(meetings, list) \
            else []

    def list_meetings(self, *, kind: str = "upcoming", page_size: int = 300) -> list[JSON]:
        """The user's meetings (``GET /users/me/meetings``, ``type=kind``), every page: what
        a caller looks through to adopt a meeting it created but did not record."""
        out: list[JSON] = []
        token = ""
        seen: set[str] = set()
        route = "/users/{userId}/meetings"
        path = route.replace("{userId}", "me")
        while True:
            params: dict[str, str | int] = {"type": kind, "page_size": page_size}
            if token:
                params["next_page_token"] = token
            body = self._call_path("GET", route, path, params=params)
            rows = body.get("meetings")
            if isinstance(rows, list):
                out.extend(r for r in rows if isinstance(r, dict))
            token = body.get("next_page_token") or ""
            if not isinstance(token, str) or not token or token in seen:
                return out
            seen.add(token)

    def past_participants(self, meeting_uuid: str, *, page_size: int = 300) -> list[JSON]:
        """Everyone who joined an ended instance (one row per join: ``id``, ``name``,
        ``user_email``, ``join_time``, ``leave_time``, ``duration`` in seconds), every page.
        The uuid is encoded as Zoom asks (``encode_uuid``)."""
        out: list[JSON] = []
        token = ""
        seen: set[str] = set()
        route = "/past_meetings/{meetingUUID}/participants"
        path = route.replace("{meetingUUID}", encode_uuid(meeting_uuid))
        while True:
            params: dict[str, str | int] = {"page_size": page_size}
            if token:
                params["next_page_token"] = token
            body = self._call_path("GET", route, path, params=params)
            rows = body.get("participants")
            if isinstance(rows, list):
                out.extend(r for r in rows if isinstance(r, dict))
            token = body.get("next_page_token") or ""
            if not isinstance(token, str) or not token or token in seen:
                return out  # the last page (or a token seen already: no endless loop)
            seen.add(token)

    # --- Machinery ----------------------------------------------------------------------

    def _call(self, method: str, route: str, *, json: Any = None,
              **params: int | str) -> JSON:
        path = route
        for name, value in params.items():
            path = path.replace("{" + name + "}", quote(str(value), safe=""))
        return self._call_path(method, route, path, json=json)

    def _call_path(self, method: str, route: str, path: str, *, json: Any = None,
                   params: Mapping[str, str | int] | None = None) -> JSON:
        response = self._http.request(method, route, path, json=json, params=params,
                                      headers={"Authorization": f"Bearer {self._token}"},
                                      redact=(self._token,))
        if response.status_code == 204 or not response.content:
            return {}
        return _json(response, method, route)

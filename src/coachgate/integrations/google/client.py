"""A thin, synchronous client for Google's OAuth 2.0 and the Meet REST API v2, on httpx.

Two classes: ``GoogleOAuth`` (the consent URL, code exchange, refresh, revoke and the
OpenID Connect userinfo: https://developers.google.com/identity/protocols/oauth2/web-server)
and ``MeetClient`` (spaces and conference records as one user, with their access token:
https://developers.google.com/workspace/meet/api/reference/rest/v2). Google's JSON comes
back parsed and unchanged (camelCase names, resource names such as ``spaces/jQCFfuBOdN5z``,
RFC 3339 timestamps as strings; ``parse_timestamp`` reads them). The client adds:

* **Errors sorted by what to do about them.** ``RetryLater`` (429 or RESOURCE_EXHAUSTED, a
  403 whose reason is a rate limit, any 5xx, 408, timeouts, connection errors: try again
  at ``retry_at`` when Google sent Retry-After, else later); ``ActionRequired`` (retrying
  cannot help: 403 PERMISSION_DENIED such as a scope the user did not grant, other 4xx),
  with ``Unauthenticated`` (401: the access token expired or was revoked; refresh it and
  try once more), ``GoogleNotFound`` (404: for a cleanup, the thing is already gone) and
  ``InvalidGrant`` (OAuth ``invalid_grant``: the refresh token was revoked or expired, or
  the code was used; the user must connect their Google account again) under it.
* **Nothing retried.** Google's quotas are per minute and per project; a caller (a task)
  that gets RetryLater tries again later, and says when in its own row.
* **Every HTTP attempt reported** to ``on_call`` as a ``CallRecord`` (failures and
  transport errors included), with the route templated (``/spaces/{space}``), never the
  resource names or tokens.

Tokens and the client secret are sent only in headers and form bodies; they are never
logged, put in an exception or shown by ``repr`` (``TokenSet``'s included).

Meet v2 has no way to delete a space. A cancelled session's space is closed instead:
``close_space`` ends its conference if one is on (everyone in it is removed) and sets its
access type to RESTRICTED, so only invitees (none: the app never invites) join without
knocking, and only the space's owner can let anyone else in. The link keeps resolving;
Google expires unused meeting codes on its own.

``create_space`` takes no request id: one that timed out may have made a space, and trying
again makes another. That is harmless (an unused space costs nothing and expires); store a
space's name only from an answer.

One client may be shared by threads (httpx's client is thread-safe).
"""

from __future__ import annotations

import email.utils
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from coachgate.integrations.calls import CallRecord as CallRecord  # callers import it here
from coachgate.integrations.calls import report_call

log = logging.getLogger(__name__)

JSON = dict[str, Any]
Clock = Callable[[], datetime]

#: Create spaces and read what happens in them (only spaces this app created).
MEET_SPACE_CREATED = "https://www.googleapis.com/auth/meetings.space.created"
#: Read any of the user's spaces and conferences (not asked by coachgate).
MEET_SPACE_READONLY = "https://www.googleapis.com/auth/meetings.space.readonly"
OPENID = "openid"
#: Asked as ``email``; Google answers it as the full URL in a token's ``scope``.
EMAIL = "email"
USERINFO_EMAIL = "https://www.googleapis.com/auth/userinfo.email"
#: What coachgate asks for: who the user is, and Meet spaces created by coachgate.
DEFAULT_SCOPES = (OPENID, EMAIL, MEET_SPACE_CREATED)

ACCESS_TYPES = ("OPEN", "TRUSTED", "RESTRICTED")

# Error reasons that mean "too many requests" although the status is 403 (older Google
# APIs answer rate limits so, in ``error.errors[].reason``).
_RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded",
                                 "RATE_LIMIT_EXCEEDED", "quotaExceeded"})
_SPACE_NAME = re.compile(r"^spaces/[A-Za-z0-9_-]+$")
_RECORD_NAME = re.compile(r"^conferenceRecords/[A-Za-z0-9_-]+$")
_PARTICIPANT_NAME = re.compile(r"^conferenceRecords/[A-Za-z0-9_-]+/participants/[A-Za-z0-9_-]+$")
#: A list stops after this many pages (a server that loops its page tokens must not make
#: a task run forever).
MAX_PAGES = 200
_MESSAGE_LIMIT = 300


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")


# --- Errors ---------------------------------------------------------------------------


class GoogleError(Exception):
    """A Google call failed. ``status`` is the HTTP status (None: no answer); ``reason``
    Google's ``error.status`` (``NOT_FOUND``, ``PERMISSION_DENIED``, ``UNAUTHENTICATED``,
    ``RESOURCE_EXHAUSTED``...) or, from the OAuth endpoints, ``error`` (``invalid_grant``,
    ``invalid_client``); ``details`` the finer reasons Google lists
    (``error.details[].reason`` of an ErrorInfo such as ``ACCESS_TOKEN_SCOPE_INSUFFICIENT``,
    and ``error.errors[].reason``); ``route`` the templated route (``/spaces/{space}``)."""

    def __init__(
        self, message: str = "Google call failed", *, status: int | None = None,
        reason: str | None = None, details: Iterable[str] = (), method: str = "",
        route: str = "",
    ) -> None:
        self.message = message
        self.status = status
        self.reason = reason
        self.details = tuple(details)
        self.method = method
        self.route = route
        super().__init__(message)

    def __str__(self) -> str:
        where = f"{self.method} {self.route}".strip()
        status = "no answer" if self.status is None else str(self.status)
        reason = "" if self.reason is None else f" {self.reason}"
        details = f" ({', '.join(self.details)})" if self.details else ""
        prefix = f"{where}: " if where else ""
        return f"{prefix}{status}{reason}{details}: {self.message}"


class RetryLater(GoogleError):
    """Not now: rate limited or out of quota, Google failing (5xx), a timeout or a
    connection error. ``retry_at`` (aware UTC) and ``retry_after`` (seconds) when Google
    sent Retry-After."""

    def __init__(self, message: str = "Google asked to retry later", *,
                 retry_at: datetime | None = None, retry_after: float | None = None,
                 **kwargs: Any) -> None:
        self.retry_at = retry_at
        self.retry_after = retry_after
        super().__init__(message, **kwargs)


class ActionRequired(GoogleError):
    """Retrying cannot fix this; someone must act (a scope not granted, a space of
    someone else, a malformed request)."""


class Unauthenticated(ActionRequired):
    """401: the access token is expired, revoked or malformed. Refresh it and try once
    more; if the refresh fails (InvalidGrant), the user must connect again."""


class GoogleNotFound(ActionRequired):
    """404: no such space, conference record or participant (for a cleanup: done)."""


class InvalidGrant(ActionRequired):
    """OAuth ``invalid_grant``: the refresh token was revoked (the user removed the app,
    changed their password) or expired, or an authorization code was used twice or is
    stale. The user must go through consent again."""


# --- Records --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, repr=False)
class TokenSet:
    """What the token endpoint granted. ``refresh_token`` is None for an online grant
    (no ``access_type=offline``); after a refresh it is the one passed in unless Google
    sent a new one. ``scopes`` are those granted, which may be fewer than asked (the
    consent screen lets the user untick them)."""

    access_token: str
    refresh_token: str | None
    expires_at: datetime
    scopes: frozenset[str] = field(default_factory=frozenset)

    def __repr__(self) -> str:
        refresh = "yes" if self.refresh_token else "no"
        return (f"TokenSet(expires_at={self.expires_at.isoformat()}, "
                f"scopes={sorted(self.scopes)!r}, refresh_token={refresh})")

    def expires_within(self, now: datetime, seconds: float = 60.0) -> bool:
        """True when the access token is expired at ``now`` or will be ``seconds`` later
        (refresh before calling, not after a 401)."""
        return self.expires_at <= now + timedelta(seconds=seconds)

    def has_scopes(self, *scopes: str) -> bool:
        return all(s in self.scopes for s in scopes)


def parse_timestamp(value: str) -> datetime:
    """An RFC 3339 timestamp as Google writes it (``2024-01-02T03:04:05.123456789Z``,
    up to nanoseconds) as an aware UTC datetime (microseconds kept)."""
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)",
                         value.strip())
    if match is None:
        raise ValueError(f"not an RFC 3339 timestamp: {value[:40]!r}")
    base, fraction, zone = match.groups()
    micro = (fraction or "0")[:6].ljust(6, "0")
    parsed = datetime.fromisoformat(f"{base}.{micro}{'+00:00' if zone == 'Z' else zone}")
    return parsed.astimezone(UTC)


# --- Machinery shared by both clients -------------------------------------------------


def _retry_after(headers: httpx.Headers, now: datetime) -> tuple[datetime | None, float | None]:
    value = headers.get("Retry-After")
    if not value:
        return None, None
    value = value.strip()
    try:
        seconds = max(float(value), 0.0)
    except ValueError:
        try:
            at = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None, None
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        at = at.astimezone(UTC)
        return at, max((at - now).total_seconds(), 0.0)
    return now + timedelta(seconds=seconds), seconds


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _error(response: httpx.Response, method: str, route: str, now: datetime) -> GoogleError:
    status = response.status_code
    body = _body(response)
    reason: str | None = None
    details: list[str] = []
    message = response.reason_phrase or f"HTTP {status}"
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):  # the Google API shape: {"error": {code, message, status}}
            if isinstance(err.get("status"), str):
                reason = err["status"]
            message = str(err.get("message") or message)
            for key in ("details", "errors"):
                items = err.get(key)
                if isinstance(items, list):
                    details += [d["reason"] for d in items
                                if isinstance(d, dict) and isinstance(d.get("reason"), str)]
        elif isinstance(err, str):  # the OAuth shape: {"error", "error_description"}
            reason = err
            message = str(body.get("error_description") or err)
    message = message[:_MESSAGE_LIMIT]
    kwargs: dict[str, Any] = {"status": status, "reason": reason, "details": details,
                              "method": method, "route": route}
    if (status >= 500 or status in (408, 429) or reason == "RESOURCE_EXHAUSTED"
            or (status == 403 and _RATE_LIMIT_REASONS.intersection(details))):
        retry_at, retry_after = _retry_after(response.headers, now)
        return RetryLater(message, retry_at=retry_at, retry_after=retry_after, **kwargs)
    if reason == "invalid_grant":
        return InvalidGrant(message, **kwargs)
    if status == 401:
        return Unauthenticated(message, **kwargs)
    if status == 404:
        return GoogleNotFound(message, **kwargs)
    return ActionRequired(message, **kwargs)


class _Transport:
    """One httpx client (given or owned), the clock, the on_call hook, and ``send``."""

    def __init__(self, name: str, http: httpx.Client | None, timeout: float,
                 on_call: Callable[[CallRecord], None] | None, clock: Clock) -> None:
        self._name = name
        self._owned = http is None
        self._http = http if http is not None else httpx.Client(
            timeout=httpx.Timeout(timeout), follow_redirects=False,
            headers={"User-Agent": "coachgate (httpx)"})
        self.on_call = on_call
        self.clock = clock

    def close(self) -> None:
        if self._owned:
            self._http.close()

    def send(self, method: str, url: str, route: str, *, headers: Mapping[str, str] | None = None,
             params: Mapping[str, str] | None = None, json: Any = None,
             data: Mapping[str, str] | None = None) -> Any:
        """One attempt: the parsed JSON answer (None when empty), or a GoogleError."""
        at = time.time()
        started = time.monotonic()
        try:
            response = self._http.request(method, url, headers=headers, params=params,
                                          json=json, data=data)
        except httpx.TimeoutException as exc:
            self._report(method, route, 0, started, at)
            raise RetryLater(f"timed out: {type(exc).__name__}", method=method,
                             route=route) from exc
        except httpx.LocalProtocolError as exc:  # nothing sent: this request is malformed
            self._report(method, route, 0, started, at)
            raise ActionRequired(f"request not sendable: {type(exc).__name__}", method=method,
                                 route=route) from exc
        except httpx.RequestError as exc:
            self._report(method, route, 0, started, at)
            raise RetryLater(f"connection failed: {type(exc).__name__}", method=method,
                             route=route) from exc
        self._report(method, route, response.status_code, started, at)
        if response.status_code >= 400:
            error = _error(response, method, route, self.clock())
            log.info("%s: %s", self._name, error)
            raise error
        if response.status_code >= 300:
            raise ActionRequired(f"unexpected redirect ({response.status_code})",
                                 status=response.status_code, method=method, route=route)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise RetryLater("answer is not JSON", status=response.status_code, method=method,
                             route=route) from exc

    def _report(self, method: str, route: str, status: int, started: float, at: float) -> None:
        report_call(self.on_call, log, self._name, method, route, status, started, at)


# --- OAuth ----------------------------------------------------------------------------


class GoogleOAuth:
    """Google's OAuth 2.0 for a web server application, with the app's client id and
    secret (sent in the form body, as Google documents). ``now`` is passed to the token
    calls so that ``expires_at`` follows the caller's clock (and the emulator's)."""

    def __init__(
        self, client_id: str, client_secret: str, *,
        auth_base: str = "https://accounts.google.com",
        token_url: str = "https://oauth2.googleapis.com/token",  # noqa: S107 (a URL)
        revoke_url: str = "https://oauth2.googleapis.com/revoke",
        userinfo_url: str = "https://openidconnect.googleapis.com/v1/userinfo",
        http: httpx.Client | None = None, timeout: float = 10.0,
        on_call: Callable[[CallRecord], None] | None = None, clock: Clock = _utcnow,
    ) -> None:
        self.client_id = client_id
        self._secret = client_secret
        self.auth_base = auth_base.rstrip("/")
        self.token_url = token_url
        self.revoke_url = revoke_url
        self.userinfo_url = userinfo_url
        self._t = _Transport("google-oauth", http, timeout, on_call, clock)

    def __repr__(self) -> str:
        return f"GoogleOAuth(client_id={self.client_id!r}, auth_base={self.auth_base!r})"

    def close(self) -> None:
        self._t.close()

    def __enter__(self) -> GoogleOAuth:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def authorize_url(self, redirect_uri: str, state: str,
                      scopes: Iterable[str] = DEFAULT_SCOPES, *,
                      login_hint: str | None = None) -> str:
        """Where to send the user. ``access_type=offline`` asks for a refresh token and
        ``prompt=consent`` makes Google issue one again on a second connection (without it
        Google only issues one the first time); ``include_granted_scopes`` keeps earlier
        grants of this app in the new token."""
        params = {"client_id": self.client_id, "redirect_uri": redirect_uri,
                  "response_type": "code", "scope": " ".join(scopes), "state": state,
                  "access_type": "offline", "prompt": "consent",
                  "include_granted_scopes": "true"}
        if login_hint:
            params["login_hint"] = login_hint
        return f"{self.auth_base}/o/oauth2/v2/auth?{urlencode(params, quote_via=quote)}"

    def exchange_code(self, code: str, redirect_uri: str, *, now: datetime) -> TokenSet:
        """Trade the ``code`` of the redirect for tokens (InvalidGrant: used or stale)."""
        _require_aware(now)
        answer = self._token({"grant_type": "authorization_code", "code": code,
                              "redirect_uri": redirect_uri})
        return self._token_set(answer, now, None)

    def refresh(self, refresh_token: str, *, now: datetime) -> TokenSet:
        """A new access token. Google keeps the refresh token (the answer usually has
        none): the one passed in is kept then. InvalidGrant: revoked or expired."""
        _require_aware(now)
        answer = self._token({"grant_type": "refresh_token", "refresh_token": refresh_token})
        return self._token_set(answer, now, refresh_token)

    def revoke(self, token: str) -> None:
        """Revoke a refresh token (or an access token) and the grant behind it. An
        already revoked token answers 400 ``invalid_token``: that is done, not an error."""
        try:
            self._t.send("POST", self.revoke_url, "/revoke", data={"token": token})
        except ActionRequired as exc:
            if exc.status == 400 and exc.reason == "invalid_token":
                return
            raise

    def userinfo(self, access_token: str) -> JSON:
        """OpenID Connect userinfo: ``sub`` (the stable Google account id; a Meet
        participant's ``signedinUser.user`` is ``users/<sub>``), ``email``,
        ``email_verified``, and ``name``/``picture`` with the profile scope."""
        result: JSON = self._t.send("GET", self.userinfo_url, "/v1/userinfo",
                                    headers={"Authorization": f"Bearer {access_token}"})
        return result

    def _token(self, form: dict[str, str]) -> JSON:
        form = {**form, "client_id": self.client_id, "client_secret": self._secret}
        answer = self._t.send("POST", self.token_url, "/token", data=form)
        if not isinstance(answer, dict) or not isinstance(answer.get("access_token"), str):
            raise RetryLater("token answer without access_token", status=200, method="POST",
                             route="/token")
        return answer

    @staticmethod
    def _token_set(answer: JSON, now: datetime, refresh_token: str | None) -> TokenSet:
        expires_in = answer.get("expires_in")
        seconds = float(expires_in) if isinstance(expires_in, int | float | str) else 3600.0
        new_refresh = answer.get("refresh_token")
        scope = answer.get("scope")
        return TokenSet(
            access_token=answer["access_token"],
            refresh_token=new_refresh if isinstance(new_refresh, str) and new_refresh
            else refresh_token,
            expires_at=now.astimezone(UTC) + timedelta(seconds=seconds),
            scopes=frozenset(scope.split()) if isinstance(scope, str) else frozenset())


# --- Meet -----------------------------------------------------------------------------


def _check(pattern: re.Pattern[str], name: str, what: str) -> str:
    if not isinstance(name, str) or not pattern.fullmatch(name):
        raise ValueError(f"not a {what} name: {str(name)[:60]!r}")
    return name


class MeetClient:
    """The Meet REST API v2 as one user (``Authorization: Bearer <access token>``).

    ``api_base`` is ``https://meet.googleapis.com/v2`` or an emulator's. Resource names are
    checked before they go into a path (``spaces/<id>``, ``conferenceRecords/<id>``...);
    anything else is a ValueError, never a request (so is an empty access token). Lists
    follow ``nextPageToken`` and return every item."""

    def __init__(
        self, access_token: str, *, api_base: str = "https://meet.googleapis.com/v2",
        http: httpx.Client | None = None, timeout: float = 10.0,
        on_call: Callable[[CallRecord], None] | None = None, clock: Clock = _utcnow,
        page_size: int | None = None,
    ) -> None:
        if not access_token or access_token != access_token.strip():
            raise ValueError("an access token is required (no spaces around it)")
        self.api_base = api_base.rstrip("/")
        self._token = access_token
        self.page_size = page_size
        self._t = _Transport("google-meet", http, timeout, on_call, clock)

    def __repr__(self) -> str:
        return f"MeetClient({self.api_base!r})"

    def close(self) -> None:
        self._t.close()

    def __enter__(self) -> MeetClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- Spaces -------------------------------------------------------------------------

    def create_space(self, config: Mapping[str, Any] | None = None) -> JSON:
        """A new space: ``{"name": "spaces/…", "meetingUri", "meetingCode", "config":
        {"accessType", "entryPointAccess", ...}}``. ``config`` is a SpaceConfig
        (``{"accessType": "OPEN"}``); Google fills in what is left out."""
        body: JSON = {"config": dict(config)} if config else {}
        result: JSON = self._call("POST", "/spaces", "/spaces", json=body)
        return result

    def get_space(self, name: str) -> JSON:
        """A space by ``spaces/<id>`` (or ``spaces/<meeting code>``), with
        ``activeConference.conferenceRecord`` while a conference is on."""
        _check(_SPACE_NAME, name, "space")
        result: JSON = self._call("GET", f"/{name}", "/spaces/{space}")
        return result

    def patch_space(self, name: str, config: Mapping[str, Any],
                    update_mask: Iterable[str] | str) -> JSON:
        """Change the fields of ``config`` named by ``update_mask`` (paths such as
        ``config.accessType``); returns the space."""
        _check(_SPACE_NAME, name, "space")
        mask = update_mask if isinstance(update_mask, str) else ",".join(update_mask)
        result: JSON = self._call("PATCH", f"/{name}", "/spaces/{space}",
                                  params={"updateMask": mask},
                                  json={"name": name, "config": dict(config)})
        return result

    def end_active_conference(self, name: str) -> None:
        """End the conference going on in the space (everyone is removed; a later join
        starts a new conference record). Google answers 400 FAILED_PRECONDITION when none
        is on: callers ending a session treat ``ActionRequired`` with that reason as
        done (``end_conference_if_active`` does)."""
        _check(_SPACE_NAME, name, "space")
        self._call("POST", f"/{name}:endActiveConference",
                   "/spaces/{space}:endActiveConference", json={})

    def end_conference_if_active(self, name: str) -> bool:
        """End the active conference; False when there was none (nothing to do)."""
        try:
            self.end_active_conference(name)
        except ActionRequired as exc:
            if exc.status == 400 and exc.reason == "FAILED_PRECONDITION":
                return False
            raise
        return True

    def close_space(self, name: str) -> JSON:
        """What coachgate does with a cancelled session's space, since Meet v2 cannot
        delete one: end its conference if any, then make it RESTRICTED (only invitees join
        without knocking; the app invites nobody). Returns the space."""
        self.end_conference_if_active(name)
        return self.patch_space(name, {"accessType": "RESTRICTED"}, "config.accessType")

    # --- Conference records -------------------------------------------------------------

    def conference_records(self, space_name: str | None = None) -> list[JSON]:
        """Every conference record (newest first, as Google orders them), those of
        ``space_name`` when given: ``{"name": "conferenceRecords/…", "space", "startTime",
        "endTime" (absent while on), "expireTime"}``. A space has one record per
        conference held in it."""
        params: dict[str, str] = {}
        if space_name is not None:
            _check(_SPACE_NAME, space_name, "space")
            params["filter"] = f'space.name = "{space_name}"'
        return self._list("/conferenceRecords", "/conferenceRecords", "conferenceRecords",
                          params)

    def get_conference_record(self, name: str) -> JSON:
        _check(_RECORD_NAME, name, "conference record")
        result: JSON = self._call("GET", f"/{name}", "/conferenceRecords/{conferenceRecord}")
        return result

    def participants(self, record_name: str) -> list[JSON]:
        """Everyone who joined the conference: ``{"name", "earliestStartTime",
        "latestEndTime" (absent while in), and one of "signedinUser": {"user":
        "users/<sub>", "displayName"}, "anonymousUser": {"displayName"}, "phoneUser":
        {"displayName"}}``."""
        _check(_RECORD_NAME, record_name, "conference record")
        return self._list(f"/{record_name}/participants",
                          "/conferenceRecords/{conferenceRecord}/participants",
                          "participants", {})

    def participant_sessions(self, participant_name: str) -> list[JSON]:
        """Each time the participant joined from a device: ``{"name", "startTime",
        "endTime" (absent while in)}``."""
        _check(_PARTICIPANT_NAME, participant_name, "participant")
        return self._list(
            f"/{participant_name}/participantSessions",
            "/conferenceRecords/{conferenceRecord}/participants/{participant}"
            "/participantSessions", "participantSessions", {})

    # --- Machinery ----------------------------------------------------------------------

    def _call(self, method: str, path: str, route: str, *,
              params: Mapping[str, str] | None = None, json: Any = None) -> Any:
        return self._t.send(method, self.api_base + path, route, params=params, json=json,
                            headers={"Authorization": f"Bearer {self._token}"})

    def _list(self, path: str, route: str, key: str, params: Mapping[str, str]) -> list[JSON]:
        out: list[JSON] = []
        query = dict(params)
        if self.page_size is not None:
            query["pageSize"] = str(self.page_size)
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            page = self._call("GET", path, route, params=query) or {}
            items = page.get(key) if isinstance(page, dict) else None
            if isinstance(items, list):
                out.extend(i for i in items if isinstance(i, dict))
            token = page.get("nextPageToken") if isinstance(page, dict) else None
            if not isinstance(token, str) or not token:
                return out
            if token in seen:
                raise RetryLater("the same page token came back twice", status=200,
                                 method="GET", route=route)
            seen.add(token)
            query["pageToken"] = token
        raise RetryLater(f"more than {MAX_PAGES} pages", status=200, method="GET", route=route)

"""A thin, synchronous Discord REST client on httpx.

It speaks Discord's routes and JSON as they are (dicts and lists come back parsed, ids stay
strings) and adds three things only:

* **Errors sorted by what to do about them.** ``RetryLater`` (429 beyond what the client
  waits for, any 5xx, timeouts, connection errors: try again later), ``ActionRequired``
  (someone must act: 401, 403, unknown guild, other 4xx), with ``LimitReached`` (a guild
  limit: channels, roles, a full category) and ``DiscordNotFound`` (unknown channel, role,
  member or user: callers deleting something may treat it as done) under it.
* **Rate limits honoured** (https://discord.com/developers/docs/topics/rate-limits): buckets
  learned from ``X-RateLimit-*`` headers, per bucket and major parameter (guild_id,
  channel_id, webhook_id). A call whose bucket is empty waits for the reset when that is at
  most ``max_retry_wait`` seconds away, else raises ``RetryLater`` without sending. A 429 is
  retried after ``retry_after`` (a few times at most) under the same bound; a global 429
  holds back every route of this client until it passes; a 429 whose headers show room
  in the bucket (a hidden limit, such as renaming a channel) holds back nothing else.
  Repeated 4xx are what gets an IP banned, so nothing else is retried here.
* **Every HTTP attempt reported** to ``on_call`` as a ``CallRecord`` (429s, failures and
  transport errors included; a call refused locally because its bucket is empty sends
  nothing and reports nothing).

One client may be shared by threads. The bot token is sent only in the Authorization
header; it is never logged, put in an exception or shown by ``repr``.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from coachgate.integrations.calls import CallRecord as CallRecord  # callers import it here
from coachgate.integrations.calls import report_call

log = logging.getLogger(__name__)

JSON = dict[str, Any]

#: Route parameters that split a bucket per resource (Discord's "major parameters").
MAJOR_PARAMETERS = ("guild_id", "channel_id", "webhook_id")

# Discord JSON error codes the client sorts on.
UNKNOWN_CHANNEL = 10003
UNKNOWN_GUILD = 10004
UNKNOWN_MEMBER = 10007
UNKNOWN_MESSAGE = 10008
UNKNOWN_OVERWRITE = 10009
UNKNOWN_ROLE = 10011
UNKNOWN_USER = 10013
MAX_ROLES = 30005
MAX_CHANNELS = 30013
MISSING_ACCESS = 50001
MISSING_PERMISSIONS = 50013
INVALID_FORM_BODY = 50035

NOT_FOUND_CODES = frozenset({UNKNOWN_CHANNEL, UNKNOWN_MEMBER, UNKNOWN_MESSAGE,
                             UNKNOWN_OVERWRITE, UNKNOWN_ROLE, UNKNOWN_USER})
#: Form-error codes (inside a 50035 answer) that mean a limit, not a malformed request.
LIMIT_FORM_CODES = frozenset({"CHANNEL_PARENT_MAX_CHANNELS"})

#: How many 429s one call sleeps through before giving up with RetryLater.
MAX_RATE_LIMIT_RETRIES = 4
#: Discord truncates audit-log reasons at 512 characters.
MAX_REASON_LENGTH = 512

_PLACEHOLDER = re.compile(r"\{(\w+)\}")


# --- Errors ---------------------------------------------------------------------------


class DiscordError(Exception):
    """A Discord call failed. ``status`` is the HTTP status (None: no answer), ``code``
    Discord's JSON error code (None when the answer had none), ``route`` the templated
    route (``/guilds/{guild_id}/channels``), ``errors`` the form errors of a 50035."""

    def __init__(
        self, message: str = "Discord call failed", *, status: int | None = None,
        code: int | None = None, method: str = "", route: str = "",
        errors: Mapping[str, Any] | None = None,
    ) -> None:
        self.message = message
        self.status = status
        self.code = code
        self.method = method
        self.route = route
        self.errors = dict(errors) if errors else None
        super().__init__(message)

    def __str__(self) -> str:
        where = f"{self.method} {self.route}".strip()
        status = "no answer" if self.status is None else str(self.status)
        code = "" if self.code is None else f" (code {self.code})"
        prefix = f"{where}: " if where else ""
        return f"{prefix}{status}{code}: {self.message}"


class RetryLater(DiscordError):
    """Not now: rate limited beyond what the client waits for, Discord failing (5xx), a
    timeout or a connection error. ``retry_after`` (seconds) when Discord or the client's
    bucket state says how long."""

    def __init__(self, message: str = "Discord asked to retry later", *,
                 retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)


class ActionRequired(DiscordError):
    """Retrying cannot fix this; someone must act (bad token, missing permission, unknown
    guild, a limit, a malformed request)."""


class LimitReached(ActionRequired):
    """A guild limit: 500 channels (30013), 250 roles (30005), 50 channels in a category
    (50035 with CHANNEL_PARENT_MAX_CHANNELS), or another 30xxx "maximum number" code."""


class DiscordNotFound(ActionRequired):
    """Unknown channel, role, member, user, message or overwrite (10003, 10011, 10007,
    10013, 10008, 10009): for a delete, the thing is already gone. Unknown guild (10004)
    is a plain ActionRequired: the configuration is wrong."""


# --- Call records -----------------------------------------------------------------------


@dataclass(slots=True)
class _Bucket:
    limit: int
    remaining: int
    reset_at: float | None  # time.monotonic(); None when unknown


def _form_error_codes(errors: Any) -> Iterable[str]:
    if isinstance(errors, Mapping):
        for key, value in errors.items():
            if key == "_errors" and isinstance(value, list):
                for item in value:
                    if isinstance(item, Mapping) and isinstance(item.get("code"), str):
                        yield item["code"]
            else:
                yield from _form_error_codes(value)


def _form_error_details(errors: Any, path: str = "") -> Iterable[str]:
    """``parent_id: CHANNEL_PARENT_MAX_CHANNELS (Maximum number of ...)`` per form error."""
    if isinstance(errors, Mapping):
        for key, value in errors.items():
            if key == "_errors" and isinstance(value, list):
                for item in value:
                    if isinstance(item, Mapping):
                        yield f"{path or '(body)'}: {item.get('code')} ({item.get('message')})"
            else:
                yield from _form_error_details(value, f"{path}.{key}" if path else str(key))


def _is_limit(code: int | None, errors: Mapping[str, Any] | None) -> bool:
    if code is not None and 30000 <= code < 31000:
        return True
    return code == INVALID_FORM_BODY and any(c in LIMIT_FORM_CODES
                                             for c in _form_error_codes(errors))


def _float_header(headers: httpx.Headers, name: str) -> float | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _overwrites_json(overwrites: Iterable[Mapping[str, Any]]) -> list[JSON]:
    """Overwrites as Discord's OpenAPI document types them: bits and type as integers
    (Discord answers with the bits as strings; it takes integers, which JSON carries at
    any size)."""
    out = []
    for ow in overwrites:
        out.append({"id": str(ow["id"]), "type": int(ow.get("type", 0)),
                    "allow": int(ow.get("allow") or 0),
                    "deny": int(ow.get("deny") or 0)})
    return out


class DiscordClient:
    """Discord REST as the bot (``Authorization: Bot <token>``); see the module docstring.

    ``base_url`` is ``https://discord.com/api/v10`` or an emulator's URL. ``timeout`` bounds
    each HTTP attempt; ``max_retry_wait`` bounds each sleep for a rate limit (longer waits
    raise RetryLater instead). ``transport`` is for tests (httpx.MockTransport).
    """

    def __init__(
        self, base_url: str, bot_token: str, *, timeout: float = 10.0,
        max_retry_wait: float = 5.0, on_call: Callable[[CallRecord], None] | None = None,
        transport: httpx.BaseTransport | None = None,
        user_agent: str = "DiscordBot (coachgate, 0.1)",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = bot_token
        self.max_retry_wait = max_retry_wait
        self.on_call = on_call
        self._http = httpx.Client(
            base_url=self.base_url, timeout=httpx.Timeout(timeout), transport=transport,
            headers={"User-Agent": user_agent}, follow_redirects=False,
        )
        self._lock = threading.Lock()
        self._route_buckets: dict[str, str] = {}  # route key -> bucket key
        self._buckets: dict[str, _Bucket] = {}
        self._global_until = 0.0  # time.monotonic()

    def __repr__(self) -> str:
        return f"DiscordClient({self.base_url!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> DiscordClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- Users --------------------------------------------------------------------------

    def get_current_user(self, *, bearer_token: str | None = None) -> JSON:
        """The bot's user, or with ``bearer_token`` the user who granted that OAuth2 token."""
        auth = f"Bearer {bearer_token}" if bearer_token is not None else None
        result: JSON = self._request("GET", "/users/@me", authorization=auth)
        return result

    def get_user(self, user_id: str) -> JSON:
        result: JSON = self._request("GET", "/users/{user_id}", user_id=user_id)
        return result

    # --- Guilds -------------------------------------------------------------------------

    def get_guild(self, guild_id: str) -> JSON:
        result: JSON = self._request("GET", "/guilds/{guild_id}", guild_id=guild_id)
        return result

    def list_guild_channels(self, guild_id: str) -> list[JSON]:
        result: list[JSON] = self._request("GET", "/guilds/{guild_id}/channels",
                                           guild_id=guild_id)
        return result

    def list_guild_roles(self, guild_id: str) -> list[JSON]:
        result: list[JSON] = self._request("GET", "/guilds/{guild_id}/roles", guild_id=guild_id)
        return result

    def get_guild_member(self, guild_id: str, user_id: str) -> JSON:
        result: JSON = self._request("GET", "/guilds/{guild_id}/members/{user_id}",
                                     guild_id=guild_id, user_id=user_id)
        return result

    def add_guild_member(
        self, guild_id: str, user_id: str, access_token: str, *,
        roles: Iterable[str] | None = None, reason: str | None = None,
    ) -> JSON | None:
        """Add a user to the guild with their OAuth2 token (scope ``guilds.join``).
        The member JSON when added (201); None when already a member (204)."""
        body: JSON = {"access_token": access_token}
        if roles is not None:
            body["roles"] = [str(r) for r in roles]
        result: JSON | None = self._request(
            "PUT", "/guilds/{guild_id}/members/{user_id}", guild_id=guild_id,
            user_id=user_id, json=body, reason=reason)
        return result

    # --- Channels -----------------------------------------------------------------------

    def get_channel(self, channel_id: str) -> JSON:
        result: JSON = self._request("GET", "/channels/{channel_id}", channel_id=channel_id)
        return result

    def create_channel(
        self, guild_id: str, *, name: str, type: int = 2,
        parent_id: str | None = None, permission_overwrites: Iterable[Mapping[str, Any]] = (),
        reason: str | None = None, **extra: Any,
    ) -> JSON:
        """Create a channel (type 2 voice, 0 text, 4 category) with its overwrites in the
        same call: ``[{"id", "type": 0 role | 1 member, "allow": bits, "deny": bits}]``
        (bits as int or decimal string). ``extra`` goes into the body as is (topic, ...)."""
        body: JSON = {"name": name, "type": type, **extra}
        if parent_id is not None:
            body["parent_id"] = str(parent_id)
        overwrites = _overwrites_json(permission_overwrites)
        if overwrites:
            body["permission_overwrites"] = overwrites
        result: JSON = self._request("POST", "/guilds/{guild_id}/channels", guild_id=guild_id,
                                     json=body, reason=reason)
        return result

    def modify_channel(self, channel_id: str, *, reason: str | None = None,
                       **fields: Any) -> JSON:
        """PATCH a channel's fields (name, parent_id, permission_overwrites — which
        replaces the whole list —, topic, position, ...)."""
        if fields.get("permission_overwrites") is not None:
            fields["permission_overwrites"] = _overwrites_json(fields["permission_overwrites"])
        result: JSON = self._request("PATCH", "/channels/{channel_id}", channel_id=channel_id,
                                     json=fields, reason=reason)
        return result

    def delete_channel(self, channel_id: str, *, reason: str | None = None) -> JSON:
        """Delete a channel; returns the deleted channel. DiscordNotFound if already gone."""
        result: JSON = self._request("DELETE", "/channels/{channel_id}", channel_id=channel_id,
                                     reason=reason)
        return result

    def edit_channel_permissions(
        self, channel_id: str, overwrite_id: str, *, allow: int, deny: int,
        type: int, reason: str | None = None,
    ) -> None:
        """Create or replace one overwrite (type 0 role, 1 member)."""
        self._request("PUT", "/channels/{channel_id}/permissions/{overwrite_id}",
                      channel_id=channel_id, overwrite_id=overwrite_id,
                      json={"allow": int(allow), "deny": int(deny), "type": int(type)},
                      reason=reason)

    def delete_channel_permission(self, channel_id: str, overwrite_id: str, *,
                                  reason: str | None = None) -> None:
        self._request("DELETE", "/channels/{channel_id}/permissions/{overwrite_id}",
                      channel_id=channel_id, overwrite_id=overwrite_id, reason=reason)

    # --- Roles --------------------------------------------------------------------------

    def create_role(self, guild_id: str, *, name: str, permissions: int = 0,
                    reason: str | None = None, **extra: Any) -> JSON:
        body: JSON = {"name": name, "permissions": int(permissions), **extra}
        result: JSON = self._request("POST", "/guilds/{guild_id}/roles", guild_id=guild_id,
                                     json=body, reason=reason)
        return result

    def delete_role(self, guild_id: str, role_id: str, *, reason: str | None = None) -> None:
        self._request("DELETE", "/guilds/{guild_id}/roles/{role_id}", guild_id=guild_id,
                      role_id=role_id, reason=reason)

    def add_member_role(self, guild_id: str, user_id: str, role_id: str, *,
                        reason: str | None = None) -> None:
        self._request("PUT", "/guilds/{guild_id}/members/{user_id}/roles/{role_id}",
                      guild_id=guild_id, user_id=user_id, role_id=role_id, reason=reason)

    def remove_member_role(self, guild_id: str, user_id: str, role_id: str, *,
                           reason: str | None = None) -> None:
        self._request("DELETE", "/guilds/{guild_id}/members/{user_id}/roles/{role_id}",
                      guild_id=guild_id, user_id=user_id, role_id=role_id, reason=reason)

    # --- Messages -----------------------------------------------------------------------

    def create_dm(self, recipient_id: str) -> JSON:
        """The DM channel with a user (the same channel on every call)."""
        result: JSON = self._request("POST", "/users/@me/channels",
                                     json={"recipient_id": str(recipient_id)})
        return result

    def send_message(self, channel_id: str, content: str) -> JSON:
        result: JSON = self._request("POST", "/channels/{channel_id}/messages",
                                     channel_id=channel_id, json={"content": content})
        return result

    # --- OAuth2 -------------------------------------------------------------------------

    def exchange_oauth_code(self, client_id: str, client_secret: str, code: str,
                            redirect_uri: str) -> JSON:
        """Trade an authorization code for ``{access_token, token_type, expires_in,
        refresh_token, scope}``."""
        return self._token_request(client_id, client_secret, {
            "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri})

    def refresh_oauth_token(self, client_id: str, client_secret: str,
                            refresh_token: str) -> JSON:
        """New tokens for a refresh token. Discord rotates the refresh token: store the one
        returned, the old one stops working."""
        return self._token_request(client_id, client_secret, {
            "grant_type": "refresh_token", "refresh_token": refresh_token})

    def _token_request(self, client_id: str, client_secret: str,
                       form: dict[str, str]) -> JSON:
        result: JSON = self._request("POST", "/oauth2/token", data=form,
                                     basic_auth=(client_id, client_secret))
        return result

    # --- Machinery ----------------------------------------------------------------------

    def _request(
        self, method: str, template: str, *, json: Any = None,
        data: Mapping[str, str] | None = None, reason: str | None = None,
        authorization: str | None = None, basic_auth: tuple[str, str] | None = None,
        **params: str,
    ) -> Any:
        path = template.format(**{k: quote(str(v), safe="") for k, v in params.items()})
        route_key = method + " " + _PLACEHOLDER.sub(
            lambda m: str(params[m.group(1)]) if m.group(1) in MAJOR_PARAMETERS
            else m.group(0), template)
        major = ",".join(str(params[p]) for p in MAJOR_PARAMETERS if p in params)
        if authorization is not None:  # a user's token has its own limits, not the bot's
            route_key += " [bearer]"
            major += "[bearer]"
        headers: dict[str, str] = {}
        auth: tuple[str, str] | None = None
        if basic_auth is not None:
            auth = basic_auth
        else:
            headers["Authorization"] = authorization or f"Bot {self._token}"
        if reason:
            headers["X-Audit-Log-Reason"] = quote(reason[:MAX_REASON_LENGTH], safe=" /")

        rate_limited = 0
        while True:
            self._wait_for_capacity(method, template, route_key)
            at = time.time()
            started = time.monotonic()
            try:
                response = self._http.request(method, path, json=json, data=data,
                                              headers=headers, auth=auth)
            except httpx.TimeoutException as exc:
                self._report(method, template, 0, started, at)
                raise RetryLater(f"timed out: {type(exc).__name__}", method=method,
                                 route=template) from exc
            except httpx.RequestError as exc:
                self._report(method, template, 0, started, at)
                raise RetryLater(f"connection failed: {type(exc).__name__}", method=method,
                                 route=template) from exc
            # Learn from the answer before reporting it, so a thread woken by on_call
            # already sees the new limits.
            self._learn_bucket(route_key, major, response.headers)
            if response.status_code != 429:
                self._report(method, template, response.status_code, started, at)
                break
            retry_after = self._note_rate_limited(route_key, response)
            self._report(method, template, 429, started, at)
            rate_limited += 1
            if retry_after > self.max_retry_wait or rate_limited > MAX_RATE_LIMIT_RETRIES:
                raise RetryLater("rate limited", retry_after=retry_after, status=429,
                                 code=self._body_code(response), method=method, route=template)
            log.info("discord: 429 on %s %s, retrying in %.3fs", method, template, retry_after)
            time.sleep(retry_after)

        status = response.status_code
        if status == 204:
            return None
        if status >= 400:
            raise self._error(response, method, template)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise RetryLater("answer is not JSON", status=status, method=method,
                             route=template) from exc

    def _report(self, method: str, route: str, status: int, started: float, at: float) -> None:
        report_call(self.on_call, log, "discord", method, route, status, started, at)

    def _wait_for_capacity(self, method: str, route: str, route_key: str) -> None:
        """Block until the global limit and the route's bucket allow a request (reserving
        one from the bucket), or raise RetryLater when that is more than max_retry_wait
        away. Sleeps happen outside the lock."""
        while True:
            with self._lock:
                now = time.monotonic()
                wait = self._global_until - now
                if wait <= 0:
                    bucket = self._buckets.get(self._route_buckets.get(route_key, ""))
                    if bucket is None:
                        return
                    if bucket.reset_at is not None and bucket.reset_at <= now:
                        bucket.remaining = bucket.limit
                        bucket.reset_at = None
                    if bucket.remaining > 0 or bucket.reset_at is None:
                        bucket.remaining -= 1
                        return
                    wait = bucket.reset_at - now
            if wait > self.max_retry_wait:
                raise RetryLater(f"rate limit resets in {wait:.3f}s", retry_after=wait,
                                 method=method, route=route)
            log.debug("discord: waiting %.3fs for the rate limit of %s %s", wait, method, route)
            time.sleep(wait)

    def _learn_bucket(self, route_key: str, major: str, headers: httpx.Headers) -> None:
        bucket_hash = headers.get("X-RateLimit-Bucket")
        limit = _float_header(headers, "X-RateLimit-Limit")
        remaining = _float_header(headers, "X-RateLimit-Remaining")
        reset_after = _float_header(headers, "X-RateLimit-Reset-After")
        if not bucket_hash or limit is None or remaining is None:
            return
        key = f"{bucket_hash}:{major}"
        reset_at = time.monotonic() + reset_after if reset_after is not None else None
        with self._lock:
            self._route_buckets[route_key] = key
            bucket = self._buckets.get(key)
            if bucket is None:
                self._buckets[key] = _Bucket(int(limit), int(remaining), reset_at)
                return
            bucket.limit = int(limit)
            # Answers can arrive out of order: within one window, trust the lowest count.
            same_window = (bucket.reset_at is not None and reset_at is not None
                           and abs(bucket.reset_at - reset_at) < 0.05)
            bucket.remaining = min(bucket.remaining, int(remaining)) if same_window \
                else int(remaining)
            bucket.reset_at = reset_at

    def _note_rate_limited(self, route_key: str, response: httpx.Response) -> float:
        """Record a 429 (globally or on the route's bucket); return seconds to wait."""
        body = self._body(response)
        retry_after = body.get("retry_after") if isinstance(body, dict) else None
        if not isinstance(retry_after, int | float):
            retry_after = _float_header(response.headers, "Retry-After")
        wait = max(float(retry_after or 1.0), 0.0)
        is_global = bool(isinstance(body, dict) and body.get("global")) \
            or response.headers.get("X-RateLimit-Global", "").lower() == "true" \
            or response.headers.get("X-RateLimit-Scope", "") == "global"
        until = time.monotonic() + wait
        with self._lock:
            if is_global:
                self._global_until = max(self._global_until, until)
            elif _float_header(response.headers, "X-RateLimit-Remaining") in (None, 0.0):
                bucket = self._buckets.get(self._route_buckets.get(route_key, ""))
                if bucket is not None:
                    bucket.remaining = 0
                    bucket.reset_at = max(bucket.reset_at or 0.0, until)
            # Else the bucket still has room: a limit its headers do not describe (Discord's
            # hidden ones, e.g. 2 renames per 10 minutes per channel) refused this request
            # only; other requests on the route (a PATCH of overwrites) must not wait.
        log.warning("discord: rate limited (%s, scope %s) for %.3fs",
                    "global" if is_global else "route",
                    response.headers.get("X-RateLimit-Scope", "?"), wait)
        return wait

    @staticmethod
    def _body(response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            return None

    def _body_code(self, response: httpx.Response) -> int | None:
        body = self._body(response)
        code = body.get("code") if isinstance(body, dict) else None
        return code if isinstance(code, int) else None

    def _error(self, response: httpx.Response, method: str, route: str) -> DiscordError:
        status = response.status_code
        body = self._body(response)
        code: int | None = None
        errors: Mapping[str, Any] | None = None
        message = response.reason_phrase or f"HTTP {status}"
        if isinstance(body, dict):
            raw_code = body.get("code")
            code = raw_code if isinstance(raw_code, int) else None
            errors = body.get("errors") if isinstance(body.get("errors"), dict) else None
            # Discord's errors carry "message"; OAuth2's carry "error"/"error_description".
            message = str(body.get("message") or body.get("error_description")
                          or body.get("error") or message)
            details = list(_form_error_details(errors))
            if details:  # "Invalid Form Body" alone says little
                message += ": " + "; ".join(details[:3])
        elif response.text:
            message = response.text[:200]
        kwargs: dict[str, Any] = {"status": status, "code": code, "method": method,
                                  "route": route, "errors": errors}
        if status >= 500 or status == 408:
            return RetryLater(message, retry_after=_float_header(response.headers,
                                                                 "Retry-After"), **kwargs)
        if status == 404 and code in NOT_FOUND_CODES:
            return DiscordNotFound(message, **kwargs)
        if _is_limit(code, errors):
            return LimitReached(message, **kwargs)
        return ActionRequired(message, **kwargs)

"""A stateful local Discord: the REST routes and JSON coachgate uses, served over HTTP.

    emu = DiscordEmulator().start()          # or: with DiscordEmulator() as emu:
    guild_id = emu.create_guild()
    client = DiscordClient(emu.base_url, emu.bot_token)   # base_url: http://127.0.0.1:P/api/v10
    ...
    emu.stop()

Run alone with ``python -m coachgate.integrations.discord.emulator [--port 8765]``: it makes
a guild, prints ``{"base_url", "guild_id", "bot_token", ...}`` as one JSON line and serves
until Ctrl-C (or SIGTERM).

What it does like Discord (https://discord.com/developers/docs):

* Routes under ``/api/v10`` (also ``/api`` and ``/api/vN``); OAuth2's authorize page at
  ``/oauth2/authorize`` (also under the prefix). Ids are snowflake-like increasing strings.
* The bot's permissions, computed with ``permissions.py``: MANAGE_CHANNELS to create,
  modify and delete channels; MANAGE_ROLES to edit overwrites and to create, delete and
  assign roles, with the role hierarchy (the bot's highest role must be above the role);
  overwrites may only allow or deny bits the bot holds in the guild, and only an
  administrator may put MANAGE_ROLES into one; CREATE_INSTANT_INVITE to add members with
  an OAuth2 token. Channel-level checks apply overwrites and Discord's implicit rule: a
  channel the bot cannot VIEW (a voice channel: VIEW and CONNECT) answers 403 Missing
  Access (50001) to every change, so a private channel must allow VIEW_CHANNEL (and
  CONNECT) to the bot (a member overwrite for the bot user or its role), as on Discord.
  Creating a channel inside a category checks the bot's permissions in that category
  (a private category needs the bot's overwrite too). Other failures: 403
  ``{"message": "Missing Permissions", "code": 50013}``.
* Limits: 500 channels per guild (30013), 250 roles (30005), 50 channels per category
  (50035 with ``errors.parent_id._errors[0].code == "CHANNEL_PARENT_MAX_CHANNELS"``).
  ``configure_limits`` lowers them for tests (same codes). Unknown ids: 10003 channel,
  10004 guild, 10007 member, 10011 role, 10013 user. Validation: 400 code 50035.
* A channel created in a category without overwrites copies the category's (it is
  "synced", as on Discord).
* Rate limits: a fixed window per route and major parameter (default 50 per 1 s) and a
  global one (default 50 per s), with ``X-RateLimit-*`` headers on every answer and 429
  ``{"message", "retry_after", "global"}`` + ``Retry-After`` when exceeded.
  ``invalid_request_count`` counts 401, 403 and 429 answers (Discord bans an IP over
  10,000 of them in 10 minutes).
* Hidden limits (``HIDDEN_LIMIT_RULES``): renaming a channel, or changing its topic, 2
  per 10 minutes per channel. The 429 keeps the route's ordinary ``X-RateLimit-*``
  headers (its bucket is not empty), carries ``retry_after`` (and ``Retry-After``) of
  its own and ``X-RateLimit-Scope: user``; nothing in the request is applied.
  ``configure_hidden_limits`` changes them; ``skip_time`` lets their windows pass.

``GET /oauth2/applications/@me`` answers the bot's application (id = the bot's user id),
as third-party libraries' ``login()`` needs. Every answer on the routes coachgate uses
follows Discord's OpenAPI document (tests/specs/discord; checked by
tests/integrations/discord/test_discord_fidelity.py).

Admin routes under ``/_emulator`` (not Discord's; see ``_admin`` and docs/discord.md) let
outside tools create users, members, OAuth2 grants and applications and read the audit
log over HTTP.

What it adds for tests: fault injection (``fail_next``, ``outage``, ``timeout_next``,
``rate_limit_storm``), every HTTP request in ``calls``, every change in ``log``
(``AuditEntry``; a request that changes nothing — re-adding a role the member holds,
putting an identical overwrite — is not logged), and a visibility history:
``view_intervals(channel_id)`` says over which intervals each member could see a channel.

Visibility history: after each change the emulator recomputes VIEW_CHANNEL only for the
channels and members the change can affect, and records the differences as
``VisibilityEntry``. It leaves out the bot itself, the guild owner and administrators
(they see everything; a member who becomes an administrator has their open intervals
closed at that moment). A member who leaves loses sight of everything at that moment.

Times: ``AuditEntry.at`` and ``VisibilityEntry.at`` are ``time.time()`` taken when the
emulator began applying the request (under its lock, before the answer is written; setup
calls: when called); every change of one request and the visibility entries it causes share
that ``at``. ``Call.at`` is ``time.time()`` when the request arrived. So a change is in
effect at ``at``, a little before the client sees the answer.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import html
import json
import logging
import math
import re
import secrets
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple, cast
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from coachgate.integrations.discord import permissions as P
from coachgate.integrations.localserver import LoopbackService, TrackedHandler, TrackingServer

log = logging.getLogger(__name__)

JSON = dict[str, Any]

DISCORD_EPOCH_MS = 1420070400000
DEFAULT_BOT_PERMISSIONS = (
    P.MANAGE_CHANNELS | P.MANAGE_ROLES | P.VIEW_CHANNEL | P.CONNECT | P.SPEAK
    | P.SEND_MESSAGES | P.CREATE_INSTANT_INVITE
)
MAX_GUILD_CHANNELS = 500
MAX_GUILD_ROLES = 250
MAX_CATEGORY_CHANNELS = 50
DEFAULT_TOKEN_LIFETIME = 604800
AUTH_CODE_LIFETIME = 600.0

GUILD_TEXT, DM, GUILD_VOICE, GUILD_CATEGORY = 0, 1, 2, 4
_CREATABLE_TYPES = frozenset({GUILD_TEXT, GUILD_VOICE, GUILD_CATEGORY})
_MESSAGEABLE_TYPES = frozenset({GUILD_TEXT, GUILD_VOICE})
# Base-permission bits that change what a member sees in any channel.
_VISIBILITY_BITS = P.VIEW_CHANNEL | P.ADMINISTRATOR

_PREFIX = re.compile(r"^/api(?:/v\d+)?(/.*)$")
_CONSENT_USERNAME = re.compile(r"[A-Za-z0-9_.]{2,32}")  # Discord's username rule
#: The emulator's own admin routes (not Discord's): see ``DiscordEmulator._admin``.
ADMIN_PREFIX = "/_emulator"

#: Discord's hidden per-route limits: limits its headers never announce. Renaming a
#: channel (or changing its topic) is allowed twice per 10 minutes per channel; the third
#: request gets a 429 whose X-RateLimit-* headers still describe the route's ordinary
#: bucket (remaining > 0) while ``retry_after`` says minutes (discord-api-docs issues
#: #1900 and #2761; "2 per 10 minutes", Discord staff in #2190). Other changes to the
#: channel in the same PATCH wait too; a PATCH without name or topic is not limited.
HIDDEN_LIMIT_RULES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "channel_rename": ("PATCH", "/channels/{channel_id}", ("name", "topic")),
}
HIDDEN_LIMITS: dict[str, tuple[int, float]] = {"channel_rename": (2, 600.0)}


# --- Public records ---------------------------------------------------------------------


@dataclass
class AuditEntry:
    """One change. ``action``: channel_create, channel_update, channel_delete,
    overwrite_update, overwrite_delete, role_create, role_update, role_delete, member_add,
    member_remove, member_role_add, member_role_remove, message_create. ``reason`` is the
    request's X-Audit-Log-Reason (decoded); ``details["actor"]`` is "bot" (an API call),
    "setup" (the Python setup API) or "human" (``delete_channel_behind_back``)."""

    at: float
    action: str
    guild_id: str | None = None
    channel_id: str | None = None
    user_id: str | None = None
    role_id: str | None = None
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class VisibilityEntry:
    at: float
    channel_id: str
    user_id: str
    visible: bool


class Call(NamedTuple):
    """One HTTP request: ``at`` is time.time() on arrival; ``route`` is templated
    (``/guilds/{guild_id}/channels``; the raw path for unknown routes); ``status`` is what
    the emulator answered (also for answers held by ``timeout_next``)."""

    at: float
    method: str
    route: str
    status: int


# --- Internal state ---------------------------------------------------------------------


@dataclass
class _User:
    id: str
    username: str
    global_name: str | None
    bot: bool = False
    dm_open: bool = True


@dataclass
class _Role:
    id: str
    name: str
    permissions: int
    position: int
    managed: bool = False
    bot_id: str | None = None
    color: int = 0
    hoist: bool = False
    mentionable: bool = False


@dataclass
class _Channel:
    id: str
    type: int
    guild_id: str | None
    name: str
    position: int = 0
    parent_id: str | None = None
    overwrites: dict[str, P.Overwrite] = field(default_factory=dict)
    topic: str | None = None
    nsfw: bool = False
    bitrate: int = 64000
    user_limit: int = 0
    rate_limit_per_user: int = 0
    rtc_region: str | None = None
    last_message_id: str | None = None
    recipient_id: str | None = None  # DMs


@dataclass
class _Member:
    user_id: str
    roles: set[str]
    joined_at: str
    nick: str | None = None


@dataclass
class _Guild:
    id: str
    name: str
    owner_id: str
    roles: dict[str, _Role] = field(default_factory=dict)
    channels: dict[str, _Channel] = field(default_factory=dict)
    members: dict[str, _Member] = field(default_factory=dict)
    role_members: dict[str, set[str]] = field(default_factory=dict)
    # overwrite target id (role or user) -> channels holding an overwrite for it
    overwrite_index: dict[str, set[str]] = field(default_factory=dict)
    # user -> channels they currently see (tracked users only)
    user_visible: dict[str, set[str]] = field(default_factory=dict)


@dataclass
class _Grant:
    user_id: str
    scopes: tuple[str, ...]
    access_token: str
    refresh_token: str
    expires_at: float
    client_id: str | None


@dataclass
class _Code:
    client_id: str
    user_id: str
    redirect_uri: str | None
    scopes: tuple[str, ...]
    expires_at: float


@dataclass
class _App:
    client_secret: str
    redirect_uris: tuple[str, ...] | None


@dataclass
class _Window:
    start: float = 0.0
    count: int = 0


@dataclass
class _Answer:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None  # non-JSON body
    hold: float = 0.0  # seconds to sit on the answer (timeout_next)


class _Fail(Exception):
    def __init__(self, status: int, body: JSON) -> None:
        super().__init__(body.get("message"))
        self.status = status
        self.body = body


def _err(status: int, code: int, message: str) -> _Fail:
    return _Fail(status, {"message": message, "code": code})


def _form_error(path: Iterable[str], code: str, message: str) -> _Fail:
    errors: JSON = {"_errors": [{"code": code, "message": message}]}
    for part in reversed(list(path)):
        errors = {part: errors}
    return _Fail(400, {"code": 50035, "errors": errors, "message": "Invalid Form Body"})


def _unknown_channel() -> _Fail:
    return _err(404, 10003, "Unknown Channel")


def _missing_permissions() -> _Fail:
    return _err(403, 50013, "Missing Permissions")


def _missing_access() -> _Fail:
    return _err(403, 50001, "Missing Access")


@dataclass
class _Ctx:
    method: str
    template: str
    params: dict[str, str]
    query: dict[str, str]
    body: Any
    reason: str | None
    at: float
    grant: _Grant | None = None  # a Bearer (user) token's grant
    authorization: str | None = None


@dataclass(frozen=True)
class _Route:
    method: str
    template: str
    regex: re.Pattern[str]
    handler: str
    auth: str  # "bot", "bot_or_user", "none", "page"


def _route(method: str, template: str, handler: str, auth: str = "bot") -> _Route:
    pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>\\d+)", re.escape(template))
    return _Route(method, template, re.compile(f"^{pattern}$"), handler, auth)


_ROUTES: tuple[_Route, ...] = (
    _route("GET", "/users/@me", "get_current_user", "bot_or_user"),
    _route("POST", "/users/@me/channels", "create_dm"),
    _route("GET", "/users/{user_id}", "get_user"),
    _route("GET", "/guilds/{guild_id}", "get_guild"),
    _route("GET", "/guilds/{guild_id}/channels", "list_channels"),
    _route("POST", "/guilds/{guild_id}/channels", "create_channel"),
    _route("GET", "/guilds/{guild_id}/roles", "list_roles"),
    _route("POST", "/guilds/{guild_id}/roles", "create_role"),
    _route("DELETE", "/guilds/{guild_id}/roles/{role_id}", "delete_role"),
    _route("GET", "/guilds/{guild_id}/members/{user_id}", "get_member"),
    _route("PUT", "/guilds/{guild_id}/members/{user_id}", "add_guild_member"),
    _route("PUT", "/guilds/{guild_id}/members/{user_id}/roles/{role_id}", "add_member_role"),
    _route("DELETE", "/guilds/{guild_id}/members/{user_id}/roles/{role_id}",
           "remove_member_role"),
    _route("GET", "/channels/{channel_id}", "get_channel"),
    _route("PATCH", "/channels/{channel_id}", "modify_channel"),
    _route("DELETE", "/channels/{channel_id}", "delete_channel"),
    _route("PUT", "/channels/{channel_id}/permissions/{overwrite_id}", "put_overwrite"),
    _route("DELETE", "/channels/{channel_id}/permissions/{overwrite_id}", "delete_overwrite"),
    _route("POST", "/channels/{channel_id}/messages", "create_message"),
    _route("POST", "/oauth2/token", "oauth_token", "none"),
    _route("GET", "/oauth2/authorize", "oauth_authorize", "page"),
    _route("GET", "/oauth2/applications/@me", "get_application"),
)
_MAJOR = ("guild_id", "channel_id", "webhook_id")


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def _snowflake_like(value: Any) -> bool:
    return isinstance(value, str | int) and not isinstance(value, bool) and str(value).isdigit()


class DiscordEmulator(LoopbackService):
    """A local Discord for tests, demos and benchmarks; see the module docstring.

    All state sits behind one lock; the Python API below may be called from any thread
    while the server answers requests.
    """

    thread_name = "discord-emulator"

    def __init__(self, *, port: int = 0, bot_username: str = "coachgate-bot") -> None:
        self._port = port
        self._lock = threading.RLock()
        self._last_id = 0
        self._users: dict[str, _User] = {}
        self._guilds: dict[str, _Guild] = {}
        self._channel_guild: dict[str, str] = {}  # guild channel id -> guild id
        self._dms: dict[str, _Channel] = {}  # DM channel id -> channel
        self._dm_by_user: dict[str, str] = {}  # recipient -> DM channel id
        self._messages: dict[str, list[JSON]] = {}
        self._dm_messages: dict[str, list[str]] = {}
        self._grants_by_access: dict[str, _Grant] = {}
        self._grants_by_refresh: dict[str, _Grant] = {}
        self._codes: dict[str, _Code] = {}
        self._apps: dict[str, _App] = {}
        self._authorize_user: str | None = None
        self._consent_page = False
        # history
        self._log: list[AuditEntry] = []
        self._visibility: list[VisibilityEntry] = []
        self._vis_by_channel: dict[str, list[VisibilityEntry]] = {}
        self._visible: dict[str, set[str]] = {}
        self._calls: list[Call] = []
        self.invalid_request_count = 0
        # rate limits
        self._per_route: tuple[int, float] = (50, 1.0)
        self._route_limits: dict[str, tuple[int, float]] = {}
        self._global_per_s = 50
        self._windows: dict[str, _Window] = {}
        # guild limits (Discord's; configure_limits lowers them for tests)
        self.max_channels = MAX_GUILD_CHANNELS
        self.max_roles = MAX_GUILD_ROLES
        self.max_channels_per_category = MAX_CATEGORY_CHANNELS
        self._global_window = _Window()
        # hidden limits: rule name -> (limit, window_s); (rule, major) -> success times
        self._hidden_limits = dict(HIDDEN_LIMITS)
        self._hidden_hits: dict[tuple[str, str], list[float]] = {}
        self._hidden_skipped = 0.0
        # faults
        self._fail: list[tuple[int, int, str | None]] = []  # (remaining, status, route)
        self._outage = False
        # (remaining, seconds, applied, route)
        self._timeouts: list[tuple[int, float, bool, str | None]] = []
        self._storm: tuple[int, float, bool] | None = None
        # the bot
        self._bot = _User(self._next_id(), bot_username, None, bot=True)
        self._users[self._bot.id] = self._bot
        self._app_owner_id = self._create_user("application-owner")  # who made the bot
        self._bot_token = (
            base64.urlsafe_b64encode(self._bot.id.encode()).decode().rstrip("=")
            + "." + secrets.token_urlsafe(6) + "." + secrets.token_urlsafe(27))
        # the server
        self._stopping = threading.Event()

    # --- Lifecycle ----------------------------------------------------------------------

    def _new_server(self) -> _Server:
        server = _Server(("127.0.0.1", self._port), _Handler)
        server.emulator = self
        return server

    @property
    def url(self) -> str:
        """The server root (``http://127.0.0.1:PORT``), where /oauth2/authorize lives."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """The REST base, like ``https://discord.com/api/v10``."""
        return f"{self.url}/api/v10"

    @property
    def bot_token(self) -> str:
        return self._bot_token

    @property
    def bot_user_id(self) -> str:
        return self._bot.id

    # --- Setup API ----------------------------------------------------------------------

    def create_guild(
        self, name: str = "coachgate", *, bot_permissions: int = DEFAULT_BOT_PERMISSIONS,
        owner_id: str | None = None, everyone_permissions: int = P.DEFAULT_EVERYONE,
    ) -> str:
        """A guild with its @everyone role (id == guild id), an owner (a new user unless
        given) and the bot as a member holding a managed role with ``bot_permissions``."""
        with self._lock:
            if owner_id is None:
                owner_id = self._create_user("guild-owner")
            elif owner_id not in self._users:
                raise KeyError(f"unknown user {owner_id}")
            g = _Guild(id=self._next_id(), name=name, owner_id=owner_id)
            g.roles[g.id] = _Role(g.id, "@everyone", everyone_permissions, 0)
            bot_role = _Role(self._next_id(), self._bot.username, bot_permissions, 1,
                             managed=True, bot_id=self._bot.id)
            g.roles[bot_role.id] = bot_role
            self._guilds[g.id] = g
            at = time.time()
            for uid in (owner_id, self._bot.id):
                self._join(g, uid, set(), at, reason=None, actor="setup")
            self._give_role(g, self._bot.id, bot_role.id, at, reason=None, actor="setup")
            return g.id

    def create_user(self, username: str, *, global_name: str | None = None) -> str:
        with self._lock:
            return self._create_user(username, global_name)

    def issue_user_token(
        self, user_id: str, scopes: Iterable[str] = ("identify", "guilds.join"),
        expires_in: int = DEFAULT_TOKEN_LIFETIME, *, client_id: str | None = None,
    ) -> JSON:
        """An OAuth2 grant for the user, as the token endpoint returns it."""
        with self._lock:
            if user_id not in self._users:
                raise KeyError(f"unknown user {user_id}")
            return self._issue_grant(user_id, tuple(scopes), expires_in, client_id)

    def expire_user_tokens(self, user_id: str) -> None:
        """Make every access token of the user expired (refresh tokens keep working)."""
        with self._lock:
            past = time.time() - 1
            for grant in self._grants_by_access.values():
                if grant.user_id == user_id:
                    grant.expires_at = past

    def register_oauth_app(self, client_id: str, client_secret: str,
                           redirect_uris: Iterable[str] | None = None) -> None:
        with self._lock:
            self._apps[str(client_id)] = _App(
                client_secret, tuple(redirect_uris) if redirect_uris is not None else None)

    def authorize_as(self, user_id: str | None) -> None:
        """Who /oauth2/authorize approves as (None: only the ``emulator_user`` query
        parameter decides)."""
        with self._lock:
            if user_id is not None and user_id not in self._users:
                raise KeyError(f"unknown user {user_id}")
            self._authorize_user = user_id

    def show_consent_page(self, enabled: bool = True) -> None:
        """With no user to authorize as (no ``authorize_as``, no ``emulator_user``),
        /oauth2/authorize shows a consent page instead of an error, as Discord does: the
        person types a Discord username and presses Authorize, which makes a new emulator
        user and approves as them (Cancel answers ``error=access_denied``). The demo uses
        it, so a freshly signed-up user can connect Discord in the browser."""
        with self._lock:
            self._consent_page = enabled

    def add_member(self, guild_id: str, user_id: str, *,
                   roles: Iterable[str] = ()) -> None:
        with self._lock:
            g = self._guild_or_key_error(guild_id)
            if user_id not in self._users:
                raise KeyError(f"unknown user {user_id}")
            if user_id not in g.members:
                self._join(g, user_id, set(), time.time(), reason=None, actor="setup")
            for role_id in roles:
                self._give_role(g, user_id, role_id, time.time(), reason=None, actor="setup")

    def remove_member(self, guild_id: str, user_id: str) -> None:
        """The member leaves (or is kicked by a human)."""
        with self._lock:
            g = self._guild_or_key_error(guild_id)
            if user_id in g.members:
                self._leave(g, user_id, time.time(), actor="setup")

    def give_role(self, guild_id: str, user_id: str, role_id: str) -> None:
        with self._lock:
            g = self._guild_or_key_error(guild_id)
            self._give_role(g, user_id, role_id, time.time(), reason=None, actor="setup")

    def create_role(self, guild_id: str, name: str, permissions: int = 0, *,
                    above_bot: bool = False) -> str:
        """A role made by a human (no permission checks, limits still apply). New roles go
        to the bottom (position 1), as on Discord; ``above_bot`` puts it at the top, out
        of the bot's reach."""
        with self._lock:
            g = self._guild_or_key_error(guild_id)
            role = self._new_role(g, name, permissions, time.time(), None, "setup")
            if above_bot:
                top = max(r.position for r in g.roles.values())
                for r in g.roles.values():
                    if r.position > role.position:
                        r.position -= 1
                role.position = top
            return role.id

    def create_channel(
        self, guild_id: str, name: str, *, type: int = GUILD_VOICE,
        parent_id: str | None = None, overwrites: Iterable[Mapping[str, Any]] = (),
    ) -> str:
        """A channel made by a human (no permission checks, limits still apply)."""
        with self._lock:
            g = self._guild_or_key_error(guild_id)
            body: JSON = {"name": name, "type": type,
                          "permission_overwrites": [dict(o) for o in overwrites]}
            if parent_id is not None:
                body["parent_id"] = parent_id
            try:
                ch = self._create_channel(g, body, time.time(), None, "setup", check=False)
            except _Fail as exc:
                raise ValueError(json.dumps(exc.body)) from exc
            return ch.id

    def set_bot_permissions(self, guild_id: str, bits: int) -> None:
        """Change the bot role's permissions (an admin editing it in the app)."""
        with self._lock:
            g = self._guild_or_key_error(guild_id)
            role = next(r for r in g.roles.values() if r.bot_id == self._bot.id)
            self._set_role_permissions(g, role, bits, time.time())

    def set_everyone_permissions(self, guild_id: str, bits: int) -> None:
        with self._lock:
            g = self._guild_or_key_error(guild_id)
            self._set_role_permissions(g, g.roles[g.id], bits, time.time())

    def set_dm_open(self, user_id: str, is_open: bool) -> None:
        """A user who closed DMs answers 50007 to messages, as on Discord."""
        with self._lock:
            self._users[user_id].dm_open = is_open

    def delete_channel_behind_back(self, channel_id: str) -> None:
        """A human deletes the channel in the Discord app (logged with actor "human")."""
        with self._lock:
            gid = self._channel_guild.get(channel_id)
            if gid is None:
                raise KeyError(f"unknown channel {channel_id}")
            g = self._guilds[gid]
            self._delete_channel(g, g.channels[channel_id], time.time(), None, "human")

    # --- Admin over HTTP (for outside tools) --------------------------------------------

    def _admin(self, method: str, path: str, query: str, headers: Mapping[str, str],
               raw: bytes) -> _Answer:
        """``/_emulator/...``: the setup API and the audit log over HTTP, so tools outside
        this process (another language, a third-party library's tests) can drive it.
        Not Discord's: no auth (the emulator listens on 127.0.0.1 only), no rate limits,
        not in ``calls``. Errors use Discord's shape: 400 code 50035 with ``errors``,
        404 with 10004 (guild), 10013 (user), or 0 (no such admin route)."""
        try:
            body = self._parse_body(headers, raw) if raw else {}
            if not isinstance(body, dict):
                raise _form_error(["_root"], "DICT_TYPE_CONVERT",
                                  "Only dictionaries may be used.")
            q = dict(parse_qsl(query))
            route = (method, path.rstrip("/") or "/")
            if route == ("GET", "/"):
                return _Answer(200, self._admin_describe())
            if route == ("POST", "/users"):
                return self._admin_create_user(body)
            if route == ("POST", "/oauth2/grants"):
                return self._admin_issue_grant(body)
            if route == ("POST", "/oauth2/applications"):
                return self._admin_register_app(body)
            if route == ("GET", "/audit-log"):
                return self._admin_audit_log(q)
            match = re.fullmatch(r"/guilds/(\d+)/members", path)
            if method == "POST" and match:
                return self._admin_add_member(match.group(1), body)
            return _Answer(404, {"message": "404: Not Found", "code": 0})
        except _Fail as exc:
            return _Answer(exc.status, exc.body)

    def _admin_describe(self) -> JSON:
        return {"base_url": self.base_url, "url": self.url, "bot_user_id": self._bot.id,
                "guilds": [{"id": g.id, "name": g.name} for g in self._guilds.values()],
                "oauth_client_ids": sorted(self._apps)}

    @staticmethod
    def _admin_str(body: JSON, key: str, *, required: bool = True,
                   max_length: int = 100) -> str | None:
        value = body.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not 1 <= len(value) <= max_length:
            raise _form_error([key], "BASE_TYPE_BAD_LENGTH",
                              f"Must be between 1 and {max_length} in length.")
        return value

    def _admin_ids(self, body: JSON, key: str) -> list[str]:
        raw = body.get(key, [])
        if not isinstance(raw, list) or not all(_snowflake_like(x) for x in raw):
            raise _form_error([key], "LIST_TYPE_CONVERT", "Must be a list of snowflakes.")
        return [str(x) for x in raw]

    def _admin_create_user(self, body: JSON) -> _Answer:
        """``{"username", "global_name"?, "guild_ids"?: [...], "authorize"?: bool}``: a
        user, added to those guilds; ``authorize`` makes /oauth2/authorize approve as
        them."""
        username = self._admin_str(body, "username", max_length=32) or ""
        global_name = self._admin_str(body, "global_name", required=False)
        guild_ids = self._admin_ids(body, "guild_ids")
        if any(gid not in self._guilds for gid in guild_ids):
            raise _err(404, 10004, "Unknown Guild")
        uid = self._create_user(username, global_name)
        at = time.time()
        for gid in dict.fromkeys(guild_ids):
            self._join(self._guilds[gid], uid, set(), at, reason=None, actor="setup")
        if body.get("authorize") is True:
            self._authorize_user = uid
        return _Answer(201, self._user_json(self._users[uid]))

    def _admin_add_member(self, guild_id: str, body: JSON) -> _Answer:
        """``{"user_id", "role_ids"?: [...]}``: the user joins the guild (as if invited)."""
        g = self._guilds.get(guild_id)
        if g is None:
            raise _err(404, 10004, "Unknown Guild")
        uid = body.get("user_id")
        if not _snowflake_like(uid):
            raise _form_error(["user_id"], "NUMBER_TYPE_COERCE", "Value is not snowflake.")
        self._known_user(str(uid))
        role_ids = self._admin_ids(body, "role_ids")
        if any(r not in g.roles for r in role_ids):
            raise _form_error(["role_ids"], "UNKNOWN_ROLE", "Unknown role.")
        at = time.time()
        m = g.members.get(str(uid)) or self._join(g, str(uid), set(), at, reason=None,
                                                  actor="setup")
        for role_id in role_ids:
            self._give_role(g, str(uid), role_id, at, reason=None, actor="setup")
        return _Answer(201, self._member_json(m))

    def _admin_issue_grant(self, body: JSON) -> _Answer:
        """``{"user_id", "scopes"?: ["identify", "guilds.join"], "expires_in"?: s,
        "client_id"?}``: an OAuth2 grant, answered as the token endpoint does."""
        uid = body.get("user_id")
        if not _snowflake_like(uid):
            raise _form_error(["user_id"], "NUMBER_TYPE_COERCE", "Value is not snowflake.")
        self._known_user(str(uid))
        scopes = body.get("scopes", ["identify", "guilds.join"])
        if not isinstance(scopes, list) or not scopes or not all(
                isinstance(x, str) and x for x in scopes):
            raise _form_error(["scopes"], "LIST_TYPE_CONVERT", "Must be a list of scopes.")
        expires_in = body.get("expires_in", DEFAULT_TOKEN_LIFETIME)
        if not isinstance(expires_in, int) or isinstance(expires_in, bool) or not (
                0 <= expires_in <= 10 * DEFAULT_TOKEN_LIFETIME):
            raise _form_error(["expires_in"], "NUMBER_TYPE_MAX",
                              f"Must be between 0 and {10 * DEFAULT_TOKEN_LIFETIME}.")
        client_id = self._admin_str(body, "client_id", required=False)
        return _Answer(201, self._issue_grant(str(uid), tuple(scopes), expires_in,
                                              client_id))

    def _admin_register_app(self, body: JSON) -> _Answer:
        """``{"client_id", "client_secret", "redirect_uris"?: [...]}``."""
        client_id = self._admin_str(body, "client_id") or ""
        secret = self._admin_str(body, "client_secret", max_length=200) or ""
        uris = body.get("redirect_uris")
        if uris is not None and (not isinstance(uris, list) or not all(
                isinstance(u, str) and u for u in uris)):
            raise _form_error(["redirect_uris"], "LIST_TYPE_CONVERT", "Must be a list.")
        self._apps[client_id] = _App(secret, tuple(uris) if uris is not None else None)
        return _Answer(201, {"client_id": client_id,
                             "redirect_uris": list(uris) if uris is not None else None})

    def _admin_audit_log(self, q: Mapping[str, str]) -> _Answer:
        """``?after=N&limit=M``: entries after position N (0: from the start), oldest
        first, at most M (default and maximum 1000); ``next`` is the ``after`` for the
        next page."""
        try:
            after = int(q.get("after", "0"))
            limit = int(q.get("limit", "1000"))
        except ValueError as exc:
            raise _form_error(["after"], "NUMBER_TYPE_COERCE", "Value is not int.") from exc
        if after < 0 or not 1 <= limit <= 1000:
            raise _form_error(["limit"], "NUMBER_TYPE_MAX",
                              "after must be >= 0 and limit between 1 and 1000.")
        entries = self._log[after:after + limit]
        return _Answer(200, {
            "entries": [{"position": after + i + 1, **asdict(e)}
                        for i, e in enumerate(entries)],
            "next": after + len(entries)})

    # --- Inspection (copies) ------------------------------------------------------------

    def channels(self, guild_id: str) -> list[JSON]:
        with self._lock:
            g = self._guild_or_key_error(guild_id)
            return [self._channel_json(c) for c in g.channels.values()]

    def channel(self, channel_id: str) -> JSON | None:
        with self._lock:
            gid = self._channel_guild.get(channel_id)
            if gid is not None:
                return self._channel_json(self._guilds[gid].channels[channel_id])
            dm = self._dms.get(channel_id)
            return self._channel_json(dm) if dm else None

    def roles(self, guild_id: str) -> list[JSON]:
        with self._lock:
            g = self._guild_or_key_error(guild_id)
            return [self._role_json(r) for r in g.roles.values()]

    def members(self, guild_id: str) -> list[JSON]:
        with self._lock:
            g = self._guild_or_key_error(guild_id)
            return [self._member_json(m) for m in g.members.values()]

    def messages(self, channel_id: str) -> list[JSON]:
        with self._lock:
            return [dict(m) for m in self._messages.get(channel_id, [])]

    def dm_messages(self, user_id: str) -> list[str]:
        """The contents of the bot's DMs to the user, oldest first."""
        with self._lock:
            return list(self._dm_messages.get(user_id, []))

    @property
    def log(self) -> list[AuditEntry]:
        with self._lock:
            return list(self._log)

    @property
    def visibility(self) -> list[VisibilityEntry]:
        with self._lock:
            return list(self._visibility)

    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    def visible_users(self, channel_id: str) -> set[str]:
        """Who sees the channel now (tracked members only: no bot, owner or admins)."""
        with self._lock:
            return set(self._visible.get(channel_id, ()))

    def view_intervals(self, channel_id: str) -> dict[str, list[tuple[float, float | None]]]:
        """Per member, the [start, end) intervals over which they could see the channel;
        end None = still visible."""
        with self._lock:
            entries = list(self._vis_by_channel.get(channel_id, ()))
        out: dict[str, list[tuple[float, float | None]]] = {}
        for e in entries:
            spans = out.setdefault(e.user_id, [])
            if e.visible:
                spans.append((e.at, None))
            elif spans and spans[-1][1] is None:
                spans[-1] = (spans[-1][0], e.at)
        return out

    # --- Rate limits and faults ---------------------------------------------------------

    def configure_rate_limits(
        self, per_route: tuple[int, float] | None = None, global_per_s: int | None = None,
        *, routes: Mapping[str, tuple[int, float]] | None = None,
    ) -> None:
        """``per_route=(limit, window_s)`` for every route and major parameter;
        ``global_per_s`` for all bot requests; ``routes`` overrides single routes, keyed
        ``"POST /guilds/{guild_id}/channels"``. None leaves a setting as it is. Resets
        the current windows."""
        with self._lock:
            if per_route is not None:
                self._per_route = (int(per_route[0]), float(per_route[1]))
            if global_per_s is not None:
                self._global_per_s = int(global_per_s)
            if routes is not None:
                self._route_limits = {k: (int(v[0]), float(v[1])) for k, v in routes.items()}
            self._windows.clear()
            self._global_window = _Window()

    def configure_limits(
        self, *, max_channels: int | None = None, max_roles: int | None = None,
        max_channels_per_category: int | None = None,
    ) -> None:
        """Lower (or restore) the guild limits — Discord's are 500 channels, 250 roles
        (@everyone and the bot's role count) and 50 channels per category — so tests can
        reach them cheaply. The error codes stay Discord's. None leaves a limit as it is."""
        with self._lock:
            if max_channels is not None:
                self.max_channels = max_channels
            if max_roles is not None:
                self.max_roles = max_roles
            if max_channels_per_category is not None:
                self.max_channels_per_category = max_channels_per_category

    def fail_next(self, n: int, status: int = 500, route: str | None = None) -> None:
        """The next ``n`` API requests (matching ``route``: a template such as
        ``/channels/{channel_id}`` or ``"DELETE /channels/{channel_id}"``) answer
        ``status`` without changing anything."""
        with self._lock:
            self._fail.append((n, status, route))

    def outage(self, on: bool = True) -> None:
        """While on, every request answers 503 and nothing changes."""
        with self._lock:
            self._outage = on

    def timeout_next(self, n: int, seconds: float, *, applied: bool = True,
                     route: str | None = None) -> None:
        """Hold the answers to the next ``n`` API requests for ``seconds`` (longer than
        the client's timeout). ``applied=True`` (default): the change is made, only the
        answer is late — as when Discord did the work and the client gave up waiting;
        ``applied=False``: nothing changes. ``route`` limits it to matching requests, as
        for ``fail_next``."""
        with self._lock:
            self._timeouts.append((n, float(seconds), applied, route))

    def rate_limit_storm(self, n: int, retry_after: float = 0.2, global_: bool = False) -> None:
        """The next ``n`` API requests answer 429 with ``retry_after``."""
        with self._lock:
            self._storm = (n, float(retry_after), global_)

    def configure_hidden_limits(self, **limits: tuple[int, float]) -> None:
        """Change a hidden limit (``channel_rename=(2, 600.0)`` is Discord's); forgets the
        requests counted so far."""
        with self._lock:
            for name, (limit, window_s) in limits.items():
                if name not in HIDDEN_LIMIT_RULES:
                    raise KeyError(f"unknown hidden limit {name}")
                self._hidden_limits[name] = (int(limit), float(window_s))
            self._hidden_hits.clear()

    def skip_time(self, seconds: float) -> None:
        """Let ``seconds`` pass for the hidden limits (a test need not wait ten minutes
        for a rename to be allowed again)."""
        with self._lock:
            self._hidden_skipped += float(seconds)

    def reset_faults(self) -> None:
        with self._lock:
            self._fail.clear()
            self._timeouts.clear()
            self._storm = None
            self._outage = False

    # --- Internals: ids, users, grants --------------------------------------------------

    def _next_id(self) -> str:
        stamp = (int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22
        self._last_id = max(self._last_id + 1, stamp)
        return str(self._last_id)

    def _create_user(self, username: str, global_name: str | None = None) -> str:
        user = _User(self._next_id(), username, global_name or username)
        self._users[user.id] = user
        return user.id

    def _guild_or_key_error(self, guild_id: str) -> _Guild:
        g = self._guilds.get(str(guild_id))
        if g is None:
            raise KeyError(f"unknown guild {guild_id}")
        return g

    def _issue_grant(self, user_id: str, scopes: tuple[str, ...], expires_in: int,
                     client_id: str | None) -> JSON:
        grant = _Grant(user_id=user_id, scopes=scopes,
                       access_token=secrets.token_urlsafe(24),
                       refresh_token=secrets.token_urlsafe(24),
                       expires_at=time.time() + expires_in, client_id=client_id)
        self._grants_by_access[grant.access_token] = grant
        self._grants_by_refresh[grant.refresh_token] = grant
        return {"access_token": grant.access_token, "token_type": "Bearer",
                "expires_in": expires_in, "refresh_token": grant.refresh_token,
                "scope": " ".join(scopes)}

    def _valid_grant(self, access_token: str) -> _Grant | None:
        grant = self._grants_by_access.get(access_token)
        if grant is None or grant.expires_at <= time.time():
            return None
        return grant

    # --- Internals: JSON ----------------------------------------------------------------

    def _user_json(self, user: _User) -> JSON:
        out: JSON = {"id": user.id, "username": user.username, "global_name": user.global_name,
                     "avatar": None, "discriminator": "0", "public_flags": 0, "flags": 0,
                     "banner": None, "accent_color": None, "avatar_decoration_data": None,
                     "collectibles": None, "primary_guild": None}
        if user.bot:
            out["bot"] = True
        return out

    def _own_user_json(self, user: _User) -> JSON:
        """``/users/@me``: the user object with the fields only its owner sees."""
        return {**self._user_json(user), "mfa_enabled": False, "locale": "en-US",
                "premium_type": 0, "verified": True, "email": None}

    def _application_json(self) -> JSON:
        """The bot's application (``/oauth2/applications/@me``); its id is the bot's."""
        bot = self._user_json(self._bot)
        owner = self._user_json(self._users[self._app_owner_id])
        return {"id": self._bot.id, "name": self._bot.username, "icon": None,
                "description": "", "type": None, "bot": bot, "bot_public": False,
                "bot_require_code_grant": False,
                "verify_key": hashlib.sha256(self._bot.id.encode()).hexdigest(),
                "flags": 0, "flags_new": "0", "redirect_uris": sorted(
                    {uri for app in self._apps.values() for uri in app.redirect_uris or ()}),
                "interactions_endpoint_url": None, "role_connections_verification_url": None,
                "owner": owner, "approximate_guild_count": len(self._guilds),
                "approximate_user_install_count": 0,
                "approximate_user_authorization_count": len(
                    {g.user_id for g in self._grants_by_access.values()}),
                "explicit_content_filter": 0, "team": None,
                "eligible_oauth2_scopes": ["identify", "guilds.join", "bot"]}

    def _role_json(self, role: _Role) -> JSON:
        out: JSON = {"id": role.id, "name": role.name, "color": role.color,
                     "hoist": role.hoist, "icon": None, "unicode_emoji": None,
                     "position": role.position, "permissions": str(role.permissions),
                     "managed": role.managed, "mentionable": role.mentionable, "flags": 0,
                     "colors": {"primary_color": role.color, "secondary_color": None,
                                "tertiary_color": None}}
        if role.bot_id:
            out["tags"] = {"bot_id": role.bot_id}
        return out

    def _channel_json(self, ch: _Channel) -> JSON:
        if ch.type == DM:
            recipient = self._users[ch.recipient_id or ""]
            return {"id": ch.id, "type": DM, "last_message_id": ch.last_message_id,
                    "flags": 0, "recipients": [self._user_json(recipient)]}
        out: JSON = {"id": ch.id, "type": ch.type, "guild_id": ch.guild_id, "name": ch.name,
                     "position": ch.position, "parent_id": ch.parent_id, "flags": 0,
                     "permission_overwrites": [o.to_json() for o in ch.overwrites.values()],
                     "nsfw": ch.nsfw}
        if ch.type == GUILD_TEXT:
            out.update(topic=ch.topic, rate_limit_per_user=ch.rate_limit_per_user,
                       last_message_id=ch.last_message_id)
        elif ch.type == GUILD_VOICE:
            out.update(bitrate=ch.bitrate, user_limit=ch.user_limit, rtc_region=ch.rtc_region,
                       rate_limit_per_user=ch.rate_limit_per_user,
                       last_message_id=ch.last_message_id)
        return out

    def _member_json(self, m: _Member) -> JSON:
        return {"user": self._user_json(self._users[m.user_id]), "nick": m.nick,
                "avatar": None, "banner": None, "roles": sorted(m.roles),
                "joined_at": m.joined_at,
                "premium_since": None, "deaf": False, "mute": False, "flags": 0,
                "pending": False, "communication_disabled_until": None}

    def _guild_json(self, g: _Guild, with_counts: bool) -> JSON:
        out: JSON = {"id": g.id, "name": g.name, "icon": None, "splash": None,
                     "owner_id": g.owner_id, "afk_channel_id": None, "afk_timeout": 300,
                     "verification_level": 0, "default_message_notifications": 0,
                     "explicit_content_filter": 0, "mfa_level": 0, "features": [],
                     "roles": [self._role_json(r) for r in g.roles.values()], "emojis": [],
                     "stickers": [], "system_channel_id": None, "premium_tier": 0,
                     "preferred_locale": "en-US", "nsfw_level": 0,
                     # the rest of what Discord's document says a guild always carries
                     "description": None, "home_header": None, "discovery_splash": None,
                     "banner": None, "application_id": None, "region": "deprecated",
                     "system_channel_flags": 0, "widget_enabled": False,
                     "widget_channel_id": None, "max_presences": None, "max_members": 500000,
                     "max_stage_video_channel_users": 50, "max_video_channel_users": 25,
                     "vanity_url_code": None, "premium_subscription_count": 0,
                     "rules_channel_id": None, "safety_alerts_channel_id": None,
                     "public_updates_channel_id": None, "premium_progress_bar_enabled": False,
                     "nsfw": False, "incidents_data": None}
        if with_counts:
            out["approximate_member_count"] = len(g.members)
            out["approximate_presence_count"] = 0
        return out

    # --- Internals: permissions ---------------------------------------------------------

    def _base(self, g: _Guild, m: _Member) -> int:
        return P.base_permissions(g.owner_id, g.roles[g.id].permissions,
                                  (g.roles[r].permissions for r in m.roles), m.user_id)

    def _in_channel(self, g: _Guild, ch: _Channel, m: _Member, base: int | None = None) -> int:
        if base is None:
            base = self._base(g, m)
        return P.effective(P.channel_permissions(base, ch.overwrites.values(), m.roles,
                                                 m.user_id, g.id))

    def _bot_member(self, g: _Guild) -> _Member:
        m = g.members.get(self._bot.id)
        if m is None:  # the bot was removed from the guild
            raise _err(403, 50001, "Missing Access")
        return m

    def _bot_top_position(self, g: _Guild) -> int:
        m = self._bot_member(g)
        return max((g.roles[r].position for r in m.roles), default=0)

    def _require_guild(self, g: _Guild, needed: int) -> int:
        base = self._base(g, self._bot_member(g))
        if base & needed != needed:
            raise _missing_permissions()
        return base

    def _require_channel(self, g: _Guild, ch: _Channel, needed: int) -> int:
        bits = self._in_channel(g, ch, self._bot_member(g))
        # Implicit rule: without VIEW_CHANNEL (and, in a voice channel, CONNECT) nothing
        # can be done in a channel, managing it included.
        if not bits & P.VIEW_CHANNEL or (ch.type == GUILD_VOICE and not bits & P.CONNECT):
            raise _missing_access()
        if bits & needed != needed:
            raise _missing_permissions()
        return bits

    def _check_overwrite_bits(self, g: _Guild, overwrites: Iterable[P.Overwrite],
                              ch: _Channel | None = None) -> None:
        """Only bits the bot holds in the guild may be allowed or denied; MANAGE_ROLES only
        by an administrator (or a bot holding a MANAGE_ROLES overwrite in the channel)."""
        base = self._base(g, self._bot_member(g))
        if base & P.ADMINISTRATOR:
            return
        grantable = base & ~P.MANAGE_ROLES
        if ch is not None and self._bot_has_manage_roles_overwrite(g, ch):
            return
        for ow in overwrites:
            if (ow.allow | ow.deny) & ~grantable:
                raise _missing_permissions()

    def _bot_has_manage_roles_overwrite(self, g: _Guild, ch: _Channel) -> bool:
        m = self._bot_member(g)
        for target in (m.user_id, *m.roles):
            ow = ch.overwrites.get(target)
            if ow is not None and ow.allow & P.MANAGE_ROLES:
                return True
        return False

    # --- Internals: visibility ----------------------------------------------------------

    def _tracked_sees(self, g: _Guild, ch: _Channel, uid: str,
                      bases: dict[str, int]) -> bool:
        m = g.members.get(uid)
        if m is None or uid == self._bot.id or uid == g.owner_id:
            return False
        base = bases.get(uid)
        if base is None:
            base = bases[uid] = self._base(g, m)
        if base & P.ADMINISTRATOR:
            return False
        return P.can_view(base, ch.overwrites.values(), m.roles, uid, g.id)

    def _candidates(self, g: _Guild, ch: _Channel) -> set[str]:
        """Members who might see the channel. When @everyone is denied VIEW_CHANNEL there
        (a private channel), only members named by an overwrite can (administrators are
        not tracked), which keeps a change O(overwrites), not O(members)."""
        everyone = ch.overwrites.get(g.id)
        if everyone is None or not everyone.deny & P.VIEW_CHANNEL \
                or everyone.allow & P.VIEW_CHANNEL:
            return set(g.members)
        out: set[str] = set()
        for ow in ch.overwrites.values():
            if ow.type == P.MEMBER:
                if ow.id in g.members:
                    out.add(ow.id)
            elif ow.id != g.id:
                out |= g.role_members.get(ow.id, set())
        return out

    def _refresh(self, g: _Guild, channel_ids: Iterable[str], at: float,
                 users: Iterable[str] | None = None) -> None:
        bases: dict[str, int] = {}
        only = set(users) if users is not None else None
        for cid in list(channel_ids):
            current = self._visible.get(cid, set())
            ch = g.channels.get(cid)
            if ch is None:
                targets = current if only is None else current & only
                for uid in sorted(targets):
                    self._set_visible(g, cid, uid, False, at)
                continue
            candidates = only if only is not None else self._candidates(g, ch) | current
            for uid in sorted(candidates):
                sees = self._tracked_sees(g, ch, uid, bases)
                if sees != (uid in current):
                    self._set_visible(g, cid, uid, sees, at)

    def _set_visible(self, g: _Guild, cid: str, uid: str, visible: bool, at: float) -> None:
        entry = VisibilityEntry(at=at, channel_id=cid, user_id=uid, visible=visible)
        self._visibility.append(entry)
        self._vis_by_channel.setdefault(cid, []).append(entry)
        seen = g.user_visible.setdefault(uid, set())
        if visible:
            self._visible.setdefault(cid, set()).add(uid)
            seen.add(cid)
        else:
            self._visible.get(cid, set()).discard(uid)
            seen.discard(cid)

    # --- Internals: changes -------------------------------------------------------------

    def _record(self, action: str, at: float, *, guild_id: str | None = None,
                channel_id: str | None = None, user_id: str | None = None,
                role_id: str | None = None, reason: str | None = None,
                actor: str = "bot", **details: Any) -> None:
        self._log.append(AuditEntry(at=at, action=action, guild_id=guild_id,
                                    channel_id=channel_id, user_id=user_id, role_id=role_id,
                                    reason=reason, details={"actor": actor, **details}))

    def _join(self, g: _Guild, uid: str, roles: set[str], at: float, *, reason: str | None,
              actor: str) -> _Member:
        m = _Member(user_id=uid, roles=set(), joined_at=_now_iso())
        g.members[uid] = m
        self._record("member_add", at, guild_id=g.id, user_id=uid, reason=reason, actor=actor)
        for role_id in roles:
            m.roles.add(role_id)
            g.role_members.setdefault(role_id, set()).add(uid)
        self._refresh(g, list(g.channels), at, users=[uid])
        return m

    def _leave(self, g: _Guild, uid: str, at: float, *, actor: str) -> None:
        m = g.members.pop(uid)
        for role_id in m.roles:
            g.role_members.get(role_id, set()).discard(uid)
        self._record("member_remove", at, guild_id=g.id, user_id=uid, actor=actor)
        self._refresh(g, list(g.user_visible.get(uid, ())), at, users=[uid])

    def _channels_affected_by_role(self, g: _Guild, role: _Role) -> Iterable[str]:
        if role.permissions & _VISIBILITY_BITS:
            return list(g.channels)
        return list(g.overwrite_index.get(role.id, ()))

    def _give_role(self, g: _Guild, uid: str, role_id: str, at: float, *,
                   reason: str | None, actor: str) -> bool:
        m = g.members[uid]
        if role_id == g.id or role_id in m.roles:
            return False
        role = g.roles[role_id]
        m.roles.add(role_id)
        g.role_members.setdefault(role_id, set()).add(uid)
        self._record("member_role_add", at, guild_id=g.id, user_id=uid, role_id=role_id,
                     reason=reason, actor=actor)
        self._refresh(g, self._channels_affected_by_role(g, role), at, users=[uid])
        return True

    def _take_role(self, g: _Guild, uid: str, role_id: str, at: float, *,
                   reason: str | None, actor: str) -> bool:
        m = g.members[uid]
        if role_id not in m.roles:
            return False
        role = g.roles[role_id]
        m.roles.discard(role_id)
        g.role_members.get(role_id, set()).discard(uid)
        self._record("member_role_remove", at, guild_id=g.id, user_id=uid, role_id=role_id,
                     reason=reason, actor=actor)
        self._refresh(g, self._channels_affected_by_role(g, role), at, users=[uid])
        return True

    def _set_role_permissions(self, g: _Guild, role: _Role, bits: int, at: float) -> None:
        before = role.permissions
        if before == bits:
            return
        role.permissions = bits
        self._record("role_update", at, guild_id=g.id, role_id=role.id, actor="setup",
                     permissions=[str(before), str(bits)])
        if (before ^ bits) & _VISIBILITY_BITS:
            users = set(g.members) if role.id == g.id else g.role_members.get(role.id, set())
            self._refresh(g, list(g.channels), at, users=set(users))

    def _new_role(self, g: _Guild, name: str, bits: int, at: float, reason: str | None,
                  actor: str, **attrs: Any) -> _Role:
        if len(g.roles) >= self.max_roles:
            raise _err(400, 30005, f"Maximum number of guild roles reached ({self.max_roles})")
        for r in g.roles.values():
            if r.position >= 1:
                r.position += 1
        role = _Role(self._next_id(), name, bits, 1, **attrs)
        g.roles[role.id] = role
        self._record("role_create", at, guild_id=g.id, role_id=role.id, reason=reason,
                     actor=actor, name=name, permissions=str(bits))
        return role

    def _index_overwrites(self, g: _Guild, ch: _Channel, old: Mapping[str, P.Overwrite],
                          new: Mapping[str, P.Overwrite]) -> None:
        for target in old.keys() - new.keys():
            g.overwrite_index.get(target, set()).discard(ch.id)
        for target in new.keys() - old.keys():
            g.overwrite_index.setdefault(target, set()).add(ch.id)

    def _parse_overwrites(self, g: _Guild, raw: Any,
                          field_name: str = "permission_overwrites") -> dict[str, P.Overwrite]:
        if raw is None:
            return {}
        if not isinstance(raw, list):
            raise _form_error([field_name], "LIST_TYPE_CONVERT", "Must be a list.")
        out: dict[str, P.Overwrite] = {}
        for i, item in enumerate(raw):
            where = [field_name, str(i)]
            if not isinstance(item, dict) or not _snowflake_like(item.get("id")):
                raise _form_error([*where, "id"], "NUMBER_TYPE_COERCE",
                                  "Value is not snowflake.")
            kind = item.get("type", P.ROLE)
            if isinstance(kind, bool) or kind not in (P.ROLE, P.MEMBER):
                raise _form_error([*where, "type"], "BASE_TYPE_CHOICES",
                                  "Value must be one of (0, 1).")
            try:
                ow = P.Overwrite.from_json(item)
            except (TypeError, ValueError) as exc:
                raise _form_error(where, "NUMBER_TYPE_COERCE", "Invalid overwrite.") from exc
            self._check_target(g, ow.id, ow.type, [*where, "id"])
            out[ow.id] = ow
        return out

    def _check_target(self, g: _Guild, target: str, kind: int, where: list[str]) -> None:
        if kind == P.ROLE and target not in g.roles:
            raise _form_error(where, "UNKNOWN_ROLE", f"Unknown role {target}.")
        if kind == P.MEMBER and target not in self._users:
            raise _form_error(where, "UNKNOWN_USER", f"Unknown user {target}.")

    def _check_name(self, raw: Any) -> str:
        if not isinstance(raw, str) or not 1 <= len(raw.strip()) <= 100:
            raise _form_error(["name"], "BASE_TYPE_BAD_LENGTH",
                              "Must be between 1 and 100 in length.")
        return raw.strip()

    def _check_parent(self, g: _Guild, parent_id: Any, kind: int,
                      moving: str | None = None) -> str | None:
        if parent_id is None:
            return None
        parent = g.channels.get(str(parent_id))
        if parent is None or parent.type != GUILD_CATEGORY or kind == GUILD_CATEGORY:
            raise _form_error(["parent_id"], "CHANNEL_PARENT_INVALID_TYPE",
                              "Not a category.")
        children = sum(1 for c in g.channels.values()
                       if c.parent_id == parent.id and c.id != moving)
        if children >= self.max_channels_per_category:
            raise _form_error(["parent_id"], "CHANNEL_PARENT_MAX_CHANNELS",
                              f"Maximum number of channels in category reached "
                              f"({self.max_channels_per_category})")
        return parent.id

    def _create_channel(self, g: _Guild, body: Any, at: float, reason: str | None,
                        actor: str, *, check: bool) -> _Channel:
        if not isinstance(body, dict):
            raise _form_error(["_root"], "DICT_TYPE_CONVERT", "Only dictionaries may be used.")
        name = self._check_name(body.get("name"))
        kind = body.get("type", GUILD_TEXT)
        if kind is None:
            kind = GUILD_TEXT
        if not isinstance(kind, int) or kind not in _CREATABLE_TYPES:
            raise _form_error(["type"], "BASE_TYPE_CHOICES",
                              "Value must be one of {0, 2, 4}.")
        raw_parent = body.get("parent_id")
        parent = g.channels.get(str(raw_parent)) if raw_parent is not None else None
        if check:
            if parent is not None and parent.type == GUILD_CATEGORY:
                self._require_channel(g, parent, P.MANAGE_CHANNELS)
            else:
                self._require_guild(g, P.MANAGE_CHANNELS)
        overwrites = self._parse_overwrites(g, body.get("permission_overwrites"))
        if check and overwrites:
            self._check_overwrite_bits(g, overwrites.values())
        if len(g.channels) >= self.max_channels:
            raise _err(400, 30013,
                       f"Maximum number of guild channels reached ({self.max_channels})")
        parent_id = self._check_parent(g, raw_parent, kind)
        if parent is not None and not overwrites and "permission_overwrites" not in body:
            overwrites = dict(parent.overwrites)  # synced with the category
        ch = _Channel(id=self._next_id(), type=kind, guild_id=g.id, name=name,
                      position=sum(1 for c in g.channels.values() if c.parent_id == parent_id),
                      parent_id=parent_id, overwrites=overwrites)
        for key in ("topic", "rtc_region"):
            if isinstance(body.get(key), str):
                setattr(ch, key, body[key])
        for key in ("bitrate", "user_limit", "rate_limit_per_user"):
            if isinstance(body.get(key), int):
                setattr(ch, key, body[key])
        ch.nsfw = bool(body.get("nsfw", False))
        g.channels[ch.id] = ch
        self._channel_guild[ch.id] = g.id
        self._index_overwrites(g, ch, {}, overwrites)
        self._record("channel_create", at, guild_id=g.id, channel_id=ch.id, reason=reason,
                     actor=actor, name=name, type=kind, parent_id=parent_id,
                     overwrites=[o.to_json() for o in overwrites.values()])
        self._refresh(g, [ch.id], at)
        return ch

    def _delete_channel(self, g: _Guild, ch: _Channel, at: float, reason: str | None,
                        actor: str) -> None:
        del g.channels[ch.id]
        del self._channel_guild[ch.id]
        self._index_overwrites(g, ch, ch.overwrites, {})
        if ch.type == GUILD_CATEGORY:
            for child in g.channels.values():
                if child.parent_id == ch.id:
                    child.parent_id = None
        self._record("channel_delete", at, guild_id=g.id, channel_id=ch.id, reason=reason,
                     actor=actor, name=ch.name, type=ch.type)
        self._refresh(g, [ch.id], at)

    # --- HTTP dispatch ------------------------------------------------------------------

    def _handle(self, method: str, raw_path: str, headers: Mapping[str, str],
                body: bytes) -> _Answer:
        """Answer one request; ``headers`` have lower-case names."""
        arrived = time.time()
        parts = urlsplit(raw_path)
        path = parts.path
        if path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/"):
            with self._lock:
                return self._admin(method, path.removeprefix(ADMIN_PREFIX), parts.query,
                                   headers, body)
        prefixed = _PREFIX.match(path)
        route: _Route | None = None
        params: dict[str, str] = {}
        known_path = False
        if prefixed or path == "/oauth2/authorize":
            api_path = prefixed.group(1) if prefixed else path
            for candidate in _ROUTES:
                match = candidate.regex.match(api_path)
                if match is None:
                    continue
                known_path = True
                if candidate.method == method:
                    route, params = candidate, match.groupdict()
                    break
            if not prefixed and route is not None and route.auth != "page":
                route = None
        template = route.template if route else path
        with self._lock:
            try:
                answer = self._process(route, method, params, parts.query, headers, body)
            except _Fail as exc:
                answer = _Answer(exc.status, exc.body)
            if route is None:
                answer = _Answer(405, {"message": "405: Method Not Allowed", "code": 0}) \
                    if known_path else _Answer(404, {"message": "404: Not Found", "code": 0})
            if answer.status in (401, 403) or (
                    answer.status == 429 and answer.headers.get("X-RateLimit-Scope") != "shared"):
                self.invalid_request_count += 1
            self._calls.append(Call(arrived, method, template, answer.status))
            return answer

    def _process(self, route: _Route | None, method: str, params: dict[str, str],
                 query: str, headers: Mapping[str, str], raw: bytes) -> _Answer:
        if route is None:
            return _Answer(404)  # replaced by the caller
        at = time.time()
        if route.auth == "page":
            return self._h_oauth_authorize(dict(parse_qsl(query)), at)
        major = ",".join(params[p] for p in _MAJOR if p in params)

        def as_is(answer: _Answer) -> _Answer:
            """An answer that skips the rate limit still carries its headers."""
            peeked = self._rate_limit(method, route.template, major, False, consume=False)[1]
            answer.headers = {**peeked, **answer.headers}
            return answer

        if self._outage:
            return as_is(_Answer(503, {"message": "503: Service Unavailable", "code": 0}))
        fault = self._take_fault(method, route.template)
        if fault is not None:
            return as_is(fault)
        hold, applied = self._take_timeout(method, route.template)
        if hold and not applied:
            return as_is(_Answer(504, {"message": "504: Gateway Timeout", "code": 0},
                                 hold=hold))

        grant: _Grant | None = None
        if route.auth != "none":
            auth = headers.get("authorization") or ""
            scheme, _, credential = auth.partition(" ")
            if scheme == "Bearer" and route.auth == "bot_or_user":
                grant = self._valid_grant(credential)
                if grant is None:
                    return as_is(_Answer(401, {"message": "401: Unauthorized", "code": 0}))
            elif scheme != "Bot" or not secrets.compare_digest(credential.encode(),
                                                               self._bot_token.encode()):
                return as_is(_Answer(401, {"message": "401: Unauthorized", "code": 0}))

        # Only the bot's own requests count towards its global limit.
        limited, rl_headers = self._rate_limit(method, route.template, major,
                                               count=route.auth != "none" and grant is None)
        if limited is not None:
            return limited
        try:
            body = self._parse_body(headers, raw)
            reason_raw = headers.get("x-audit-log-reason")
            ctx = _Ctx(method=method, template=route.template, params=params,
                       query=dict(parse_qsl(query)), body=body,
                       reason=unquote(reason_raw) if reason_raw else None, at=at, grant=grant,
                       authorization=headers.get("authorization"))
            hidden = self._hidden_limit(method, route.template, major, body)
            if hidden is not None and hidden[1] > 0:
                # Discord's answer to a hidden limit: the route's headers as they are (its
                # bucket is not empty), a retry_after of its own, scope "user".
                answer = self._too_many(hidden[1], False, "user", rl_headers)
                answer.hold = hold
                return answer
            handler: Callable[[_Ctx], _Answer] = getattr(self, "_h_" + route.handler)
            answer = handler(ctx)
            if hidden is not None and answer.status < 300:
                self._hidden_hits.setdefault((hidden[0], major), []).append(
                    self._hidden_now())
        except _Fail as exc:
            answer = _Answer(exc.status, exc.body)
        answer.headers.update(rl_headers)
        answer.hold = hold
        return answer

    def _hidden_now(self) -> float:
        return time.monotonic() + self._hidden_skipped

    def _hidden_limit(self, method: str, template: str, major: str,
                      body: Any) -> tuple[str, float] | None:
        """The hidden limit this request falls under, if any, and how long until it may
        be made (0: now). Sliding window over the requests that succeeded."""
        for name, (rule_method, rule_template, fields) in HIDDEN_LIMIT_RULES.items():
            if (method, template) != (rule_method, rule_template):
                continue
            if not isinstance(body, dict) or not any(f in body for f in fields):
                continue
            limit, window_s = self._hidden_limits[name]
            now = self._hidden_now()
            hits = [t for t in self._hidden_hits.get((name, major), []) if t > now - window_s]
            self._hidden_hits[(name, major)] = hits
            wait = hits[-limit] + window_s - now if len(hits) >= limit > 0 else 0.0
            if limit <= 0:
                wait = window_s
            return name, wait
        return None

    def _take_fault(self, method: str, template: str) -> _Answer | None:
        for i, (remaining, status, route) in enumerate(self._fail):
            if route is not None and route not in (template, f"{method} {template}"):
                continue
            if remaining <= 1:
                del self._fail[i]
            else:
                self._fail[i] = (remaining - 1, status, route)
            if status == 429:
                return self._too_many(0.05, False, "user")
            phrase = {500: "Internal Server Error", 502: "Bad Gateway",
                      503: "Service Unavailable", 504: "Gateway Timeout"}.get(status, "Error")
            return _Answer(status, {"message": f"{status}: {phrase}", "code": 0})
        if self._storm is not None:
            remaining, retry_after, is_global = self._storm
            self._storm = (remaining - 1, retry_after, is_global) if remaining > 1 else None
            answer = self._too_many(retry_after, is_global, scope="global" if is_global
                                    else "user")
            if not is_global:  # the route's bucket is empty until retry_after has passed
                answer.headers.update({"X-RateLimit-Remaining": "0",
                                       "X-RateLimit-Reset-After": f"{retry_after:.3f}",
                                       "X-RateLimit-Reset": f"{time.time() + retry_after:.3f}"})
            return answer
        return None

    def _take_timeout(self, method: str, template: str) -> tuple[float, bool]:
        for i, (remaining, seconds, applied, route) in enumerate(self._timeouts):
            if route is not None and route not in (template, f"{method} {template}"):
                continue
            if remaining <= 1:
                del self._timeouts[i]
            else:
                self._timeouts[i] = (remaining - 1, seconds, applied, route)
            return seconds, applied
        return 0.0, True

    @staticmethod
    def _too_many(retry_after: float, is_global: bool, scope: str,
                  headers: Mapping[str, str] | None = None) -> _Answer:
        retry_after = round(max(retry_after, 0.001), 3)
        out = dict(headers or {})
        out["Retry-After"] = str(max(1, math.ceil(retry_after)))
        out["X-RateLimit-Scope"] = scope
        if is_global:
            out["X-RateLimit-Global"] = "true"
        # "code" 0: Discord's document makes it required on every error (its docs' example
        # leaves it out); clients read message, retry_after and global.
        return _Answer(429, {"message": "You are being rate limited.",
                             "retry_after": retry_after, "global": is_global, "code": 0}, out)

    def _rate_limit(self, method: str, template: str, major: str, count: bool,
                    consume: bool = True) -> tuple[_Answer | None, dict[str, str]]:
        """Fixed windows: one per route and major parameter, one global (per second).
        ``consume=False`` only reports the route's window (for answers that skip it)."""
        now = time.monotonic()
        route_key = f"{method} {template}"
        bucket_hash = hashlib.sha256(route_key.encode()).hexdigest()[:32]
        limit, window_s = self._route_limits.get(route_key, self._per_route)
        window = self._windows.setdefault(f"{bucket_hash}:{major}", _Window())
        if now >= window.start + window_s:
            window.start, window.count = now, 0
        reset_after = math.ceil((window.start + window_s - now) * 1000) / 1000

        def headers(remaining: int) -> dict[str, str]:
            return {"X-RateLimit-Limit": str(limit),
                    "X-RateLimit-Remaining": str(max(remaining, 0)),
                    "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
                    "X-RateLimit-Reset-After": f"{reset_after:.3f}",
                    "X-RateLimit-Bucket": bucket_hash}

        if not consume:
            return None, headers(limit - window.count)
        if count:
            gw = self._global_window
            if now >= gw.start + 1.0:
                gw.start, gw.count = now, 0
            if gw.count >= self._global_per_s:
                return self._too_many(gw.start + 1.0 - now, True, "global",
                                      headers(limit - window.count)), {}
        if window.count >= limit:
            return self._too_many(reset_after, False, "user", headers(0)), {}
        window.count += 1
        if count:
            self._global_window.count += 1
        return None, headers(limit - window.count)

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
        except ValueError as exc:
            raise _err(400, 50109, "The request body contains invalid JSON.") from exc

    # --- Route handlers: lookups --------------------------------------------------------

    def _guild(self, ctx: _Ctx) -> _Guild:
        g = self._guilds.get(ctx.params["guild_id"])
        if g is None:
            raise _err(404, 10004, "Unknown Guild")
        return g

    def _guild_channel(self, ctx: _Ctx) -> tuple[_Guild, _Channel]:
        cid = ctx.params["channel_id"]
        gid = self._channel_guild.get(cid)
        if gid is None:
            raise _unknown_channel()
        g = self._guilds[gid]
        return g, g.channels[cid]

    def _known_user(self, uid: str) -> _User:
        user = self._users.get(uid)
        if user is None:
            raise _err(404, 10013, "Unknown User")
        return user

    def _dict_body(self, ctx: _Ctx) -> JSON:
        if ctx.body is None:
            return {}
        if not isinstance(ctx.body, dict):
            raise _form_error(["_root"], "DICT_TYPE_CONVERT", "Only dictionaries may be used.")
        return ctx.body

    # --- Route handlers -----------------------------------------------------------------

    def _h_get_current_user(self, ctx: _Ctx) -> _Answer:
        if ctx.grant is None:
            return _Answer(200, self._own_user_json(self._bot))
        if "identify" not in ctx.grant.scopes:
            return _Answer(401, {"message": "401: Unauthorized", "code": 0})
        return _Answer(200, self._own_user_json(self._users[ctx.grant.user_id]))

    def _h_get_application(self, ctx: _Ctx) -> _Answer:
        return _Answer(200, self._application_json())

    def _h_get_user(self, ctx: _Ctx) -> _Answer:
        return _Answer(200, self._user_json(self._known_user(ctx.params["user_id"])))

    def _h_get_guild(self, ctx: _Ctx) -> _Answer:
        g = self._guild(ctx)
        # Discord reads a query boolean as true from "true", "True" or "1".
        with_counts = ctx.query.get("with_counts", "").lower() in ("true", "1")
        return _Answer(200, self._guild_json(g, with_counts))

    def _h_list_channels(self, ctx: _Ctx) -> _Answer:
        g = self._guild(ctx)
        return _Answer(200, [self._channel_json(c) for c in g.channels.values()])

    def _h_list_roles(self, ctx: _Ctx) -> _Answer:
        g = self._guild(ctx)
        return _Answer(200, [self._role_json(r) for r in g.roles.values()])

    def _h_create_channel(self, ctx: _Ctx) -> _Answer:
        g = self._guild(ctx)
        ch = self._create_channel(g, self._dict_body(ctx), ctx.at, ctx.reason, "bot",
                                  check=True)
        return _Answer(201, self._channel_json(ch))

    def _h_get_channel(self, ctx: _Ctx) -> _Answer:
        dm = self._dms.get(ctx.params["channel_id"])
        if dm is not None:
            return _Answer(200, self._channel_json(dm))
        g, ch = self._guild_channel(ctx)
        self._require_channel(g, ch, 0)
        return _Answer(200, self._channel_json(ch))

    def _h_modify_channel(self, ctx: _Ctx) -> _Answer:
        g, ch = self._guild_channel(ctx)
        body = self._dict_body(ctx)
        self._require_channel(g, ch, P.MANAGE_CHANNELS)
        changes: JSON = {}
        new_overwrites: dict[str, P.Overwrite] | None = None
        if "permission_overwrites" in body and body["permission_overwrites"] is not None:
            self._require_channel(g, ch, P.MANAGE_ROLES)
            new_overwrites = self._parse_overwrites(g, body["permission_overwrites"])
            self._check_overwrite_bits(g, new_overwrites.values(), ch)
        updates: JSON = {}
        if "name" in body:
            updates["name"] = self._check_name(body["name"])
        if "parent_id" in body and body["parent_id"] != ch.parent_id:
            updates["parent_id"] = self._check_parent(g, body["parent_id"], ch.type,
                                                      moving=ch.id)
        if "topic" in body:
            topic = body["topic"]
            if topic is not None and (not isinstance(topic, str) or len(topic) > 1024):
                raise _form_error(["topic"], "BASE_TYPE_MAX_LENGTH",
                                  "Must be 1024 or fewer in length.")
            updates["topic"] = topic
        for key in ("position", "bitrate", "user_limit", "rate_limit_per_user"):
            if key in body:
                if not isinstance(body[key], int) or isinstance(body[key], bool):
                    raise _form_error([key], "NUMBER_TYPE_COERCE", "Value is not int.")
                updates[key] = body[key]
        if "nsfw" in body:
            updates["nsfw"] = bool(body["nsfw"])
        if "rtc_region" in body:
            updates["rtc_region"] = body["rtc_region"]
        for key, value in updates.items():
            old = getattr(ch, key)
            if old != value:
                changes[key] = [old, value]
                setattr(ch, key, value)
        if new_overwrites is not None and new_overwrites != ch.overwrites:
            changes["permission_overwrites"] = [
                [o.to_json() for o in ch.overwrites.values()],
                [o.to_json() for o in new_overwrites.values()]]
            self._index_overwrites(g, ch, ch.overwrites, new_overwrites)
            ch.overwrites = new_overwrites
        if changes:
            self._record("channel_update", ctx.at, guild_id=g.id, channel_id=ch.id,
                         reason=ctx.reason, changes=changes)
            if "permission_overwrites" in changes:
                self._refresh(g, [ch.id], ctx.at)
        return _Answer(200, self._channel_json(ch))

    def _h_delete_channel(self, ctx: _Ctx) -> _Answer:
        dm = self._dms.get(ctx.params["channel_id"])
        if dm is not None:  # closing a DM: nothing to log
            return _Answer(200, self._channel_json(dm))
        g, ch = self._guild_channel(ctx)
        self._require_channel(g, ch, P.MANAGE_CHANNELS)
        out = self._channel_json(ch)
        self._delete_channel(g, ch, ctx.at, ctx.reason, "bot")
        return _Answer(200, out)

    def _h_put_overwrite(self, ctx: _Ctx) -> _Answer:
        g, ch = self._guild_channel(ctx)
        body = self._dict_body(ctx)
        self._require_channel(g, ch, P.MANAGE_ROLES)
        target = ctx.params["overwrite_id"]
        kind = body.get("type")
        # v10 takes 0 or 1 only: API v6's "role" and "member" are refused.
        if kind not in (P.ROLE, P.MEMBER) or isinstance(kind, bool):
            raise _form_error(["type"], "BASE_TYPE_CHOICES", "Value must be one of (0, 1).")
        try:
            ow = P.Overwrite(id=target, type=int(kind), allow=P.parse(body.get("allow")),
                             deny=P.parse(body.get("deny")))
        except (TypeError, ValueError) as exc:
            raise _form_error(["allow"], "NUMBER_TYPE_COERCE", "Invalid bits.") from exc
        self._check_target(g, target, ow.type, ["id"])
        self._check_overwrite_bits(g, [ow], ch)
        old = ch.overwrites.get(target)
        if old == ow:
            return _Answer(204)
        new = dict(ch.overwrites)
        new[target] = ow
        self._index_overwrites(g, ch, ch.overwrites, new)
        ch.overwrites = new
        self._record("overwrite_update", ctx.at, guild_id=g.id, channel_id=ch.id,
                     user_id=target if ow.type == P.MEMBER else None,
                     role_id=target if ow.type == P.ROLE else None, reason=ctx.reason,
                     overwrite=ow.to_json(), previous=old.to_json() if old else None)
        self._refresh(g, [ch.id], ctx.at)
        return _Answer(204)

    def _h_delete_overwrite(self, ctx: _Ctx) -> _Answer:
        g, ch = self._guild_channel(ctx)
        self._require_channel(g, ch, P.MANAGE_ROLES)
        target = ctx.params["overwrite_id"]
        old = ch.overwrites.get(target)
        if old is None:
            return _Answer(204)
        new = {k: v for k, v in ch.overwrites.items() if k != target}
        self._index_overwrites(g, ch, ch.overwrites, new)
        ch.overwrites = new
        self._record("overwrite_delete", ctx.at, guild_id=g.id, channel_id=ch.id,
                     user_id=target if old.type == P.MEMBER else None,
                     role_id=target if old.type == P.ROLE else None, reason=ctx.reason,
                     previous=old.to_json())
        self._refresh(g, [ch.id], ctx.at)
        return _Answer(204)

    def _h_create_role(self, ctx: _Ctx) -> _Answer:
        g = self._guild(ctx)
        body = self._dict_body(ctx)
        base = self._require_guild(g, P.MANAGE_ROLES)
        name = body.get("name") if body.get("name") is not None else "new role"
        if not isinstance(name, str) or len(name) > 100:
            raise _form_error(["name"], "BASE_TYPE_MAX_LENGTH",
                              "Must be 100 or fewer in length.")
        try:
            bits = P.parse(body.get("permissions")) if "permissions" in body \
                else g.roles[g.id].permissions
        except (TypeError, ValueError) as exc:
            raise _form_error(["permissions"], "NUMBER_TYPE_COERCE", "Invalid bits.") from exc
        if not base & P.ADMINISTRATOR and bits & ~base:
            raise _missing_permissions()
        role = self._new_role(g, name, bits, ctx.at, ctx.reason, "bot",
                              color=int(body.get("color") or 0),
                              hoist=bool(body.get("hoist", False)),
                              mentionable=bool(body.get("mentionable", False)))
        return _Answer(200, self._role_json(role))

    def _h_delete_role(self, ctx: _Ctx) -> _Answer:
        g = self._guild(ctx)
        role = g.roles.get(ctx.params["role_id"])
        if role is None:
            raise _err(404, 10011, "Unknown Role")
        self._require_guild(g, P.MANAGE_ROLES)
        if role.id == g.id or role.managed:
            raise _err(400, 50028, "Invalid Role")
        if role.position >= self._bot_top_position(g):
            raise _missing_permissions()
        holders = set(g.role_members.pop(role.id, set()))
        channels = set(self._channels_affected_by_role(g, role))
        for uid in holders:
            g.members[uid].roles.discard(role.id)
        for cid in list(g.overwrite_index.get(role.id, ())):
            ch = g.channels[cid]
            new = {k: v for k, v in ch.overwrites.items() if k != role.id}
            self._index_overwrites(g, ch, ch.overwrites, new)
            ch.overwrites = new
        del g.roles[role.id]
        for r in g.roles.values():
            if r.position > role.position:
                r.position -= 1
        self._record("role_delete", ctx.at, guild_id=g.id, role_id=role.id,
                     reason=ctx.reason, name=role.name, holders=sorted(holders))
        self._refresh(g, channels, ctx.at, users=holders)
        return _Answer(204)

    def _h_get_member(self, ctx: _Ctx) -> _Answer:
        g = self._guild(ctx)
        uid = ctx.params["user_id"]
        self._known_user(uid)
        m = g.members.get(uid)
        if m is None:
            raise _err(404, 10007, "Unknown Member")
        return _Answer(200, self._member_json(m))

    def _h_add_guild_member(self, ctx: _Ctx) -> _Answer:
        g = self._guild(ctx)
        uid = ctx.params["user_id"]
        self._known_user(uid)
        body = self._dict_body(ctx)
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise _form_error(["access_token"], "BASE_TYPE_REQUIRED",
                              "This field is required")
        if uid in g.members:
            return _Answer(204)
        self._require_guild(g, P.CREATE_INSTANT_INVITE)
        grant = self._valid_grant(token)
        if grant is None or grant.user_id != uid or "guilds.join" not in grant.scopes:
            raise _err(403, 50025, "Invalid OAuth2 access token")
        roles: set[str] = set()
        raw_roles = body.get("roles")
        if raw_roles:
            if not isinstance(raw_roles, list) or any(str(r) not in g.roles for r in raw_roles):
                raise _form_error(["roles"], "UNKNOWN_ROLE", "Unknown role.")
            self._require_guild(g, P.MANAGE_ROLES)
            top = self._bot_top_position(g)
            for r in raw_roles:
                role = g.roles[str(r)]
                if role.managed or role.position >= top:
                    raise _missing_permissions()
                if role.id != g.id:
                    roles.add(role.id)
        m = self._join(g, uid, set(), ctx.at, reason=ctx.reason, actor="bot")
        for role_id in sorted(roles):
            self._give_role(g, uid, role_id, ctx.at, reason=ctx.reason, actor="bot")
        return _Answer(201, self._member_json(m))

    def _member_role_target(self, ctx: _Ctx) -> tuple[_Guild, str, str | None]:
        g = self._guild(ctx)
        uid, role_id = ctx.params["user_id"], ctx.params["role_id"]
        if uid not in g.members:
            raise _err(404, 10007, "Unknown Member")
        role = g.roles.get(role_id)
        if role is None:
            raise _err(404, 10011, "Unknown Role")
        self._require_guild(g, P.MANAGE_ROLES)
        if role.id == g.id:
            return g, uid, None
        if role.managed or role.position >= self._bot_top_position(g):
            raise _missing_permissions()
        return g, uid, role.id

    def _h_add_member_role(self, ctx: _Ctx) -> _Answer:
        g, uid, role_id = self._member_role_target(ctx)
        if role_id is not None:
            self._give_role(g, uid, role_id, ctx.at, reason=ctx.reason, actor="bot")
        return _Answer(204)

    def _h_remove_member_role(self, ctx: _Ctx) -> _Answer:
        g, uid, role_id = self._member_role_target(ctx)
        if role_id is not None:
            self._take_role(g, uid, role_id, ctx.at, reason=ctx.reason, actor="bot")
        return _Answer(204)

    def _h_create_dm(self, ctx: _Ctx) -> _Answer:
        body = self._dict_body(ctx)
        rid = body.get("recipient_id")
        if not _snowflake_like(rid):
            raise _form_error(["recipient_id"], "NUMBER_TYPE_COERCE", "Value is not snowflake.")
        user = self._known_user(str(rid))
        existing = self._dm_by_user.get(user.id)
        if existing is not None:
            return _Answer(200, self._channel_json(self._dms[existing]))
        dm = _Channel(id=self._next_id(), type=DM, guild_id=None, name="",
                      recipient_id=user.id)
        self._dms[dm.id] = dm
        self._dm_by_user[user.id] = dm.id
        return _Answer(200, self._channel_json(dm))

    def _h_create_message(self, ctx: _Ctx) -> _Answer:
        body = self._dict_body(ctx)
        cid = ctx.params["channel_id"]
        dm = self._dms.get(cid)
        guild_id: str | None = None
        if dm is not None:
            user = self._users[dm.recipient_id or ""]
            shares_guild = any(user.id in g.members and self._bot.id in g.members
                               for g in self._guilds.values())
            if not user.dm_open or not shares_guild:
                raise _err(403, 50007, "Cannot send messages to this user")
            ch = dm
        else:
            g, ch = self._guild_channel(ctx)
            guild_id = g.id
            if ch.type not in _MESSAGEABLE_TYPES:
                raise _err(400, 50008, "Cannot send messages in a non-text channel")
            self._require_channel(g, ch, P.SEND_MESSAGES)
        content = body.get("content")
        if content is None or content == "":
            raise _err(400, 50006, "Cannot send an empty message")
        if not isinstance(content, str) or len(content) > 2000:
            raise _form_error(["content"], "BASE_TYPE_MAX_LENGTH",
                              "Must be 2000 or fewer in length.")
        message: JSON = {"id": self._next_id(), "type": 0, "channel_id": ch.id,
                         "content": content, "author": self._user_json(self._bot),
                         "timestamp": _now_iso(), "edited_timestamp": None, "tts": False,
                         "mention_everyone": False, "mentions": [], "mention_roles": [],
                         "attachments": [], "embeds": [], "pinned": False, "flags": 0,
                         "components": []}
        ch.last_message_id = message["id"]
        self._messages.setdefault(ch.id, []).append(message)
        if dm is not None:
            self._dm_messages.setdefault(dm.recipient_id or "", []).append(content)
        self._record("message_create", ctx.at, guild_id=guild_id, channel_id=ch.id,
                     user_id=dm.recipient_id if dm else None, reason=ctx.reason,
                     message_id=message["id"], content=content, dm=dm is not None)
        return _Answer(200, message)

    # --- OAuth2 -------------------------------------------------------------------------

    def _h_oauth_authorize(self, q: dict[str, str], at: float) -> _Answer:
        def page(status: int, text: str) -> _Answer:
            return _Answer(status, raw=text.encode(),
                           headers={"Content-Type": "text/plain; charset=utf-8"})

        app = self._apps.get(q.get("client_id", ""))
        if app is None:
            return page(400, "Unknown application (client_id); "
                             "call emu.register_oauth_app() first.")
        redirect_uri = q.get("redirect_uri")
        if not redirect_uri or (app.redirect_uris is not None
                                and redirect_uri not in app.redirect_uris):
            return page(400, "Invalid OAuth2 redirect_uri")
        uid = q.get("emulator_user") or self._authorize_user
        params: dict[str, str] = {}
        if uid is None and self._consent_page and q.get("emulator_consent") != "deny":
            name = q.get("emulator_username", "").strip()
            if not _CONSENT_USERNAME.fullmatch(name):
                return self._consent_answer(q, retry="emulator_consent" in q)
            uid = self._create_user(name.lower(), name)
        if uid is None and self._consent_page:
            params["error"] = "access_denied"  # the person pressed Cancel
        elif uid is None or uid not in self._users:
            return page(400, "No user to authorize as: call emu.authorize_as(user_id) or "
                             "pass emulator_user=<id>.")
        elif q.get("response_type") != "code":
            params["error"] = "unsupported_response_type"
        else:
            code = secrets.token_urlsafe(18)
            scopes = tuple(q.get("scope", "identify").replace("+", " ").split())
            self._codes[code] = _Code(client_id=q["client_id"], user_id=uid,
                                      redirect_uri=redirect_uri, scopes=scopes,
                                      expires_at=at + AUTH_CODE_LIFETIME)
            params["code"] = code
        if "state" in q:
            params["state"] = q["state"]
        sep = "&" if "?" in redirect_uri else "?"
        return _Answer(302, raw=b"", headers={"Location": redirect_uri + sep + urlencode(params)})

    @staticmethod
    def _consent_answer(q: Mapping[str, str], *, retry: bool) -> _Answer:
        """The consent page (``show_consent_page``): the authorize request's parameters as
        hidden fields, a username, Authorize and Cancel (both submit to this page)."""
        esc = html.escape
        hidden = "".join(
            f'<input type="hidden" name="{esc(k)}" value="{esc(v)}">' for k, v in q.items()
            if not k.startswith("emulator_"))
        scopes = {"identify": "Know your username and avatar",
                  "guilds.join": "Join servers for you"}
        asked = "".join(f"<li>{esc(scopes.get(s, s))}</li>"
                        for s in q.get("scope", "identify").replace("+", " ").split())
        error = ('<p class="err" role="alert">A username is 2 to 32 letters, digits, dots or '
                 'underscores.</p>' if retry else "")
        body = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Authorize access · Discord (local emulator)</title><style>
body{{font-family:system-ui,sans-serif;background:#313338;color:#f2f3f5;margin:0;padding:1rem}}
main{{max-width:26rem;margin:2rem auto;background:#2b2d31;border-radius:8px;padding:1.5rem}}
h1{{font-size:1.3rem;margin-top:0}} .note{{color:#c4c9ce;font-size:.9rem}}
label{{display:block;margin:1rem 0 .3rem;font-weight:600}}
input[type=text]{{width:100%;box-sizing:border-box;padding:.6rem;border-radius:4px;
border:1px solid #6d6f78;background:#1e1f22;color:#f2f3f5;font-size:1rem}}
.row{{display:flex;gap:.5rem;margin-top:1.2rem}} button{{flex:1;padding:.7rem;border:0;
border-radius:4px;font-size:1rem;cursor:pointer}} .ok{{background:#4752c4;color:#fff}}
.no{{background:#4e5058;color:#fff}} .err{{color:#fca5a5}}</style></head><body><main>
<h1>An application wants to access your Discord account</h1>
<p class="note">This is coachgate's local Discord emulator, not discord.com: no real
Discord account is used. Pick a username for a new emulated Discord account.</p>
<p>It will be able to:</p><ul>{asked}</ul>
<form method="get" action="/oauth2/authorize">{hidden}{error}
<label for="emulator_username">Discord username</label>
<input type="text" id="emulator_username" name="emulator_username" required
 minlength="2" maxlength="32" pattern="[A-Za-z0-9_.]{{2,32}}" autocomplete="off" autofocus>
<div class="row"><button class="no" type="submit" name="emulator_consent" value="deny"
 formnovalidate>Cancel</button><button class="ok" type="submit" name="emulator_consent"
 value="allow">Authorize</button></div></form></main></body></html>"""
        return _Answer(200, raw=body.encode(),
                       headers={"Content-Type": "text/html; charset=utf-8"})

    def _h_oauth_token(self, ctx: _Ctx) -> _Answer:
        def oauth_error(status: int, error: str, description: str) -> _Answer:
            return _Answer(status, {"error": error, "error_description": description})

        form = ctx.body if isinstance(ctx.body, dict) else {}
        # Client credentials by HTTP basic auth or in the form, as Discord accepts both.
        client_id = str(form.get("client_id") or "")
        secret = str(form.get("client_secret") or "")
        scheme, _, credential = (ctx.authorization or "").partition(" ")
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(credential, validate=True).decode()
            except ValueError:
                decoded = ":"
            basic_id, _, basic_secret = decoded.partition(":")
            client_id, secret = unquote(basic_id), unquote(basic_secret)
        app = self._apps.get(client_id)
        if app is None or not secrets.compare_digest(app.client_secret.encode(),
                                                           secret.encode()):
            return oauth_error(401, "invalid_client", "Invalid client credentials.")
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            code = self._codes.pop(str(form.get("code") or ""), None)
            if code is None or code.expires_at <= time.time() or code.client_id != client_id \
                    or (code.redirect_uri is not None
                        and form.get("redirect_uri") != code.redirect_uri):
                return oauth_error(400, "invalid_grant", 'Invalid "code" in request.')
            return _Answer(200, self._issue_grant(code.user_id, code.scopes,
                                                  DEFAULT_TOKEN_LIFETIME, client_id))
        if grant_type == "refresh_token":
            old = self._grants_by_refresh.get(str(form.get("refresh_token") or ""))
            if old is None or (old.client_id is not None and old.client_id != client_id):
                return oauth_error(400, "invalid_grant", 'Invalid "refresh_token" in request.')
            del self._grants_by_refresh[old.refresh_token]
            self._grants_by_access.pop(old.access_token, None)
            return _Answer(200, self._issue_grant(old.user_id, old.scopes,
                                                  DEFAULT_TOKEN_LIFETIME, client_id))
        return oauth_error(400, "unsupported_grant_type", "Unsupported grant type.")


# --- HTTP server --------------------------------------------------------------------------


class _Server(TrackingServer):
    emulator: DiscordEmulator


class _Handler(TrackedHandler):
    server_version = "discord-emulator"

    def _serve(self) -> None:
        server = cast(_Server, self.server)
        emulator = server.emulator
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
            answer.headers.setdefault("Content-Type", "application/json")
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
        prog="python -m coachgate.integrations.discord.emulator",
        description="A local Discord emulator: makes a guild, prints one JSON line "
                    "(base_url, guild_id, bot_token), serves until Ctrl-C.")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--guild-name", default="coachgate")
    parser.add_argument("--oauth-client-id", default="coachgate-emulator",
                        help="an OAuth2 application to register")
    parser.add_argument("--oauth-client-secret", default="coachgate-emulator-secret")
    parser.add_argument("--user", action="append", default=[],
                        help="a user to create and add to the guild (repeatable); the "
                             "first one is who /oauth2/authorize approves as")
    args = parser.parse_args(argv)

    emu = DiscordEmulator(port=args.port).start()

    def describe() -> dict[str, Any]:
        guild_id = emu.create_guild(args.guild_name)
        emu.register_oauth_app(args.oauth_client_id, args.oauth_client_secret)
        users = {}
        for name in args.user:
            users[name] = emu.create_user(name)
            emu.add_member(guild_id, users[name])
        if users:
            emu.authorize_as(next(iter(users.values())))
        return {
            "base_url": emu.base_url, "url": emu.url, "admin_url": emu.url + ADMIN_PREFIX,
            "guild_id": guild_id,
            "bot_token": emu.bot_token, "bot_user_id": emu.bot_user_id,
            "oauth_client_id": args.oauth_client_id,
            "oauth_client_secret": args.oauth_client_secret, "users": users,
        }

    return emu.serve_until_signal(describe)

if __name__ == "__main__":
    sys.exit(main())

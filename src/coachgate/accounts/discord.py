"""Discord for the rest of the app: the platform guild, the bot, and linked accounts.

Other domains import these names (access provisions channels with ``bot_client()``,
scheduling checks ``verification_state``/``ensure_in_guild`` at booking, notify sends DMs).

Secrets: the bot token and the students' OAuth tokens are stored encrypted
(``coachgate.kit.crypto``) and decrypted only here, at the moment a client needs them.
``GuildSettings`` hides the bot token from its repr so a logged settings object leaks
nothing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.urls import reverse

from coachgate.integrations.discord.client import (
    ActionRequired,
    CallRecord,
    DiscordClient,
    DiscordNotFound,
    RetryLater,
)
from coachgate.kit import crypto
from coachgate.kit.config import conf
from coachgate.kit.errors import (
    DiscordActionNeeded,
    DiscordNotConfigured,
    DiscordUnavailable,
    Forbidden,
    InvalidInput,
)
from coachgate.kit.metrics import DISCORD_CALLS

from .models import DiscordGuildConfig, DiscordLink, User

log = logging.getLogger(__name__)

NOT_CONNECTED = "not_connected"
CONNECTED_NOT_IN_GUILD = "connected_not_in_guild"
VERIFIED = "verified"
STATES = (NOT_CONNECTED, CONNECTED_NOT_IN_GUILD, VERIFIED)

# Refresh a user token this long before Discord would reject it, so a call made right
# after the check does not race the expiry.
TOKEN_EXPIRY_MARGIN = timedelta(minutes=2)
_SNOWFLAKE = re.compile(r"[0-9]{1,20}")
_TOKEN = re.compile(r"[A-Za-z0-9._\-]{1,200}")


# --- The platform guild -------------------------------------------------------------


@dataclass(frozen=True)
class GuildSettings:
    api_url: str
    guild_id: str
    bot_token: str = field(repr=False)
    category_id: str = ""
    archive_category_id: str = ""


def _stored_config() -> DiscordGuildConfig | None:
    return DiscordGuildConfig.objects.filter(pk=DiscordGuildConfig.SINGLETON_PK).first()


def api_url() -> str:
    """The Discord REST base (``https://discord.com/api/v10`` or an emulator's)."""
    row = _stored_config()
    url = (row.api_url if row and row.api_url else "") or conf().DISCORD_API_URL
    return (url or "https://discord.com/api/v10").rstrip("/")


def oauth_authorize_url(base: str | None = None) -> str:
    """Discord's authorize page lives at the host root, not under /api/vN."""
    parts = urlsplit(base or api_url())
    return f"{parts.scheme}://{parts.netloc}/oauth2/authorize"


def guild_settings() -> GuildSettings | None:
    """The configured guild and bot, or None when either is missing.

    The admin-saved row wins field by field; the environment fills blanks.
    """
    env = conf()
    row = _stored_config()
    guild_id = (row.guild_id if row else "") or env.DISCORD_GUILD_ID
    token = ""
    if row and row.bot_token:
        try:
            token = crypto.decrypt(row.bot_token)
        except crypto.SecretUnreadable:
            # A changed encryption key: say so loudly, then fall back to the environment
            # rather than calling Discord with garbage.
            log.error("stored Discord bot token cannot be decrypted; set it again in the admin")
    token = token or env.DISCORD_BOT_TOKEN
    if not guild_id or not token:
        return None
    return GuildSettings(
        api_url=api_url(), guild_id=guild_id, bot_token=token,
        category_id=row.category_id if row else "",
        archive_category_id=row.archive_category_id if row else "",
    )


OnCall = Callable[[CallRecord], None]


def _metered(extra: OnCall | None) -> OnCall:
    def on_call(call: CallRecord) -> None:
        # status 0: no answer (timeout, connection error)
        DISCORD_CALLS.labels(call.method, call.route, str(call.status or "error")).inc()
        if extra is not None:
            extra(call)

    return on_call


def _client_for(gs: GuildSettings, **kwargs: Any) -> DiscordClient:
    extra = kwargs.pop("on_call", None)
    return DiscordClient(gs.api_url, gs.bot_token, on_call=_metered(extra), **kwargs)


def bot_client(**kwargs: Any) -> DiscordClient | None:
    """A client speaking as the platform bot, or None when no guild/bot is configured.

    Every call is counted in DISCORD_CALLS; an ``on_call`` passed here is called after.
    Other keyword arguments go to DiscordClient (timeout, max_retry_wait, transport).
    """
    gs = guild_settings()
    return None if gs is None else _client_for(gs, **kwargs)


@dataclass(frozen=True)
class GuildConfigView:
    """What an admin may read back: the effective values, never the token itself."""

    guild_id: str
    api_url: str
    category_id: str
    archive_category_id: str
    bot_token_set: bool
    configured: bool
    updated_at: datetime | None


def _require_admin(actor: User | None) -> None:
    if actor is not None and not actor.is_admin:
        raise Forbidden("Only an admin can configure the Discord server.")


def describe_guild_config(actor: User | None = None) -> GuildConfigView:
    _require_admin(actor)
    row = _stored_config()
    gs = guild_settings()
    env = conf()
    stored_token = bool(row and row.bot_token)
    return GuildConfigView(
        guild_id=(row.guild_id if row else "") or env.DISCORD_GUILD_ID,
        api_url=api_url(),
        category_id=row.category_id if row else "",
        archive_category_id=row.archive_category_id if row else "",
        bot_token_set=stored_token or bool(env.DISCORD_BOT_TOKEN),
        configured=gs is not None,
        updated_at=row.updated_at if row else None,
    )


def validate_guild_config(
    *, guild_id: str | None = None, bot_token: str | None = None,
    category_id: str | None = None, archive_category_id: str | None = None,
    api_url: str | None = None,
) -> None:
    """Raise InvalidInput (with the field) for a value Discord could never accept."""
    for name, value in (("guild_id", guild_id), ("category_id", category_id),
                        ("archive_category_id", archive_category_id)):
        if value and not _SNOWFLAKE.fullmatch(value.strip()):
            raise InvalidInput(f"{name} is a Discord snowflake (digits only).",
                               details={"field": name})
    if bot_token and not _TOKEN.fullmatch(bot_token.strip()):
        raise InvalidInput("The bot token has characters a Discord token never has.",
                           details={"field": "bot_token"})
    if api_url:
        try:
            URLValidator(schemes=["http", "https"])(api_url.strip())
        except ValidationError:
            raise InvalidInput("api_url must be an http(s) URL such as "
                               "https://discord.com/api/v10.",
                               details={"field": "api_url"}) from None


def save_guild_config(
    *, guild_id: str | None = None, bot_token: str | None = None,
    category_id: str | None = None, archive_category_id: str | None = None,
    api_url: str | None = None, actor: User | None = None,
) -> DiscordGuildConfig:
    """Create or change the guild configuration (the admin page, the API, the CLI).

    None leaves a field as it is; an empty string clears it (the environment's value
    applies again). The bot token is encrypted before it is stored. ``actor``, when
    given, must be an admin (the CLI runs as the operator and passes none).
    """
    _require_admin(actor)
    validate_guild_config(guild_id=guild_id, bot_token=bot_token, category_id=category_id,
                          archive_category_id=archive_category_id, api_url=api_url)
    with transaction.atomic():
        row, _ = DiscordGuildConfig.objects.select_for_update().get_or_create(
            pk=DiscordGuildConfig.SINGLETON_PK)
        if guild_id is not None:
            row.guild_id = guild_id.strip()
        if bot_token is not None:
            row.bot_token = crypto.encrypt(bot_token.strip())
        if category_id is not None:
            row.category_id = category_id.strip()
        if archive_category_id is not None:
            row.archive_category_id = archive_category_id.strip()
        if api_url is not None:
            row.api_url = api_url.strip().rstrip("/")
        row.save()
    return row


# --- Linked accounts ----------------------------------------------------------------


def _link_of(user: User) -> DiscordLink | None:
    return DiscordLink.objects.filter(user_id=user.pk).first()


def state_of(link: DiscordLink | None) -> str:
    if link is None:
        return NOT_CONNECTED
    return VERIFIED if link.guild_member else CONNECTED_NOT_IN_GUILD


def verification_state(user: User) -> str:
    """not_connected | connected_not_in_guild | verified, from the last known membership
    (no network call)."""
    return state_of(_link_of(user))


def discord_user_id(user: User) -> str | None:
    return DiscordLink.objects.filter(user_id=user.pk).values_list(
        "discord_user_id", flat=True).first()


def discord_link(user: User) -> DiscordLink | None:
    return _link_of(user)


def connect_url(next_url: str | None = None) -> str:
    """Where a logged-in user goes to link Discord (allauth's connect flow).

    allauth asks for a POST to this URL (a GET shows a confirmation page first), so pages
    render it as a form button.
    """
    params = {"process": "connect"}
    if next_url:
        params["next"] = next_url
    return f"{reverse('discord_login')}?{urlencode(params)}"


def link_discord_account(
    user: User, *, discord_user_id: str, username: str, access_token: str,
    refresh_token: str, expires_at: datetime | None, scopes: str, now: datetime,
) -> DiscordLink:
    """Record (or refresh) the user's Discord link, tokens encrypted.

    One Discord account per user: linking another replaces the previous link. Membership
    is unknown for a new account, so the state is connected_not_in_guild until
    ``ensure_in_guild`` (or the access sweep) confirms it.
    """
    with transaction.atomic():
        # allauth already refused a Discord account connected to someone else; a link
        # row left behind for another user (allauth's row deleted by hand) is stale.
        DiscordLink.objects.filter(discord_user_id=discord_user_id).exclude(
            user_id=user.pk).delete()
        link = DiscordLink.objects.select_for_update().filter(user_id=user.pk).first()
        same_account = link is not None and link.discord_user_id == discord_user_id
        if link is None:
            link = DiscordLink(user=user, linked_at=now)
        if not same_account:
            link.linked_at = now
            link.guild_member = False
            link.checked_at = None
        link.discord_user_id = discord_user_id
        link.username = username[:100]
        link.access_token = crypto.encrypt(access_token)
        if refresh_token or not same_account:  # Discord may omit an unchanged refresh token
            link.refresh_token = crypto.encrypt(refresh_token)
        link.token_expires_at = expires_at
        link.scopes = scopes[:255]
        link.save()
    return link


def unlink_discord(user: User) -> bool:
    """Forget the user's Discord link and allauth's record of it. True if one existed.

    Tokens are dropped with the row; the Discord member stays in the guild (leaving the
    server is the user's choice), but a session's access is computed from the link, so
    no private channel is opened to an unlinked account.
    """
    from allauth.socialaccount.models import SocialAccount  # allauth loads late

    with transaction.atomic():
        deleted, _ = DiscordLink.objects.filter(user_id=user.pk).delete()
        social, _ = SocialAccount.objects.filter(user_id=user.pk, provider="discord").delete()
    return bool(deleted or social)


def record_guild_membership(discord_id: str, is_member: bool, *, now: datetime) -> int:
    """For the access sweep: what it learned about a member (removed by hand, rejoined)."""
    return DiscordLink.objects.filter(discord_user_id=discord_id).update(
        guild_member=is_member, checked_at=now)


def token_needs_refresh(expires_at: datetime | None, now: datetime) -> bool:
    return expires_at is not None and expires_at - TOKEN_EXPIRY_MARGIN <= now


def _oauth_app() -> tuple[str, str]:
    providers: dict[str, Any] = getattr(settings, "SOCIALACCOUNT_PROVIDERS", {})
    app: dict[str, Any] = providers.get("discord", {}).get("APP", {})
    client_id, secret = str(app.get("client_id", "")), str(app.get("secret", ""))
    if client_id and secret:
        return client_id, secret
    from allauth.socialaccount.models import SocialApp  # an app configured in the admin

    row = SocialApp.objects.filter(provider="discord").first()
    if row is None:
        raise DiscordNotConfigured("The Discord OAuth application is not configured.")
    return row.client_id, row.secret


def _user_access_token(link: DiscordLink, client: DiscordClient, *, now: datetime) -> str:
    """The link's access token, refreshed first when it has expired.

    The row is locked while refreshing: Discord rotates the refresh token, so two
    concurrent refreshes would leave one caller with a revoked token. The new tokens are
    written in the caller's transaction; call this outside one that may roll back.
    """
    with transaction.atomic():
        locked = DiscordLink.objects.select_for_update().get(pk=link.pk)
        if not token_needs_refresh(locked.token_expires_at, now):
            return crypto.decrypt(locked.access_token)
        refresh = crypto.decrypt(locked.refresh_token)
        if not refresh:
            raise ActionRequired("the Discord link has expired and has no refresh token")
        client_id, secret = _oauth_app()
        data = client.refresh_oauth_token(client_id, secret, refresh)
        access = str(data["access_token"])
        locked.access_token = crypto.encrypt(access)
        if data.get("refresh_token"):
            locked.refresh_token = crypto.encrypt(str(data["refresh_token"]))
        expires_in = data.get("expires_in")
        locked.token_expires_at = now + timedelta(seconds=int(expires_in)) if expires_in else None
        if data.get("scope"):
            locked.scopes = str(data["scope"])[:255]
        locked.save(update_fields=["access_token", "refresh_token", "token_expires_at",
                                   "scopes"])
        return access


def ensure_in_guild(user: User, *, now: datetime, client: DiscordClient | None = None) -> str:
    """Make a linked user a member of the platform guild, using their ``guilds.join`` grant.

    Returns the new state. A user already known to be a member costs no network call.
    Discord's ``RetryLater`` propagates (try again later) and ``ActionRequired`` is
    re-raised (the user must reconnect, or an admin must fix the bot): callers surface it.
    Raises DiscordNotConfigured when there is no guild/bot. ``client``: a caller that
    already holds the bot's client (the access worker) passes it, so its rate-limit
    state and connection are reused.
    """
    link = _link_of(user)
    if link is None:
        return NOT_CONNECTED
    if link.guild_member:
        return VERIFIED
    gs = guild_settings()
    if gs is None:
        raise DiscordNotConfigured()
    if client is not None:
        _join(gs, link, client, now=now)
    else:
        with _client_for(gs) as own:
            _join(gs, link, own, now=now)
    DiscordLink.objects.filter(pk=link.pk).update(guild_member=True, checked_at=now)
    return VERIFIED


def _join(gs: GuildSettings, link: DiscordLink, client: DiscordClient, *,
          now: datetime) -> None:
    try:
        # Already in the server (joined with an invite)? Then the user's token is not
        # needed at all, which also covers a link whose grant has since expired.
        client.get_guild_member(gs.guild_id, link.discord_user_id)
    except DiscordNotFound:
        access = _user_access_token(link, client, now=now)
        # 201 (added) and 204 / None (already a member) both end with a member.
        client.add_guild_member(gs.guild_id, link.discord_user_id, access,
                                reason="coachgate: linked account joins the server")


def join_guild(user: User, *, now: datetime) -> str:
    """``ensure_in_guild`` for a page or an API call: Discord's errors become business
    errors with stable codes (503 discord_unavailable, 409 discord_action_required)."""
    try:
        return ensure_in_guild(user, now=now)
    except RetryLater as exc:
        raise DiscordUnavailable(details={"retry_after": exc.retry_after}) from exc
    except ActionRequired as exc:
        raise DiscordActionNeeded(details={"reason": exc.message}) from exc

"""allauth signals → DiscordLink. allauth keeps no tokens (SOCIALACCOUNT_STORE_TOKENS is
False); the link row holds them, encrypted."""

from __future__ import annotations

import logging
from typing import Any

from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.signals import (
    pre_social_login,
    social_account_added,
    social_account_removed,
    social_account_updated,
)
from django.contrib import messages
from django.db import transaction
from django.dispatch import receiver
from django.http import HttpRequest
from django.shortcuts import redirect

from coachgate.accounts import discord
from coachgate.accounts.models import DiscordLink, User
from coachgate.kit import clock

log = logging.getLogger(__name__)


def _is_discord(sociallogin: Any) -> bool:
    return getattr(sociallogin.account, "provider", None) == "discord"


def _record(user: User, sociallogin: Any) -> None:
    token = sociallogin.token
    if token is None:
        log.warning("Discord connect for user %s carried no token", user.pk)
        return
    extra = sociallogin.account.extra_data or {}
    scope = getattr(token, "coachgate_scope", "") or " ".join(
        sociallogin.account.get_provider().get_scope())
    discord.link_discord_account(
        user, discord_user_id=str(sociallogin.account.uid),
        username=str(extra.get("global_name") or extra.get("username") or ""),
        access_token=token.token, refresh_token=token.token_secret or "",
        expires_at=token.expires_at, scopes=scope, now=clock.now(),
    )


@receiver(pre_social_login)
def _only_connect(sender: Any, request: HttpRequest, sociallogin: Any, **kwargs: Any) -> None:
    """Defence in depth behind the login view: a Discord callback that is not a connect
    by a logged-in user neither logs anyone in nor creates a user."""
    if not _is_discord(sociallogin):
        return
    if sociallogin.state.get("process") != "connect" or not request.user.is_authenticated:
        messages.error(request, "Discord can only be connected to an account you are logged "
                                "in to.")
        raise ImmediateHttpResponse(redirect("/"))


@receiver(social_account_added)
def _added(sender: Any, request: HttpRequest, sociallogin: Any, **kwargs: Any) -> None:
    if not _is_discord(sociallogin):
        return
    from allauth.socialaccount.models import SocialAccount

    user = sociallogin.user
    # One Discord account per user: a newly connected one replaces the old one.
    SocialAccount.objects.filter(user_id=user.pk, provider="discord").exclude(
        pk=sociallogin.account.pk).delete()
    _record(user, sociallogin)
    # With the guilds.join grant the system adds the member itself (a wake-up; the
    # booking check and the card can also do it).
    from coachgate.accounts.tasks import join_discord_guild

    user_id = user.pk
    transaction.on_commit(lambda: join_discord_guild.enqueue(user_id))


@receiver(social_account_updated)
def _updated(sender: Any, request: HttpRequest, sociallogin: Any, **kwargs: Any) -> None:
    """A reconnect by the owner brings fresh tokens. allauth sends this during the lookup
    of any callback, so ignore it unless the logged-in user owns the account."""
    if not _is_discord(sociallogin):
        return
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or user.pk != sociallogin.account.user_id:
        return
    if sociallogin.state.get("process") != "connect":
        return
    _record(sociallogin.account.user, sociallogin)


@receiver(social_account_removed)
def _removed(sender: Any, request: HttpRequest, socialaccount: Any, **kwargs: Any) -> None:
    if socialaccount.provider == "discord":
        DiscordLink.objects.filter(user_id=socialaccount.user_id,
                                   discord_user_id=str(socialaccount.uid)).delete()

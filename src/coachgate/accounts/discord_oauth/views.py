"""The Discord OAuth views: allauth's, with URLs from settings and linking only."""

from __future__ import annotations

from typing import Any

from allauth.socialaccount.providers.discord.views import DiscordOAuth2Adapter
from allauth.socialaccount.providers.oauth2.views import OAuth2CallbackView, OAuth2LoginView
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from coachgate.accounts import discord


class CoachgateDiscordOAuth2Adapter(DiscordOAuth2Adapter):  # type: ignore[misc]  # allauth ships no type hints
    def __init__(self, request: HttpRequest) -> None:
        super().__init__(request)
        base = discord.api_url()
        self.authorize_url = discord.oauth_authorize_url(base)
        self.access_token_url = f"{base}/oauth2/token"
        self.profile_url = f"{base}/users/@me"

    def parse_token(self, data: dict[str, Any]) -> Any:
        token = super().parse_token(data)
        # SocialToken has no scope column; carry the granted scopes to the link receiver.
        token.coachgate_scope = str(data.get("scope", ""))
        return token


_login = OAuth2LoginView.adapter_view(CoachgateDiscordOAuth2Adapter)
oauth2_callback = OAuth2CallbackView.adapter_view(CoachgateDiscordOAuth2Adapter)


def oauth2_login(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """Discord links an account to a logged-in user; it never logs in or signs up."""
    process = request.POST.get("process") or request.GET.get("process")
    if not request.user.is_authenticated:
        messages.info(request, "Log in first, then connect your Discord account.")
        return redirect_to_login(request.get_full_path())
    if process != "connect":
        messages.error(request, "Discord is connected to your account here; it is not a way "
                                "to log in.")
        return redirect("/")
    response: HttpResponse = _login(request, *args, **kwargs)
    return response

from __future__ import annotations

from allauth.socialaccount.providers.discord.provider import DiscordProvider

from .views import CoachgateDiscordOAuth2Adapter


class CoachgateDiscordProvider(DiscordProvider):  # type: ignore[misc]  # allauth ships no type hints
    # allauth imports f"{package}.views" and f"{package}.urls" for the provider's routes.
    package = "coachgate.accounts.discord_oauth"
    oauth2_adapter_class = CoachgateDiscordOAuth2Adapter


provider_classes = [CoachgateDiscordProvider]

from allauth.socialaccount.providers.oauth2.urls import default_urlpatterns

from .provider import CoachgateDiscordProvider

urlpatterns = default_urlpatterns(CoachgateDiscordProvider)

"""allauth's Discord provider, pointed at the configured Discord API (or its emulator).

allauth hard-codes discord.com in its adapter's class attributes. The supported override
is ``SOCIALACCOUNT_PROVIDERS["discord"]["provider_class"]``: it names
``CoachgateDiscordProvider``, whose package (this one) supplies the login/callback views
built on an adapter that reads the URLs from ``coachgate.accounts.discord.api_url()``.
"""

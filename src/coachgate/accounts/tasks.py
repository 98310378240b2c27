"""Account wake-ups. Truth is in the rows: a lost task only delays what the next
booking check or verification card would do anyway."""

from __future__ import annotations

import logging

from django_tasks import task

from coachgate.integrations.discord.client import ActionRequired, RetryLater
from coachgate.kit import clock
from coachgate.kit.errors import DiscordNotConfigured

from . import discord
from .models import User

log = logging.getLogger(__name__)


@task()
def join_discord_guild(user_id: int) -> str:
    """accounts.join_discord_guild: add a newly linked user to the platform guild."""
    user = User.objects.filter(pk=user_id).first()
    if user is None:
        return discord.NOT_CONNECTED
    try:
        return discord.ensure_in_guild(user, now=clock.now())
    except DiscordNotConfigured:
        return discord.verification_state(user)
    except (RetryLater, ActionRequired) as exc:
        # Not fatal: the user stays connected_not_in_guild and the card / booking check
        # tries again (and shows ActionRequired to the user then).
        log.warning("could not add user %s to the Discord guild: %s", user_id, exc)
        return discord.verification_state(user)

"""``{% discord_card %}``: the student's Discord verification card (three states)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django import template

from coachgate.accounts import discord

register = template.Library()
POLLS = 15


@register.inclusion_tag("web/_discord_card.html", takes_context=True)
def discord_card(context: template.Context, next_url: str = "") -> dict[str, Any]:
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"show": False}
    link = discord.discord_link(user)
    state = discord.state_of(link)
    configured = discord.guild_settings() is not None
    # Just connected: the worker adds the member within seconds (a wake-up), so the card
    # asks again every 2 s, up to POLLS times, and swaps itself for the fresh one.
    poll = ""
    if state == discord.CONNECTED_NOT_IN_GUILD and configured and request is not None:
        try:
            asked = int(request.GET.get("discord_poll", "0"))
        except ValueError:
            asked = POLLS
        if 0 <= asked < POLLS:
            poll = f"{request.path}?{urlencode({'discord_poll': asked + 1})}"
    return {
        "show": True,
        "state": state,
        "poll": poll,
        "username": link.username if link else "",
        "connect_url": discord.connect_url(next_url or (request.path if request else None)),
        "configured": configured,
        "csrf_token": context.get("csrf_token"),
    }

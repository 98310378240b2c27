"""``{% discord_card %}``: the student's Discord verification card (three states)."""

from __future__ import annotations

from typing import Any

from django import template

from coachgate.accounts import discord

register = template.Library()


@register.inclusion_tag("web/_discord_card.html", takes_context=True)
def discord_card(context: template.Context, next_url: str = "") -> dict[str, Any]:
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"show": False}
    link = discord.discord_link(user)
    return {
        "show": True,
        "state": discord.state_of(link),
        "username": link.username if link else "",
        "connect_url": discord.connect_url(next_url or (request.path if request else None)),
        "configured": discord.guild_settings() is not None,
        "csrf_token": context.get("csrf_token"),
    }

"""Routes for the caller's Discord link and the admin's guild configuration. Thin."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.http import HttpRequest
from ninja import Field, Router, Schema, Status

from coachgate.kit import clock

from . import discord
from .auth import API_AUTH, current_user
from .models import User

router = Router(tags=["discord"], auth=API_AUTH)


class DiscordOut(Schema):
    state: str = Field(description="not_connected | connected_not_in_guild | verified")
    username: str | None
    discord_user_id: str | None
    connect_url: str = Field(description="POST here from a logged-in browser to link Discord.")


class GuildConfigOut(Schema):
    guild_id: str
    api_url: str
    category_id: str
    archive_category_id: str
    bot_token_set: bool = Field(description="The token itself is never returned.")
    configured: bool
    updated_at: datetime | None


class GuildConfigIn(Schema):
    guild_id: str | None = Field(None, max_length=32)
    bot_token: str | None = Field(None, max_length=200, description="Write-only.")
    category_id: str | None = Field(None, max_length=32)
    archive_category_id: str | None = Field(None, max_length=32)
    api_url: str | None = Field(None, max_length=200)


def _out(user: User) -> DiscordOut:
    link = discord.discord_link(user)
    return DiscordOut(state=discord.state_of(link),
                      username=link.username if link else None,
                      discord_user_id=link.discord_user_id if link else None,
                      connect_url=discord.connect_url())


@router.get("/me/discord", response=DiscordOut, summary="My Discord verification state")
def my_discord(request: HttpRequest) -> DiscordOut:
    return _out(current_user(request))


@router.post("/me/discord/join", response=DiscordOut,
             summary="Join the platform's Discord server with my linked account")
def join_guild(request: HttpRequest) -> DiscordOut:
    user = current_user(request)
    discord.join_guild(user, now=clock.now())
    return _out(user)


@router.delete("/me/discord", response={204: None}, summary="Unlink my Discord account")
def unlink(request: HttpRequest) -> Status[Any]:
    discord.unlink_discord(current_user(request))
    return Status(204, None)


@router.get("/admin/discord", response=GuildConfigOut,
            summary="The platform's Discord server configuration (admins)")
def get_guild_config(request: HttpRequest) -> discord.GuildConfigView:
    return discord.describe_guild_config(current_user(request))


@router.put("/admin/discord", response=GuildConfigOut,
            summary="Set the platform's Discord server configuration (admins)")
def put_guild_config(request: HttpRequest, payload: GuildConfigIn) -> discord.GuildConfigView:
    actor = current_user(request)
    discord.save_guild_config(actor=actor, **payload.model_dump())
    return discord.describe_guild_config(actor)

"""Fixtures for access tests: a real Discord emulator and a configured guild."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest

from coachgate.accounts import discord as linked
from coachgate.accounts.models import User
from coachgate.integrations.discord.emulator import DiscordEmulator


@dataclass
class DiscordEnv:
    emu: DiscordEmulator
    guild_id: str

    def link(self, user: User, *, in_guild: bool = True, now: datetime) -> str:
        """Link the user to a fresh emulator account (as the OAuth flow would)."""
        uid = self.emu.create_user(user.email.split("@")[0])
        token = self.emu.issue_user_token(uid)
        if in_guild:
            self.emu.add_member(self.guild_id, uid)
        linked.link_discord_account(
            user, discord_user_id=uid, username=user.email, access_token=token["access_token"],
            refresh_token=token["refresh_token"], expires_at=now + timedelta(days=7),
            scopes="identify guilds.join", now=now)
        if in_guild:
            linked.record_guild_membership(uid, True, now=now)
        return uid

    def session_channels(self) -> list[dict[str, Any]]:
        return [c for c in self.emu.channels(self.guild_id)
                if str(c.get("name", "")).startswith("cg-") and c.get("type") == 2]


@pytest.fixture
def discord(settings: Any) -> Iterator[DiscordEnv]:
    emu = DiscordEmulator()
    emu.start()
    try:
        guild = emu.create_guild("academy")
        settings.COACHGATE = {**settings.COACHGATE, "DISCORD_API_URL": emu.base_url,
                              "DISCORD_GUILD_ID": guild, "DISCORD_BOT_TOKEN": emu.bot_token}
        yield DiscordEnv(emu, guild)
    finally:
        emu.stop()

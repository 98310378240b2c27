"""Fixtures for the Discord client and emulator tests: no database, no mocks — the real
client talks HTTP to a real emulator on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from coachgate.integrations.discord import permissions as P
from coachgate.integrations.discord.client import CallRecord, DiscordClient
from coachgate.integrations.discord.emulator import DiscordEmulator


@dataclass
class World:
    emu: DiscordEmulator
    guild_id: str
    coach: str
    student: str
    other: str
    records: list[CallRecord]
    client: DiscordClient

    def private_overwrites(self, *users: str) -> list[dict[str, object]]:
        """@everyone denied; the users allowed to see, join and speak; the bot allowed to
        see and manage (Discord answers 50001 to a bot that cannot see the channel)."""
        allow = P.VIEW_CHANNEL | P.CONNECT | P.SPEAK
        return [
            {"id": self.guild_id, "type": P.ROLE, "allow": 0,
             "deny": P.VIEW_CHANNEL | P.CONNECT},
            *({"id": u, "type": P.MEMBER, "allow": allow, "deny": 0} for u in users),
            {"id": self.emu.bot_user_id, "type": P.MEMBER,
             "allow": P.VIEW_CHANNEL | P.MANAGE_CHANNELS | P.CONNECT, "deny": 0},
        ]


@pytest.fixture
def emu() -> Iterator[DiscordEmulator]:
    with DiscordEmulator() as emulator:
        yield emulator


@pytest.fixture
def world(emu: DiscordEmulator) -> Iterator[World]:
    guild_id = emu.create_guild("test guild")
    users = [emu.create_user(name) for name in ("coach", "student", "other")]
    for uid in users:
        emu.add_member(guild_id, uid)
    records: list[CallRecord] = []
    with DiscordClient(emu.base_url, emu.bot_token, timeout=2.0, max_retry_wait=1.0,
                       on_call=records.append) as client:
        yield World(emu, guild_id, *users, records=records, client=client)

"""Fixtures for the Discord client and emulator tests: no database, no mocks — the real
client talks HTTP to a real emulator on 127.0.0.1."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

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


@pytest.fixture
def served() -> Iterator[dict[str, Any]]:
    """``coachgate emulator --port 0 --guild-name outside --user coach`` in its own process
    (a real HTTP server on 127.0.0.1); yields the JSON line it prints."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "coachgate.cli", "emulator", "--port", "0",
         "--guild-name", "outside", "--user", "coach"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines: queue.Queue[str] = queue.Queue()
        stdout = proc.stdout
        assert stdout is not None
        threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
        yield json.loads(lines.get(timeout=20))
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover - never expected
            proc.kill()
            proc.communicate(timeout=5)

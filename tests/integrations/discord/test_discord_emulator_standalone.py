"""``python -m coachgate.integrations.discord.emulator`` runs alone and answers the client."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading

from coachgate.integrations.discord.client import DiscordClient


def test_standalone_emulator_starts_serves_and_stops() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "coachgate.integrations.discord.emulator", "--port", "0",
         "--user", "alice"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines: queue.Queue[str] = queue.Queue()
        assert proc.stdout is not None
        stdout = proc.stdout
        threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
        info = json.loads(lines.get(timeout=15))
        assert info["base_url"].startswith("http://127.0.0.1:")
        assert info["base_url"].endswith("/api/v10")
        with DiscordClient(info["base_url"], info["bot_token"], timeout=2.0) as client:
            guild = client.get_guild(info["guild_id"])
            assert guild["id"] == info["guild_id"]
            alice = info["users"]["alice"]
            assert client.get_guild_member(info["guild_id"], alice)["user"]["username"] == (
                "alice")
            channel = client.create_channel(info["guild_id"], name="hello", type=0)
            assert channel["id"] in {c["id"] for c in client.list_guild_channels(
                info["guild_id"])}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover - never expected
            proc.kill()
            proc.wait(timeout=5)
    assert proc.returncode == 0

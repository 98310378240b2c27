"""Test clients: the JSON API as one user, and a running Discord emulator with its guild."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.test import Client

from coachgate.accounts.models import User
from coachgate.integrations.discord.emulator import DiscordEmulator


class Api:
    """A JSON client for /api/v1 speaking as one user (or anonymously)."""

    def __init__(self, token: str | None = None) -> None:
        self.client = Client()
        self.headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}

    def call(self, method: str, path: str, body: Any = None, raw: str | None = None) -> Any:
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        kwargs: dict[str, Any] = dict(self.headers)
        if data is not None:
            kwargs["data"] = data
            kwargs["content_type"] = "application/json"
        response = getattr(self.client, method.lower())(f"/api/v1{path}", **kwargs)
        response.json_body = json.loads(response.content) if response.content else None
        return response

    def get(self, path: str) -> Any:
        return self.call("GET", path)

    def post(self, path: str, body: Any = None, raw: str | None = None) -> Any:
        return self.call("POST", path, body if body is not None else ({} if raw is None else None),
                         raw)

    def patch(self, path: str, body: Any) -> Any:
        return self.call("PATCH", path, body)

    def put(self, path: str, body: Any) -> Any:
        return self.call("PUT", path, body)

    def delete(self, path: str) -> Any:
        return self.call("DELETE", path)


@dataclass
class DiscordEnv:
    emu: DiscordEmulator
    guild_id: str

    def link(self, user: User, *, in_guild: bool = True, now: datetime) -> str:
        """Link the user to a fresh emulator account (as the OAuth flow would)."""
        from coachgate.demo import link_to_emulator

        return link_to_emulator(self.emu, self.guild_id, user, now=now, in_guild=in_guild)

    def session_channels(self) -> list[dict[str, Any]]:
        return [c for c in self.emu.channels(self.guild_id)
                if str(c.get("name", "")).startswith("cg-") and c.get("type") == 2]

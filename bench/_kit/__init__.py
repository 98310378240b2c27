"""What the benchmarks share: Django on DATABASE_URL (or a temporary SQLite file), an
approved coach, and a guild on the local Discord emulator. Not a benchmark itself
(`./run bench` runs only bench/*.py)."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from .report import met, report

__all__ = ["ROOT", "discord_guild", "make_coach", "met", "report", "setup_django"]

ROOT = Path(__file__).resolve().parents[2]


def setup_django(*, migrate: bool = True) -> None:
    """Django on DATABASE_URL (./run bench gives a throwaway PostgreSQL) or, when unset, a
    fresh SQLite file in a temporary directory."""
    sys.path.insert(0, str(ROOT / "src"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coachgate.settings")
    if not os.environ.get("DATABASE_URL"):
        os.environ.setdefault("COACHGATE_DATA_DIR", tempfile.mkdtemp(prefix="cg-bench-"))
    import django

    django.setup()
    if migrate:
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)


def make_coach(admin: Any, email: str, *, name: str = "Coach", tz: str = "UTC") -> Any:
    """An approved coach (the user, with the coach role)."""
    from coachgate.accounts import services as accounts
    from coachgate.catalog import services as catalog

    user = accounts.create_user(email=email, password=None)
    app = accounts.apply_as_coach(user, display_name=name, bio="", specialties=[], timezone=tz)
    catalog.approve_application(admin, app.pk)
    user.refresh_from_db()
    return user


def discord_guild(name: str = "bench") -> tuple[Any, str]:
    """A started Discord emulator with one guild, configured as the platform's."""
    from coachgate.accounts import discord as linked
    from coachgate.integrations.discord.emulator import DiscordEmulator

    emu = DiscordEmulator()
    emu.start()
    guild = emu.create_guild(name)
    linked.save_guild_config(guild_id=guild, bot_token=emu.bot_token, api_url=emu.base_url)
    return emu, guild

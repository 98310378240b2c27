"""Shared fixtures. Tests run against a real database: SQLite by default, PostgreSQL when
DATABASE_URL points at one (./run test does both). The builders they use are in
tests/factories.py, the API and Discord clients in tests/clients.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from coachgate.accounts.models import User
from coachgate.catalog.models import Offer
from coachgate.integrations.discord.emulator import DiscordEmulator

# Still importable from here for tests written before tests/factories.py existed (branches
# merged later); new tests import from tests.factories and tests.clients.
from tests.clients import (
    Api,  # noqa: F401
    DiscordEnv,
)
from tests.factories import (  # noqa: F401
    MONDAY,
    coach_profile,
    make_admin,
    make_coach,
    make_offer,
    make_student,
    token_for,
)


@pytest.fixture
def admin(db: None) -> User:
    return make_admin()


@pytest.fixture
def coach(db: None, admin: User) -> User:
    return make_coach(admin=admin)


@pytest.fixture
def student(db: None) -> User:
    return make_student()


@pytest.fixture
def offer(coach: User) -> Offer:
    return make_offer(coach)


@pytest.fixture
def now() -> datetime:
    """'Now' for service calls: noon UTC on the Friday before MONDAY (outside the 24 h
    free-cancellation window of Monday's sessions)."""
    return MONDAY - timedelta(days=2, hours=12)


# Autouse: every payment gateway call in every test fails inside a database transaction.
from tests.gateway_guard import gateway_calls_outside_transactions  # noqa: E402, F401


@pytest.fixture
def committed(django_capture_on_commit_callbacks: Any) -> Callable[..., Any]:
    """Run a service call and its on-commit work (session events to the domains above
    scheduling, wake-ups), as a request that commits would."""

    def _run(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return fn(*args, **kwargs)

    return _run


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    # PBKDF2's deliberate slowness is for production; tests create many users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# --- Discord: a real emulator and a configured guild -------------------------------


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

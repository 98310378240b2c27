"""Shared fixtures. Tests run against a real database: SQLite by default, PostgreSQL when
DATABASE_URL points at one (./run test does both)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from django.test import Client

from coachgate.accounts import services as accounts
from coachgate.accounts.models import User
from coachgate.catalog import services as catalog
from coachgate.catalog.models import CoachProfile, Offer
from coachgate.integrations.discord.emulator import DiscordEmulator
from coachgate.scheduling import services as scheduling

# A fixed Monday, far enough ahead that every test's slots are in the future.
MONDAY = datetime(2031, 3, 3, tzinfo=UTC)


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


def make_admin(email: str = "admin@test.example") -> User:
    return accounts.create_user(email=email, password="pw-admin-123", role="admin")


def make_student(email: str = "student@test.example", tz: str = "UTC") -> User:
    return accounts.create_user(email=email, password="pw-student-123", timezone=tz)


def make_coach(
    email: str = "coach@test.example", tz: str = "Europe/London",
    rules: list[tuple[int, time, time]] | None = None, admin: User | None = None,
) -> User:
    """An approved coach with weekly availability (default: every day 09:00–17:00)."""
    user = accounts.create_user(email=email, password="pw-coach-123", timezone=tz)
    app = accounts.apply_as_coach(user, display_name=email.split("@")[0].title(), bio="bio",
                                  specialties=["python"], timezone=tz)
    reviewer = admin or User.objects.filter(role="admin").first() or make_admin(
        f"reviewer-{email}")
    catalog.approve_application(reviewer, app.pk)
    user.refresh_from_db()
    rules = rules if rules is not None else [(d, time(9), time(17)) for d in range(7)]
    scheduling.set_weekly_availability(user, [scheduling.RuleInput(*r) for r in rules])
    return user


def make_offer(coach: User, publish: bool = True, **overrides: Any) -> Offer:
    data: dict[str, Any] = {
        "title": "Session", "price_minor": 5000, "currency": "USD", "duration_minutes": 60,
        "session_type": "video", "delivery": "jitsi", "min_notice_minutes": 0,
        "horizon_days": 730,
    }
    data.update(overrides)
    offer = catalog.create_offer(coach, data)
    if publish:
        offer = catalog.set_offer_status(coach, offer.pk, "published")
    return offer


def token_for(user: User) -> str:
    return accounts.issue_token(user, "test").raw


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


def coach_profile(user: User) -> CoachProfile:
    return CoachProfile.objects.get(user=user)


# --- Discord: a real emulator and a configured guild -------------------------------


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

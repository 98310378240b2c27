"""The outbox by Discord DM, against the Discord emulator."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from coachgate.accounts import discord
from coachgate.integrations.discord.emulator import DiscordEmulator
from coachgate.notify import services
from coachgate.notify.models import Notification, Status
from tests.factories import make_student

NOW = datetime(2031, 3, 1, 12, 0, tzinfo=UTC)
OPEN = {"session_id": 3, "offer_title": "Go endgames", "starts_at": "2031-03-03T14:00:00Z",
        "link": "https://discord.com/channels/1/2"}


@pytest.fixture
def emu(settings: Any, db: None) -> Iterator[tuple[DiscordEmulator, str]]:
    emulator = DiscordEmulator().start()
    try:
        guild_id = emulator.create_guild("coaching")
        # Configured the way an admin does it; the environment has nothing.
        settings.COACHGATE = {**settings.COACHGATE, "DISCORD_GUILD_ID": "",
                              "DISCORD_BOT_TOKEN": ""}
        discord.save_guild_config(guild_id=guild_id, bot_token=emulator.bot_token,
                                  api_url=emulator.base_url)
        yield emulator, guild_id
    finally:
        emulator.stop()


def _linked_member(emulator: DiscordEmulator, guild_id: str, email: str = "s@test.example"):
    student = make_student(email, tz="America/New_York")
    discord_user = emulator.create_user("student")
    emulator.add_member(guild_id, discord_user)
    discord.link_discord_account(student, discord_user_id=discord_user, username="student",
                                 access_token="a", refresh_token="r", expires_at=None,
                                 scopes="identify guilds.join", now=NOW)
    return student, discord_user


def _dm(user, key: str = "open:3") -> Notification:
    [row] = services.notify(user, "access_open", OPEN, key=key, channels=("discord_dm",),
                            now=NOW)
    return row


def test_a_dm_reaches_the_user_once(emu, dummy_tasks):
    emulator, guild_id = emu
    student, discord_user = _linked_member(emulator, guild_id)
    row = _dm(student)
    done = services.deliver(row.pk, now=NOW)
    assert done is not None and done.status == Status.SENT
    [message] = emulator.dm_messages(discord_user)
    assert "Go endgames" in message and "https://discord.com/channels/1/2" in message
    assert "Monday 3 March 2031, 09:00 (America/New_York)" in message
    # The same key again sends nothing more.
    _dm(student)
    assert services.deliver(row.pk, now=NOW) is None
    assert len(emulator.dm_messages(discord_user)) == 1


def test_a_user_without_a_link_is_skipped(emu, dummy_tasks):
    student = make_student()
    done = services.deliver(_dm(student).pk, now=NOW)
    assert done is not None and done.status == Status.SKIPPED
    assert "no linked Discord account" in done.last_error


def test_no_configured_bot_skips(db, settings, dummy_tasks):
    settings.COACHGATE = {**settings.COACHGATE, "DISCORD_GUILD_ID": "", "DISCORD_BOT_TOKEN": ""}
    student = make_student()
    discord.link_discord_account(student, discord_user_id="42", username="x", access_token="a",
                                 refresh_token="r", expires_at=None, scopes="", now=NOW)
    done = services.deliver(_dm(student).pk, now=NOW)
    assert done is not None and done.status == Status.SKIPPED


def test_closed_dms_fail_without_retrying(emu, dummy_tasks):
    emulator, guild_id = emu
    student, discord_user = _linked_member(emulator, guild_id)
    emulator.set_dm_open(discord_user, False)
    done = services.deliver(_dm(student).pk, now=NOW)
    assert done is not None and done.status == Status.FAILED and "50007" in done.last_error


def test_a_discord_outage_is_retried_later(emu, dummy_tasks):
    emulator, guild_id = emu
    student, discord_user = _linked_member(emulator, guild_id)
    row = _dm(student)
    emulator.outage(True)
    done = services.deliver(row.pk, now=NOW)
    assert done is not None and done.status == Status.PENDING
    assert done.next_attempt_at == NOW + timedelta(seconds=30)
    emulator.outage(False)
    assert services.deliver(row.pk, now=NOW + timedelta(seconds=30)).status == Status.SENT
    assert len(emulator.dm_messages(discord_user)) == 1


def test_a_lost_answer_to_the_message_post_is_never_resent(emu, dummy_tasks, monkeypatch):
    """Discord posted the DM but the answer never came: the outcome is unknown, so the row
    is abandoned instead of risking a second copy."""
    emulator, guild_id = emu
    student, discord_user = _linked_member(emulator, guild_id)

    class AnswerLost(httpx.HTTPTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            response = super().handle_request(request)
            if request.method == "POST" and request.url.path.endswith("/messages"):
                response.close()
                raise httpx.ReadTimeout("the answer was lost", request=request)
            return response

    real = discord.bot_client
    monkeypatch.setattr(discord, "bot_client",
                        lambda **kw: real(transport=AnswerLost(), **kw))
    row = _dm(student)
    done = services.deliver(row.pk, now=NOW)
    assert done is not None and done.status == Status.ABANDONED
    assert "outcome unknown" in done.last_error
    assert len(emulator.dm_messages(discord_user)) == 1
    assert services.sweep_outbox(now=NOW + timedelta(hours=1)) == 0
    assert services.deliver(row.pk, now=NOW + timedelta(hours=1)) is None
    assert len(emulator.dm_messages(discord_user)) == 1

"""Archive mode closes access in its own call, before renaming: Discord's hidden rename
limit (2 per 10 minutes per channel) must never hold access open."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx

from coachgate.access import services
from coachgate.access.models import DiscordCall, SessionAccess
from coachgate.access.rules import Phase
from coachgate.scheduling import services as scheduling
from tests.clients import DiscordEnv
from tests.factories import MONDAY, make_coach, make_offer, make_student

START = MONDAY + timedelta(hours=10)
H = timedelta(hours=1)


def _rename_behind_back(discord: DiscordEnv, channel_id: str, times: int) -> None:
    """Someone (another tool with the bot's token) renames the channel, spending the
    channel's rename allowance."""
    emu = discord.emu
    with httpx.Client(base_url=emu.base_url, timeout=5.0,
                      headers={"Authorization": f"Bot {emu.bot_token}"}) as http:
        for i in range(times):
            r = http.patch(f"/channels/{channel_id}", json={"name": f"cg-renamed-{i}"})
            assert r.status_code == 200


def test_a_rename_429_never_delays_closing_access(db: None, discord: DiscordEnv,
                                                  now: datetime) -> None:
    coach, student = make_coach(), make_student()
    ids = {discord.link(coach, now=now), discord.link(student, now=now)}
    offer = make_offer(coach, title="kept", delivery="discord_voice",
                       access_policy={"end_action": "archive"})
    session = scheduling.book_session(student, offer.pk, START, now=now).session
    services.converge(session.pk, now=START - H)
    row = SessionAccess.objects.get(pk=session.pk)
    channel_id = row.channel_id
    assert discord.emu.visible_users(channel_id) == ids
    _rename_behind_back(discord, channel_id, 2)  # the allowance for 10 minutes is spent

    revoke = START + 2 * H  # the session ends at START + 1 h; access closes an hour later
    first = services.converge(session.pk, now=revoke)
    row.refresh_from_db()
    # Access is gone at the revoke gate, although the rename was refused.
    assert discord.emu.visible_users(channel_id) == set()
    assert all(spans[-1][1] is not None
               for spans in discord.emu.view_intervals(channel_id).values())
    assert (row.archived, row.granted, row.channel_id) == (True, [], channel_id)
    calls = [(c.method, c.route, c.status) for c in
             DiscordCall.objects.filter(access_id=session.pk).order_by("pk")]
    assert calls[-2:] == [("PATCH", "/channels/{channel_id}", 200),
                          ("PATCH", "/channels/{channel_id}", 429)]
    # The run is retried when Discord said the rename may be made, not blindly.
    assert first.outcome == "retry" and row.error_kind == "retry"
    assert row.next_due_at is not None
    assert revoke + timedelta(seconds=590) <= row.next_due_at <= revoke + timedelta(minutes=11)
    channel = discord.emu.channel(channel_id)
    assert channel is not None and not channel["name"].startswith("archived-")

    discord.emu.skip_time(600)  # ten minutes later, for Discord
    second = services.converge(session.pk, now=row.next_due_at)
    row.refresh_from_db()
    assert (second.outcome, row.phase, row.next_due_at) == ("ok", Phase.REVOKED, None)
    channel = discord.emu.channel(channel_id)
    assert channel is not None and channel["name"] == f"archived-cg-{session.pk}-session"
    assert discord.emu.visible_users(channel_id) == set()
    # Once renamed, later runs leave the channel alone.
    calls_before = DiscordCall.objects.filter(access_id=session.pk).count()
    services.converge(session.pk, now=revoke + 2 * H)
    assert DiscordCall.objects.filter(access_id=session.pk).count() == calls_before

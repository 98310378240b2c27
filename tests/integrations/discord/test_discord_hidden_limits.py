"""Discord's hidden per-route limits in the emulator, and how the client takes them.

Renaming a channel is allowed twice per 10 minutes per channel; the third rename gets a
429 whose ordinary rate-limit headers still show room, with a retry_after of its own.
"""

from __future__ import annotations

import httpx
import pytest

from coachgate.integrations.discord.client import RetryLater

from .conftest import World


def test_the_third_rename_in_ten_minutes_is_refused_as_discord_does(world: World) -> None:
    emu, g = world.emu, world.guild_id
    with httpx.Client(base_url=emu.base_url, timeout=5.0,
                      headers={"Authorization": f"Bot {emu.bot_token}"}) as http:
        ch = http.post(f"/guilds/{g}/channels", json={"name": "a", "type": 2}).json()
        other = http.post(f"/guilds/{g}/channels", json={"name": "b", "type": 2}).json()
        for name in ("a1", "a2"):
            assert http.patch(f"/channels/{ch['id']}", json={"name": name}).status_code == 200
        refused = http.patch(f"/channels/{ch['id']}", json={"name": "a3", "nsfw": True})
        assert refused.status_code == 429
        body = refused.json()
        assert body["global"] is False and body["message"] == "You are being rate limited."
        assert 590 < body["retry_after"] <= 600
        assert refused.headers["X-RateLimit-Scope"] == "user"
        assert "X-RateLimit-Global" not in refused.headers
        assert 590 < int(refused.headers["Retry-After"]) <= 600
        # The route's ordinary bucket is not what refused it, and its headers say so.
        assert int(refused.headers["X-RateLimit-Remaining"]) > 0
        assert refused.headers["X-RateLimit-Bucket"]
        stored = emu.channel(ch["id"])
        assert stored is not None and (stored["name"], stored["nsfw"]) == ("a2", False)
        # A topic counts as a rename; other changes and other channels are not limited.
        assert http.patch(f"/channels/{ch['id']}", json={"topic": "x"}).status_code == 429
        assert http.patch(f"/channels/{ch['id']}", json={"nsfw": True}).status_code == 200
        assert http.patch(f"/channels/{ch['id']}", json={
            "permission_overwrites": []}).status_code == 200
        assert http.patch(f"/channels/{other['id']}", json={"name": "b1"}).status_code == 200
        # Ten minutes later the channel may be renamed again.
        emu.skip_time(600)
        assert http.patch(f"/channels/{ch['id']}", json={"name": "a3"}).status_code == 200
    renamed = emu.channel(ch["id"])
    assert renamed is not None and renamed["name"] == "a3"


def test_a_rename_429_does_not_hold_back_the_channels_other_changes(world: World) -> None:
    c, emu, g = world.client, world.emu, world.guild_id
    emu.configure_hidden_limits(channel_rename=(1, 600.0))
    ch = c.create_channel(g, name="cg-1-coach", type=2,
                          permission_overwrites=world.private_overwrites(world.student))
    c.modify_channel(ch["id"], name="first")
    with pytest.raises(RetryLater) as exc:
        c.modify_channel(ch["id"], name="second")
    assert exc.value.status == 429 and exc.value.retry_after is not None
    assert exc.value.retry_after > 590  # beyond what the client waits for itself
    # The client did not mark the route's bucket empty: revoking goes out at once.
    before = len(world.records)
    c.modify_channel(ch["id"], permission_overwrites=world.private_overwrites())
    assert world.records[before].status == 200
    assert world.student not in emu.visible_users(ch["id"])

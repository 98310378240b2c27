"""The demo data loads on the local Discord emulator, with every demo user linked."""

from __future__ import annotations

from coachgate import demo
from coachgate.accounts import discord as linked
from coachgate.accounts.models import User
from coachgate.scheduling.models import Session


def test_demo_loads_on_the_emulator(db: None) -> None:
    emu = demo.start_discord()
    try:
        summary = demo.load_demo("http://127.0.0.1:8000", emu=emu)
        cfg = linked.guild_settings()
        assert cfg is not None and cfg.api_url == emu.base_url
        assert emu.base_url in summary
        users = User.objects.filter(email__endswith="@demo.coachgate.test")
        assert users.count() == 6
        assert all(linked.verification_state(u) == "verified" for u in users)
        members = {m["user"]["id"] for m in emu.members(cfg.guild_id)}
        assert {linked.discord_user_id(u) for u in users} <= members
        # The demo's first booking is a Discord session: it passed the Discord guard.
        session = Session.objects.get()
        assert session.offer.delivery == "discord_voice"
        # Loading again (a restart) links everyone to the new emulator's accounts.
        again = demo.load_demo("http://127.0.0.1:8000", emu=emu)
        assert "coachgate demo is ready" in again
        assert Session.objects.count() == 1
    finally:
        emu.stop()

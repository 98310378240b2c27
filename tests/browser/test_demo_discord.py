"""The demo's "Connect Discord" for someone who just signed up, in Chromium: sign up in
the browser, press Connect Discord on /sessions/, pick a username on the Discord
emulator's consent page (configured exactly as `coachgate demo` configures it), and come
back to a card that turns Verified by itself once the worker has added the member."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from coachgate import demo
from coachgate.accounts import discord as linked
from coachgate.accounts.models import User
from coachgate.accounts.tasks import join_discord_guild
from coachgate.integrations.discord.emulator import DiscordEmulator
from tests.browser.conftest import check, shot
from tests.test_demo import demo_oauth_app


@pytest.fixture
def demo_discord(settings: Any) -> Iterator[DiscordEmulator]:
    demo_oauth_app(settings)  # what `coachgate demo` sets before the settings load
    emu = demo.start_discord()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.mark.parametrize("width", ["desktop", "phone"])
def test_a_new_user_signs_up_and_connects_discord_in_the_demo(
        width: str, page: Page, phone: Page, base_url: str, demo_discord: DiscordEmulator,
        request: pytest.FixtureRequest) -> None:
    p = page if width == "desktop" else phone
    email = f"newcomer-{width}@example.org"
    p.goto(base_url + "/accounts/signup/")
    p.get_by_label("Email").fill(email)
    p.locator("input[name=password1]").fill("a-new-pass-9431")
    p.locator("input[name=password2]").fill("a-new-pass-9431")
    p.locator("main").get_by_role("button", name="Sign Up").click()
    p.wait_for_load_state()
    user = User.objects.get(email=email)

    p.goto(base_url + "/sessions/")
    card = p.locator("#discord-card")
    expect(card).to_have_attribute("data-state", "not_connected")
    check(p, request, f"sessions-not-connected-{width}")
    p.get_by_role("button", name="Connect Discord").click()
    # allauth may show its own "continue" page for a POSTed connect first; then Discord.
    expect(p.get_by_role("heading", name="An application wants to access your Discord "
                                         "account")).to_be_visible()
    assert p.url.startswith(demo_discord.url + "/oauth2/authorize?")
    shot(p, request, f"emulator-consent-{width}")
    p.get_by_label("Discord username").fill(f"new_{width}")
    p.get_by_role("button", name="Authorize").click()

    p.wait_for_url(base_url + "/sessions/")
    expect(card).to_have_attribute("data-state", "connected_not_in_guild")
    check(p, request, f"sessions-connected-{width}")
    # What the demo's worker does with the wake-up the connect left; the card asks again
    # by itself (htmx) and turns Verified without a reload.
    assert join_discord_guild.call(user.pk) == "verified"
    expect(card).to_have_attribute("data-state", "verified", timeout=8_000)
    expect(card.get_by_text("Verified", exact=True)).to_be_visible()
    expect(card.get_by_text(f"new_{width}")).to_be_visible()
    assert linked.verification_state(user) == "verified"
    check(p, request, f"sessions-verified-{width}")

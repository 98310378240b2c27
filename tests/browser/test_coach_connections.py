"""The coach's Connections page in a real browser at both widths: a Jitsi server saved
through the form, Zoom and Google Meet shown as not set up by the platform."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import check, login_as
from tests.factories import make_admin, make_coach


@pytest.mark.parametrize("width", ["desktop", "phone"])
def test_a_coach_saves_a_jitsi_server_on_the_connections_page(
        width: str, page: Page, phone: Page, base_url: str,
        request: pytest.FixtureRequest) -> None:
    p = page if width == "desktop" else phone
    coach = make_coach(f"conn-{width}@test.example", admin=make_admin(f"a-{width}@test.example"))
    login_as(p.context, base_url, coach)
    p.goto(f"{base_url}/coach/connections/")
    expect(p.get_by_role("heading", name="Connections")).to_be_visible()
    expect(p.get_by_text("The platform has not set Zoom up yet.")).to_be_visible()
    check(p, request, f"connections-empty-{width}")
    p.get_by_label("Jitsi server").fill("https://meet.example.org")
    p.get_by_role("button", name="Save the Jitsi server").click()
    expect(p.get_by_text("Your Jitsi server is connected.")).to_be_visible()
    expect(p.get_by_text("https://meet.example.org").first).to_be_visible()
    check(p, request, f"connections-jitsi-{width}")

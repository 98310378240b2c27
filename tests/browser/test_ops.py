"""The admin console in a real browser, at desktop and phone width: the statistics reflect
a settled session, the failures inbox shows a Discord permission error and clears after a
retry once the bot has the permission, approvals approve and reject, and the settings
page runs the bot check."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
import time_machine
from playwright.sync_api import Page, expect

from coachgate.access import services as access
from coachgate.accounts import services as accounts
from coachgate.accounts.models import CoachApplication, User
from coachgate.billing import services as billing
from coachgate.integrations.discord import permissions as perms
from coachgate.kit import clock
from coachgate.scheduling import services as scheduling
from tests.browser.conftest import check, login_as
from tests.clients import DiscordEnv
from tests.factories import MONDAY, make_admin, make_coach, make_offer, make_student

H = timedelta(hours=1)
START = MONDAY + 10 * H


@pytest.fixture
def at_grant_time() -> Iterator[None]:
    """The server's clock a minute after the session's channel should have been made (the
    browser's own clock is its own: it only shows what the server rendered)."""
    with time_machine.travel(START - 2 * H + timedelta(minutes=1), tick=True):
        yield


def sign_in(pages: tuple[Page, ...], base_url: str, user: User) -> None:
    for p in pages:
        login_as(p.context, base_url, user)


def test_the_statistics_reflect_a_settled_session(page: Page, phone: Page, base_url: str,
                                                  request: pytest.FixtureRequest) -> None:
    admin = make_admin()
    coach = make_coach(admin=admin)
    offer = make_offer(coach, title="Opening repertoire", price_minor=8000)
    booked = scheduling.book_session(make_student(), offer.pk, START,
                                     now=MONDAY - 48 * H).session
    billing.settle_session(booked.pk, now=booked.ends_at)  # completed: 80.00 USD charged
    sign_in((page, phone), base_url, admin)
    for p, width in ((page, "desktop"), (phone, "phone")):
        p.goto(base_url + "/ops/")
        expect(p.get_by_role("heading", name="Statistics")).to_be_visible()
        p.get_by_label("From").fill("2031-03-01")
        p.get_by_label("To").fill("2031-03-07")
        p.get_by_role("button", name="Show").click()
        expect(p.get_by_text("1 Mar 2031 – 7 Mar 2031")).to_be_visible()
        figures = p.locator(".ops-figures")
        expect(figures.locator(".card").nth(0)).to_contain_text("1")
        expect(figures.locator(".card").nth(1)).to_contain_text("100% of booked")
        money = p.locator("section", has=p.get_by_role("heading", name="Revenue, fees and payouts"))
        cells = money.get_by_role("row", name="USD").get_by_role("cell")
        expect(cells).to_have_text(["1", "80.00 USD", "8.00 USD", "72.00 USD"])
        hours = p.locator("section", has=p.get_by_role("heading", name="Booked and offered"))
        expect(hours.get_by_role("row", name="Coach").get_by_role("cell").first).to_have_text(
            "1.0")
        drawn = p.evaluate("""() => [...document.querySelectorAll('canvas[data-chart]')]
            .map(c => !!(window.Chart && window.Chart.getChart(c)))""")
        assert drawn and all(drawn), drawn
        check(p, request, f"statistics-{width}")
    # The presets: the last 7 days (nothing of 2031 in them).
    page.get_by_role("button", name="Last 7 days").click()
    expect(page.get_by_text("No sessions start in this period.")).to_be_visible()


def test_the_failures_inbox_shows_a_discord_permission_error_until_a_retry_fixes_it(
        at_grant_time: None, page: Page, phone: Page, base_url: str, discord: DiscordEnv,
        request: pytest.FixtureRequest) -> None:
    admin = make_admin()
    coach, student = make_coach(admin=admin), make_student()
    now = clock.now()
    discord.link(coach, now=now)
    discord.link(student, now=now)
    offer = make_offer(coach, title="Endgames", delivery="discord_voice")
    session = scheduling.book_session(student, offer.pk, START, now=now).session
    discord.emu.set_bot_permissions(discord.guild_id, perms.VIEW_CHANNEL | perms.CONNECT)
    assert access.converge(session.pk).outcome == "action"  # the worker's run
    sign_in((page, phone), base_url, admin)

    for p, width in ((phone, "phone"), (page, "desktop")):
        p.goto(base_url + "/ops/failures/")
        item = p.get_by_role("listitem").filter(has_text=f"Session {session.pk}")
        expect(item).to_contain_text("The bot lacks a Discord permission it needs")
        expect(item).to_contain_text("Missing Permissions")
        check(p, request, f"failures-error-{width}")

    item = page.get_by_role("listitem").filter(has_text=f"Session {session.pk}")
    item.get_by_role("button", name="Retry now").click()  # nothing fixed yet
    expect(page.get_by_text(f"Session {session.pk} still fails")).to_be_visible()
    discord.emu.set_bot_permissions(discord.guild_id, perms.ADMINISTRATOR)
    page.get_by_role("listitem").filter(has_text=f"Session {session.pk}").get_by_role(
        "button", name="Retry now").click()
    expect(page.get_by_text(f"Session {session.pk}'s access works again")).to_be_visible()
    expect(page.get_by_text("Nothing needs you.")).to_be_visible()
    check(page, request, "failures-cleared-desktop")
    assert len(discord.session_channels()) == 1
    phone.reload()
    expect(phone.get_by_text("Nothing needs you.")).to_be_visible()
    check(phone, request, "failures-cleared-phone")


def test_approvals_approve_and_reject_with_a_reason(page: Page, phone: Page, base_url: str,
                                                    request: pytest.FixtureRequest) -> None:
    admin = make_admin()
    ada, bob = make_student("ada@test.example"), make_student("bob@test.example")
    a = accounts.apply_as_coach(ada, display_name="Ada Lovelace", bio="I teach the Sicilian.",
                                specialties=["chess", "openings"], timezone="Europe/London",
                                motivation="Ten years of club coaching.")
    b = accounts.apply_as_coach(bob, display_name="Bob Brown", bio="", specialties=[],
                                timezone="UTC")
    sign_in((page, phone), base_url, admin)
    page.goto(base_url + "/ops/approvals/")
    expect(page.get_by_text("I teach the Sicilian.")).to_be_visible()
    check(page, request, "approvals-pending-desktop")
    page.get_by_role("button", name="Approve Ada Lovelace").click()
    expect(page.get_by_text("Ada Lovelace is now a coach.")).to_be_visible()
    ada.refresh_from_db()
    assert ada.role == "coach"

    phone.goto(base_url + "/ops/approvals/")
    check(phone, request, "approvals-pending-phone")
    phone.get_by_text("Reject…").click()
    phone.get_by_label("Reason").fill("Tell us about your coaching first.")
    phone.get_by_role("button", name="Reject Bob Brown").click()
    expect(phone.get_by_text("Bob Brown's application was rejected.")).to_be_visible()
    expect(phone.get_by_text("No application is waiting.")).to_be_visible()
    expect(phone.get_by_role("listitem").filter(has_text="Bob Brown")).to_contain_text(
        "Reason: Tell us about your coaching first.")
    check(phone, request, "approvals-decided-phone")
    assert CoachApplication.objects.get(pk=b.pk).status == "rejected"
    assert CoachApplication.objects.get(pk=a.pk).status == "approved"


def test_settings_show_the_platform_and_run_the_bot_check(
        page: Page, phone: Page, base_url: str, discord: DiscordEnv,
        request: pytest.FixtureRequest) -> None:
    admin = make_admin()
    sign_in((page, phone), base_url, admin)
    for p, width in ((page, "desktop"), (phone, "phone")):
        p.goto(base_url + "/ops/settings/")
        expect(p.get_by_text("10% of each charged session")).to_be_visible()
        p.get_by_role("button", name="Run the bot check").click()
        expect(p.get_by_text("All good")).to_be_visible()
        expect(p.get_by_text("bot has every permission it needs")).to_be_visible()
        check(p, request, f"settings-{width}")


def test_everyone_else_is_kept_out(page: Page, base_url: str) -> None:
    login_as(page.context, base_url, make_student())
    r = page.goto(base_url + "/ops/")
    assert r is not None and r.status == 403

"""The web foundation in a real browser: the shared layout on the public pages, the styled
sign-in and sign-up pages, the error pages and the account page's time zone setting, at
desktop and phone width."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import check, login_as
from tests.factories import make_admin, make_coach, make_offer, make_student


def test_public_pages_share_one_layout_at_both_widths(page: Page, phone: Page, base_url: str,
                                                      request: pytest.FixtureRequest) -> None:
    coach = make_coach(admin=make_admin())
    make_offer(coach)
    for p, width in ((page, "desktop"), (phone, "phone")):
        p.goto(base_url + "/")
        expect(p.get_by_role("link", name="coachgate")).to_be_visible()
        name = coach.coach_profile.display_name
        expect(p.get_by_role("link", name=name, exact=True)).to_be_visible()
        check(p, request, f"home-{width}")
        p.get_by_role("link", name="Log in").click()
        expect(p.get_by_role("heading", name="Sign In")).to_be_visible()
        # Pico's styles reached the page: the sign-in button is a filled, full-width button.
        bg = p.get_by_role("button", name="Sign In").evaluate(
            "b => getComputedStyle(b).backgroundColor")
        assert bg not in ("rgba(0, 0, 0, 0)", "rgb(239, 239, 239)"), bg
        check(p, request, f"login-{width}")
        p.goto(base_url + "/accounts/signup/")
        expect(p.get_by_label("Email")).to_be_visible()
        check(p, request, f"signup-{width}")


def test_missing_pages_answer_the_styled_404(page: Page, base_url: str,
                                             request: pytest.FixtureRequest) -> None:
    coach = make_coach(admin=make_admin())
    draft = make_offer(coach, publish=False)
    for path in ("/coaches/999999/", f"/offers/{draft.pk}/", "/no/such/page/"):
        r = page.goto(base_url + path)
        assert r is not None and r.status == 404, (path, r and r.status)
        expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    check(page, request, "404")


def test_the_account_page_sets_the_zone_every_page_shows(page: Page, base_url: str,
                                                         request: pytest.FixtureRequest) -> None:
    student = make_student()
    login_as(page.context, base_url, student)
    page.goto(base_url + "/account/")
    expect(page.get_by_text("Times are shown in UTC")).to_be_visible()
    page.get_by_label("Display name").fill("Ada L.")
    page.get_by_label("Time zone").select_option("Asia/Tokyo")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Times are now shown in Asia/Tokyo")).to_be_visible()
    expect(page.get_by_text(re.compile("Times are shown in Asia/Tokyo"))).to_be_visible()
    student.refresh_from_db()
    assert (student.display_name, student.timezone) == ("Ada L.", "Asia/Tokyo")
    check(page, request, "account")


def test_account_pages_are_styled_and_keyboard_reachable(page: Page, phone: Page, base_url: str,
                                                         request: pytest.FixtureRequest) -> None:
    student = make_student()
    page.goto(base_url + "/accounts/password/reset/")
    expect(page.get_by_role("heading", name="Password Reset")).to_be_visible()
    check(page, request, "password-reset")
    # The first Tab reaches the skip link, and following it moves focus to the content.
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.id") == "main"
    for p, width in ((page, "desktop"), (phone, "phone")):
        login_as(p.context, base_url, student)
        for path, heading in (("/accounts/email/", "Email Addresses"),
                              ("/accounts/password/change/", "Change Password"),
                              ("/accounts/3rdparty/", "Account Connections")):
            p.goto(base_url + path)
            expect(p.get_by_role("heading", name=heading)).to_be_visible()
            expect(p.get_by_role("navigation", name="Account")).to_be_visible()
            check(p, request, f"{path.strip('/').replace('/', '-')}-{width}")

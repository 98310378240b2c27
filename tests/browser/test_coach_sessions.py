"""A coach runs a session from the dashboard in a real browser, at desktop and phone width:
the overview shows the booked session, the sessions page its student and intake answers,
the session's page its audit trail and gate timeline; once the no-show wait has passed the
coach marks the student absent and sees the payout there and in the earnings."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import time_machine
from playwright.sync_api import Page, expect

from coachgate.scheduling import services as scheduling
from tests.browser.conftest import check, login_as
from tests.factories import MONDAY, make_admin, make_coach, make_offer, make_student

START = MONDAY + timedelta(hours=10)
FRIDAY = MONDAY - timedelta(days=2, hours=12)
INTAKE = [{"label": "What do you want to work on?", "type": "text", "required": True},
          {"label": "Level", "type": "choice", "choices": ["beginner", "advanced"]}]


def _booked() -> tuple[Any, Any]:
    coach = make_coach(admin=make_admin())
    offer = make_offer(coach, title="Python code review", intake_fields=INTAKE)
    student = make_student("ada@test.example")
    student.display_name = "Ada Lovelace"
    student.save()
    session = scheduling.book_session(
        student, offer.pk, START, now=FRIDAY,
        intake={"what_do_you_want_to_work_on": "Make my async code readable",
                "level": "advanced"}).session
    return coach, session


def _before_the_session(p: Page, base_url: str, request: pytest.FixtureRequest, width: str,
                        session_id: int) -> None:
    p.goto(base_url + "/coach/")
    expect(p.get_by_role("heading", name="Next sessions")).to_be_visible()
    expect(p.locator(".next-list")).to_contain_text("Ada Lovelace")
    check(p, request, f"overview-{width}")
    p.get_by_role("link", name="Sessions", exact=True).click()
    card = p.locator(".session-card").first
    expect(card).to_contain_text("What do you want to work on?")
    expect(card).to_contain_text("Make my async code readable")
    expect(card).to_contain_text("Scheduled")
    check(p, request, f"sessions-{width}")
    card.get_by_role("link", name="Monday 3 March").click()
    expect(p).to_have_url(f"{base_url}/coach/sessions/{session_id}/")
    expect(p.get_by_role("heading", name="Audit trail")).to_be_visible()
    expect(p.locator(".audit")).to_contain_text("Booked")
    gates = p.locator("table.gates")
    expect(gates).to_contain_text("Join button opens")
    expect(gates).to_contain_text("Mon 3 Mar, 09:55")  # London is on UTC in March
    expect(p.get_by_text("times in Europe/London").first).to_be_visible()
    check(p, request, f"session-{width}")


def test_a_coach_runs_a_session_from_the_dashboard(page: Page, phone: Page, base_url: str,
                                                   request: pytest.FixtureRequest) -> None:
    with time_machine.travel(FRIDAY, tick=False) as clock:
        coach, session = _booked()
        for p, width in ((page, "desktop"), (phone, "phone")):
            login_as(p.context, base_url, coach)
            _before_the_session(p, base_url, request, width, session.pk)

        clock.move_to(START + timedelta(minutes=10))
        page.reload()
        expect(page.get_by_text("Happening now").first).to_be_visible()
        expect(page.get_by_role("button", name="End session")).to_be_visible()
        expect(page.get_by_role("button", name="Student absent")).to_have_count(0)
        expect(page.get_by_text("“Student absent” from 10:20")).to_be_visible()

        clock.move_to(START + timedelta(minutes=21))
        page.reload()
        page.once("dialog", lambda d: d.accept())
        page.get_by_role("button", name="Student absent").click()
        expect(page.get_by_text("Marked the student absent.")).to_be_visible()
        expect(page).to_have_url(f"{base_url}/coach/sessions/{session.pk}/")
        expect(page.locator(".payout")).to_have_text("22.50 USD")
        expect(page.locator(".audit")).to_contain_text("Student marked absent")
        check(page, request, "session-settled-desktop")

        # A payout of part of it, and a pack another student bought: the earnings show both.
        from coachgate.billing import services as billing
        from coachgate.packs import services as packs

        billing.record_payout(make_admin("payer@test.example"), coach.coach_profile.pk,
                              currency="USD", amount_minor=1000, reference="wire-0042")
        pack_offer = make_offer(coach, title="Five sessions", pack_size=5, price_minor=20000)
        packs.buy_pack(make_student("pat@test.example"), pack_offer.pk)
        for p, width in ((page, "desktop"), (phone, "phone")):
            p.goto(base_url + "/coach/sessions/")
            expect(p.locator("table.sessions-table")).to_contain_text("Student absent")
            check(p, request, f"sessions-past-{width}")
            p.goto(base_url + "/coach/earnings/")
            expect(p.locator(".balance")).to_have_text("12.50 USD")
            expect(p.locator("table.months")).to_contain_text("22.50 USD")
            expect(p.locator("table.payouts")).to_contain_text("wire-0042")
            expect(p.locator("table.packs")).to_contain_text("5 of 5")
            check(p, request, f"earnings-{width}")
            p.get_by_role("button", name="Show here").click()
            shown = p.locator("#statement-shown")
            expect(shown).to_contain_text("Closing balance")
            expect(shown.locator("dd").last).to_have_text("12.50 USD")
            expect(shown.locator("table.statement-lines tbody tr")).to_have_count(2)
            check(p, request, f"statement-{width}")
        with page.expect_download() as got:
            page.get_by_role("button", name="Download CSV").click()
        assert got.value.suggested_filename.endswith("-USD.csv")


def test_a_new_coach_sees_what_to_do_first(page: Page, phone: Page, base_url: str,
                                           request: pytest.FixtureRequest) -> None:
    from coachgate.accounts import services as accounts
    from coachgate.catalog import services as catalog

    admin = make_admin()
    user = accounts.create_user(email="new@test.example", password="pw-new-12345")
    app = accounts.apply_as_coach(user, display_name="Nora New", bio="", specialties=[],
                                  timezone="Europe/London")
    catalog.approve_application(admin, app.pk)
    for p, width in ((page, "desktop"), (phone, "phone")):
        login_as(p.context, base_url, user)
        p.goto(base_url + "/coach/")
        expect(p.get_by_role("heading", name="Get started")).to_be_visible()
        expect(p.get_by_role("link", name="Set availability")).to_have_attribute(
            "href", "/coach/availability/")
        expect(p.get_by_text("No sessions booked yet.")).to_be_visible()
        check(p, request, f"new-coach-{width}")
        p.goto(base_url + "/coach/earnings/")
        expect(p.get_by_text("No payouts yet.")).to_be_visible()
        check(p, request, f"new-coach-earnings-{width}")

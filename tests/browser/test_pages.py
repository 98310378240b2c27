"""The public and student pages in Chromium at desktop and phone width: a coach's page, an
offer's page (anonymous: the free times; a student: the labelled intake form and the slot
wall), and my sessions with a booking."""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import Page, expect

from coachgate.accounts.models import User
from coachgate.catalog.models import Offer
from tests.browser.conftest import check, login_as
from tests.factories import make_admin, make_coach, make_offer, make_student

INTAKE = [{"label": "What do you want to achieve?", "type": "textarea", "required": True},
          {"label": "Years of practice", "type": "number"},
          {"label": "Level", "type": "choice", "choices": ["beginner", "advanced"]},
          {"label": "I have read the cancellation rules", "type": "checkbox", "required": True}]


def _catalog() -> tuple[User, Offer, Offer]:
    coach = make_coach("ada@test.example", tz="Europe/London", admin=make_admin())
    profile = coach.coach_profile
    profile.bio = ("Fifteen years of teaching programming, from first loops to system "
                   "design. Sessions in English or French.")
    profile.specialties = ["python", "algorithms", "interviews"]
    profile.save()
    one = make_offer(coach, title="1:1 session (60 min)", price_minor=6000,
                     description="A private hour on a video link.", intake_fields=INTAKE)
    # Short slots on a fine step: the busiest slot wall a page can get.
    group = make_offer(coach, title="Group clinic (15 min, 4 seats)", capacity=4,
                       duration_minutes=15, slot_step_minutes=15, price_minor=2500,
                       currency="EUR", description="Small-group practice.")
    return coach, one, group


@pytest.mark.parametrize("width", ["desktop", "phone"])
def test_coach_and_offer_pages_for_a_visitor(width: str, page: Page, phone: Page,
                                             base_url: str,
                                             request: pytest.FixtureRequest) -> None:
    p = page if width == "desktop" else phone
    coach, _one, group = _catalog()
    p.goto(f"{base_url}/coaches/{coach.coach_profile.pk}/")
    expect(p.get_by_role("heading", name="Ada")).to_be_visible()
    expect(p.get_by_text("interviews")).to_be_visible()
    expect(p.get_by_role("link", name="1:1 session (60 min)")).to_be_visible()
    check(p, request, f"coach-{width}")
    p.goto(f"{base_url}/offers/{group.pk}/")
    # A visitor has no zone of their own: UTC, named, and a link to the device's zone.
    expect(p.locator(".zone-note")).to_contain_text("Times are shown in UTC")
    p.get_by_role("link", name="Show them in Europe/London").click()
    expect(p.locator(".zone-note")).to_contain_text("Times are shown in Europe/London")
    expect(p.get_by_role("link", name="Show them in Europe/London")).to_be_hidden()
    expect(p.get_by_role("button", name="Log in as a student")).to_be_visible()
    days = p.locator("details.day")
    assert days.count() == 7  # a week of days, then "Later times"
    expect(days.nth(1)).to_have_attribute("open", "")  # the first two open, the rest closed
    assert days.nth(2).get_attribute("open") is None
    days.nth(2).locator("summary").click()
    expect(days.nth(2).locator(".slot").first).to_be_visible()
    expect(p.get_by_role("link", name="Later times →")).to_be_visible()
    check(p, request, f"offer-visitor-{width}")
    p.get_by_role("link", name="Later times →").click()
    expect(p.get_by_role("link", name="← Soonest times")).to_be_visible()
    assert "tz=Europe/London" in p.url.replace("%2F", "/")  # the zone stays on later pages
    check(p, request, f"offer-visitor-later-{width}")


@pytest.mark.parametrize("width", ["desktop", "phone"])
def test_a_student_books_with_the_intake_form_and_sees_the_session(
        width: str, page: Page, phone: Page, base_url: str,
        request: pytest.FixtureRequest) -> None:
    p = page if width == "desktop" else phone
    coach, one, _group = _catalog()
    student = make_student(f"sam-{width}@test.example", tz="Asia/Tokyo")
    login_as(p.context, base_url, student)
    p.goto(f"{base_url}/offers/{one.pk}/")
    expect(p.get_by_role("heading", name="Pick a time")).to_be_visible()
    expect(p.locator(".zone-note")).to_contain_text("Times are shown in Asia/Tokyo")
    check(p, request, f"offer-student-{width}")
    p.get_by_label("What do you want to achieve?").fill("Pass my interview")
    p.get_by_label("Years of practice").fill("3")
    p.get_by_label("Level").select_option("advanced")
    p.get_by_label("I have read the cancellation rules").check()
    first = p.locator(".slots button").first
    label = first.get_attribute("aria-label") or ""
    assert label.startswith("Book ")
    first.click()
    p.wait_for_url(f"{base_url}/sessions/")
    expect(p.get_by_text("Booked. You will get access shortly before the session.")) \
        .to_be_visible()
    row = p.locator("table.sessions-table tbody tr").first
    expect(row.get_by_text("Scheduled")).to_be_visible()
    expect(row.get_by_role("link", name="1:1 session (60 min)")).to_be_visible()
    expect(p.get_by_text("Times in Asia/Tokyo")).to_be_visible()
    check(p, request, f"sessions-student-{width}")
    # The coach sees the same session on this page, with the student-facing columns.
    p.context.clear_cookies()
    login_as(p.context, base_url, coach)
    p.goto(f"{base_url}/sessions/")
    expect(p.locator("table.sessions-table tbody tr")).to_have_count(1)
    check(p, request, f"sessions-coach-{width}")


def test_a_draft_offer_shows_its_coach_a_preview_and_others_the_404(
        page: Page, base_url: str, request: pytest.FixtureRequest) -> None:
    coach = make_coach(admin=make_admin())
    draft = make_offer(coach, publish=False, title="Draft offer")
    r = page.goto(f"{base_url}/offers/{draft.pk}/")
    assert r is not None and r.status == 404
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    login_as(page.context, base_url, coach)
    page.goto(f"{base_url}/offers/{draft.pk}/")
    expect(page.get_by_text("only you and the platform's admins see this page")) \
        .to_be_visible()
    expect(page.get_by_text("Students see the free times once the offer is published.")) \
        .to_be_visible()
    check(page, request, "offer-draft-preview")


@pytest.mark.parametrize("width", ["desktop", "phone"])
def test_the_join_link_before_the_window_counts_down(width: str, page: Page, phone: Page,
                                                      base_url: str,
                                                      request: pytest.FixtureRequest) -> None:
    from coachgate.kit import clock
    from coachgate.scheduling import services as scheduling

    p = page if width == "desktop" else phone
    _coach, _one, group = _catalog()
    student = make_student(f"kim-{width}@test.example", tz="Europe/Berlin")
    now = clock.now()
    slot = scheduling.list_slots(student, group, start=now + timedelta(days=1),
                                 end=now + timedelta(days=8), now=now)[0]
    session = scheduling.book_session(student, group.pk, slot.start, now=now).session
    login_as(p.context, base_url, student)
    p.goto(f"{base_url}/sessions/{session.pk}/join")
    expect(p.get_by_role("heading", name="Not open yet")).to_be_visible()
    expect(p.get_by_text("Opens in")).to_be_visible()
    expect(p.get_by_text("(Europe/Berlin)").first).to_be_visible()
    check(p, request, f"join-early-{width}")

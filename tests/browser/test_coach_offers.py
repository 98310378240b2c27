"""A coach makes an offer through the four-step wizard in a real browser: the live preview
follows the typing, the draft survives a reload, the options step shows what the policies
mean in minutes and amounts, publishing asks first; then a student sees the offer. The
wizard's pages again at phone width, with a picture upload."""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from coachgate.catalog.models import Offer
from tests.browser.conftest import check, login_as
from tests.factories import make_admin, make_coach, make_offer, make_student


def test_a_coach_creates_and_publishes_an_offer_through_the_wizard(
        page: Page, browser, base_url: str, request: pytest.FixtureRequest) -> None:
    coach = make_coach(admin=make_admin())
    login_as(page.context, base_url, coach)
    page.goto(base_url + "/coach/offers/")
    expect(page.get_by_text("You have no offers yet.")).to_be_visible()
    check(page, request, "1-empty-list")
    page.get_by_role("button", name="Create your first offer").click()

    # Step 1: a generated card style; the preview takes it at once.
    expect(page.get_by_role("heading", name="Step 1 of 4 · Picture")).to_be_visible()
    page.get_by_text("Sunset", exact=True).click()
    expect(page.locator("#offer-preview")).to_have_class(re.compile(r"\bstyle-sunset\b"))
    check(page, request, "2-step-picture")
    page.get_by_role("button", name="Save and continue").click()

    # Step 2: the preview card follows the typing.
    expect(page.get_by_role("heading", name="Step 2 of 4 · Checkout")).to_be_visible()
    page.get_by_label("Title").fill("Career coaching")
    page.get_by_label("Description").fill("Plan your next move in tech, with a senior mentor.")
    page.get_by_label("Price").fill("45")
    page.get_by_label("Currency").select_option("EUR")
    page.get_by_label("Duration (minutes)").fill("45")
    preview = page.locator("#offer-preview")
    expect(preview.get_by_role("heading", name="Career coaching")).to_be_visible()
    expect(preview.get_by_text("45.00 EUR")).to_be_visible()
    expect(preview.get_by_text("45 min")).to_be_visible()
    page.get_by_role("button", name="Add a question").click()
    page.get_by_label("Question", exact=True).fill("What would you like to achieve?")
    page.get_by_label("Required").check()
    check(page, request, "3-step-checkout")
    page.get_by_role("button", name="Save draft and continue").click()

    # Step 3: the draft exists; a reload (or coming back later) resumes here.
    expect(page.get_by_role("heading", name="Step 3 of 4 · Availability and booking rules")
           ).to_be_visible()
    offer = Offer.objects.get(title="Career coaching")
    assert (offer.status, offer.price_minor, offer.currency, offer.card_style) == (
        "draft", 4500, "EUR", "sunset")
    page.reload()
    expect(page.get_by_role("heading", name="Step 3 of 4 · Availability and booking rules")
           ).to_be_visible()
    page.goto(base_url + f"/coach/offers/{offer.pk}/edit/")
    expect(page).to_have_url(re.compile(rf"/coach/offers/{offer.pk}/edit/availability/$"))
    expect(page.locator("#offer-preview").get_by_text("45.00 EUR")).to_be_visible()
    expect(page.get_by_text("Mon 09:00–17:00")).to_be_visible()  # the coach's own hours
    page.get_by_label("Minimum notice (minutes)").fill("60")
    page.get_by_label("Buffer after (minutes)").fill("15")
    check(page, request, "4-step-availability")
    page.get_by_role("button", name="Save and continue").click()

    # Step 4: the policies as minutes and amounts, recomputed as the coach types.
    expect(page.get_by_role("heading", name="Step 4 of 4 · Options")).to_be_visible()
    sentence = page.locator("[data-policy-headline]")
    expect(sentence).to_have_text("45 min: no-show button after 15 min, early end below 30 "
                                  "min, no-show charge 22.50 EUR")
    page.get_by_label("No-show wait (share of the duration)").fill("1/5")
    expect(sentence).to_have_text("45 min: no-show button after 9 min, early end below 30 "
                                  "min, no-show charge 22.50 EUR")
    check(page, request, "5-step-options")
    page.get_by_role("button", name="Save and publish…").click()

    # Publishing asks first.
    expect(page.get_by_role("heading", name="Publish this offer?")).to_be_visible()
    expect(page.get_by_text("no-show button after 9 min")).to_be_visible()
    check(page, request, "6-confirm-publish")
    offer.refresh_from_db()
    assert offer.status == "draft"
    page.get_by_role("button", name="Publish", exact=True).click()
    expect(page.get_by_text("“Career coaching” is published")).to_be_visible()
    expect(page.get_by_text(re.compile(r"\d+\+? bookable slots in the next 14 days"))
           ).to_be_visible()
    check(page, request, "7-list-published")
    offer.refresh_from_db()
    assert offer.status == "published" and offer.min_notice_minutes == 60

    # A student sees the offer as it was previewed.
    student_context = browser.new_context(viewport={"width": 1280, "height": 900},
                                          bypass_csp=True, timezone_id="Europe/London")
    try:
        student_page = student_context.new_page()
        login_as(student_context, base_url, make_student())
        student_page.goto(base_url + f"/offers/{offer.pk}/")
        expect(student_page.get_by_role("heading", name="Career coaching")).to_be_visible()
        facts = student_page.get_by_role("complementary", name="About this offer")
        expect(facts.get_by_text("45.00 EUR", exact=True)).to_be_visible()
        expect(facts.get_by_text("45 min", exact=True)).to_be_visible()
        expect(student_page.get_by_label("What would you like to achieve? (required)")
               ).to_be_visible()
        check(student_page, request, "8-student-offer-page")
    finally:
        student_context.close()


def _png() -> bytes:
    buf = io.BytesIO()
    img = Image.new("RGB", (1200, 800), (14, 116, 144))
    for x in range(0, 1200, 60):
        img.paste((253, 224, 71), (x, 0, x + 30, 800))
    img.save(buf, "PNG")
    return buf.getvalue()


def test_the_wizard_at_phone_width_with_a_picture(phone: Page, base_url: str,
                                                  request: pytest.FixtureRequest) -> None:
    coach = make_coach(admin=make_admin())
    draft = make_offer(coach, publish=False, title="Interview practice",
                       description="Mock interviews with feedback.",
                       intake_fields=[{"label": "Role you apply for", "type": "text"}])
    make_offer(coach, title="Code review", card_style="violet")
    login_as(phone.context, base_url, coach)
    phone.goto(base_url + "/coach/offers/")
    expect(phone.get_by_role("heading", name="Drafts")).to_be_visible()
    check(phone, request, "phone-1-list")

    phone.goto(base_url + f"/coach/offers/{draft.pk}/edit/thumbnail/")
    phone.get_by_label("Picture (optional)").set_input_files(
        files=[{"name": "cover.png", "mimeType": "image/png", "buffer": _png()}])
    expect(phone.locator("#offer-preview img")).to_be_visible()  # the chosen file, at once
    check(phone, request, "phone-2-picture")
    phone.get_by_role("button", name="Save and continue").click()
    draft.refresh_from_db()
    assert draft.thumbnail
    expect(phone.get_by_role("heading", name="Step 2 of 4 · Checkout")).to_be_visible()
    phone.get_by_label("Price").fill("-3")
    phone.get_by_role("button", name="Save and continue").click()
    expect(phone.get_by_text("Enter an amount such as 49.99")).to_be_visible()
    expect(phone.get_by_label("Title")).to_have_value("Interview practice")
    check(phone, request, "phone-3-checkout-error")
    for step in ("availability", "options"):
        phone.goto(base_url + f"/coach/offers/{draft.pk}/edit/{step}/")
        check(phone, request, f"phone-4-{step}")
    # From the list, publishing asks in a dialog (its confirmation page without JavaScript).
    phone.goto(base_url + "/coach/offers/")
    phone.get_by_role("button", name="Publish… Interview practice").click()
    dialog = phone.get_by_role("dialog")
    expect(dialog.get_by_role("heading", name="Publish this offer?")).to_be_visible()
    check(phone, request, "phone-5-publish-dialog")
    draft.refresh_from_db()
    assert draft.status == "draft"
    dialog.get_by_role("button", name="Publish", exact=True).click()
    expect(phone.get_by_text("“Interview practice” is published")).to_be_visible()
    draft.refresh_from_db()
    assert draft.status == "published"
    phone.goto(base_url + f"/coach/offers/{draft.pk}/archive/")
    expect(phone.get_by_role("heading", name="Archive this offer?")).to_be_visible()
    check(phone, request, "phone-6-confirm-archive")

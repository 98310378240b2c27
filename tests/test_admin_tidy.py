"""Django admin tidied: one clearly named section per domain, readable plurals, times with
their zone, and the JSON fields edited as words, rows of inputs and inputs per key."""

from __future__ import annotations

import re
from datetime import datetime

from django.test import Client

from coachgate.accounts.models import User
from coachgate.catalog.models import CoachProfile, Offer
from coachgate.scheduling import services as scheduling
from tests.admin_html import table_rows
from tests.factories import MONDAY, make_coach, make_offer, make_student


def admin_client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_sections_have_distinct_clear_names(admin: User) -> None:
    html = admin_client(admin).get("/admin/").content.decode()
    sections = re.findall(r'<caption>\s*<a [^>]*class="section"[^>]*>([^<]+)</a>', html)
    assert len(sections) == len({s.lower() for s in sections}), sections
    for name in ("People and coach applications", "Coaches and offers",
                 "Availability and sessions", "Billing and payments", "Packs and seats"):
        assert name in sections, sections
    assert "Weekly availability rules" in html and "availabilitys" not in html.lower()


def test_times_in_lists_name_their_zone(admin: User, now: datetime) -> None:
    coach = make_coach(admin=admin)
    scheduling.book_session(make_student(), make_offer(coach).pk, MONDAY.replace(hour=10),
                            now=now)
    admin.timezone = "Asia/Tokyo"
    admin.save()
    rows = [r for r in table_rows(admin_client(admin).get("/admin/scheduling/session/").text)
            if r.get("starts_at")]
    assert rows and rows[0]["starts_at"] == "March 3, 2031, 7 p.m. JST"


def test_specialties_are_words_and_questions_and_policies_are_inputs(admin: User) -> None:
    coach = make_coach(admin=admin)
    profile = CoachProfile.objects.get(user=coach)
    client = admin_client(admin)
    page = client.get(f"/admin/catalog/coachprofile/{profile.pk}/change/").content.decode()
    assert 'value="python"' in page and "[&quot;python&quot;]" not in page
    offer = make_offer(coach, intake_fields=[{"label": "Goal", "type": "text"}],
                       money_policy={"no_show_wait_ratio": "1/4"})
    page = client.get(f"/admin/catalog/offer/{offer.pk}/change/").content.decode()
    # The stored question is a row of inputs, followed by empty rows; no JSON in sight.
    assert 'name="intake_fields-0-label" value="Goal"' in page
    assert 'name="intake_fields-1-label" value=""' in page
    assert 'name="money_policy-no_show_wait_ratio" value="1/4"' in page
    assert "&quot;label&quot;" not in page
    stored = Offer.objects.get(pk=offer.pk).money_policy
    form = _form_data(page)
    form["money_policy-min_payable_ratio"] = "3/2"  # more than the whole session
    r = client.post(f"/admin/catalog/offer/{offer.pk}/change/", form)
    assert r.status_code == 200 and "errorlist" in r.content.decode()  # refused, with why
    assert Offer.objects.get(pk=offer.pk).money_policy == stored  # nothing changed
    form["money_policy-min_payable_ratio"] = ""
    form["intake_fields-0-label"] = ""  # removes "Goal"
    form["intake_fields-1-label"] = "Level"
    form["intake_fields-1-type"] = "choice"
    form["intake_fields-1-choices"] = "beginner, advanced"
    form["intake_fields-1-required"] = "on"
    form["access_policy-reminders_before_s"] = "3600, 600"
    r = client.post(f"/admin/catalog/offer/{offer.pk}/change/", form)
    assert r.status_code == 302, r.content.decode()[:2000]
    offer = Offer.objects.get(pk=offer.pk)
    assert [(f["label"], f["type"], f["required"], f.get("choices"))
            for f in offer.intake_fields] == [("Level", "choice", True,
                                               ["beginner", "advanced"])]
    assert offer.intake_fields[0]["key"] == "level"
    assert offer.access_policy["reminders_before_s"] == [3600, 600]
    assert offer.money_policy["no_show_wait_ratio"] == "1/4"
    assert offer.money_policy.get("min_payable_ratio", "2/3") == "2/3"  # emptied: default


def _form_data(html: str) -> dict[str, str]:
    """The change form's fields with their current values (inputs, selects, textareas)."""
    from html import unescape

    form = html[html.index('id="offer_form"'):]
    data: dict[str, str] = {}
    for tag in re.findall(r"<input [^>]*>", form):
        name = re.search(r'name="([^"]+)"', tag)
        if not name or 'type="submit"' in tag:
            continue
        value = re.search(r'value="([^"]*)"', tag)
        if 'type="checkbox"' in tag:
            if "checked" in tag:
                data[name.group(1)] = "on"
            continue
        data[name.group(1)] = unescape(value.group(1)) if value else ""
    for name, body in re.findall(r'<textarea name="([^"]+)"[^>]*>(.*?)</textarea>', form, re.S):
        data[name] = unescape(body.lstrip("\n"))
    for name, body in re.findall(r'<select name="([^"]+)"[^>]*>(.*?)</select>', form, re.S):
        chosen = re.search(r'<option value="([^"]*)"[^>]*selected', body)
        data[name] = chosen.group(1) if chosen else ""
    return data

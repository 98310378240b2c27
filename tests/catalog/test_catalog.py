"""Catalog: offers' lifecycle, browsing coaches, intake and policy rules."""

from __future__ import annotations

import pytest

from coachgate.catalog import rules, services
from coachgate.kit.errors import InvalidInput
from coachgate.kit.money import format_amount, minor_digits
from tests.clients import Api
from tests.factories import make_coach, make_offer, token_for


def test_offer_lifecycle_draft_published_archived(coach):
    offer = make_offer(coach, publish=False)
    assert offer.status == "draft" and not offer.is_bookable
    assert offer.access_policy["grant_before_s"] == 7200  # SPEC defaults filled in
    assert offer.money_policy == {"no_show_wait_ratio": "1/3", "min_payable_ratio": "2/3"}
    offer = services.set_offer_status(coach, offer.pk, "published")
    assert offer.is_bookable and offer.published_at is not None
    offer = services.set_offer_status(coach, offer.pk, "archived")
    assert not offer.is_bookable
    with pytest.raises(InvalidInput):
        services.set_offer_status(coach, offer.pk, "published")


def test_offer_has_every_spec_field_through_the_api(coach):
    api = Api(token_for(coach))
    body = {
        "title": "Pack", "description": "d", "price_minor": 1500, "currency": "KWD",
        "duration_minutes": 90, "session_type": "audio", "delivery": "discord_voice",
        "intake_fields": [{"label": "Your goal", "type": "textarea", "required": True}],
        "thumbnail_url": "https://example.com/t.png", "capacity": 4, "pack_size": 5,
        "buffer_before_minutes": 5, "buffer_after_minutes": 10, "min_notice_minutes": 180,
        "horizon_days": 30, "max_sessions_per_day": 3, "slot_step_minutes": 30,
        "free_cancellation_hours": 48, "access_policy": {"grant_before_s": 60},
        "money_policy": {"no_show_wait_ratio": "0.25"},
    }
    r = api.post("/offers", body)
    assert r.status_code == 201, r.json_body
    out = r.json_body
    for key, value in body.items():
        if key not in ("intake_fields", "access_policy", "money_policy"):
            assert out[key] == value, key
    assert out["intake_fields"] == [{"key": "your_goal", "label": "Your goal",
                                     "type": "textarea", "required": True}]
    assert out["access_policy"]["grant_before_s"] == 60
    assert out["access_policy"]["join_window_before_s"] == 300
    assert out["money_policy"]["no_show_wait_ratio"] == "0.25"
    assert out["status"] == "draft"


def test_browse_coaches_by_specialty_rating_and_price(db, admin):
    a = make_coach("a@test.example", admin=admin)
    b = make_coach("b@test.example", admin=admin)
    make_coach("c@test.example", admin=admin)  # no published offer: not listed
    make_offer(a, price_minor=9000)
    make_offer(b, price_minor=3000)
    b.coach_profile.specialties = ["Chess"]
    b.coach_profile.rating_average, b.coach_profile.rating_count = 4.5, 2
    b.coach_profile.save()
    assert [c.user_id for c in services.browse_coaches()] == [b.pk, a.pk]
    assert [c.user_id for c in services.browse_coaches(order="price")] == [b.pk, a.pk]
    assert [c.user_id for c in services.browse_coaches(specialty="chess")] == [b.pk]
    r = Api().get("/coaches?specialty=python")
    assert [c["id"] for c in r.json_body] == [a.coach_profile.pk]
    assert Api().get("/coaches?order=alphabet").status_code == 422


@pytest.mark.parametrize("answers,problem", [
    ({}, "goal"),
    ({"goal": "x", "age": "ten"}, "age"),
    ({"goal": "x", "mail": "not-an-email"}, "mail"),
    ({"goal": "x", "agree": "yes"}, "agree"),
    ({"goal": "x" * 501}, "goal"),
])
def test_intake_answer_rules(answers, problem):
    fields = rules.normalize_intake_fields([
        {"label": "Goal", "required": True}, {"label": "Age", "type": "number"},
        {"label": "Mail", "type": "email"}, {"label": "Agree", "type": "checkbox"},
    ])
    with pytest.raises(InvalidInput) as err:
        rules.validate_intake_answers(fields, answers)
    assert problem in err.value.details["fields"]


def test_intake_duplicate_keys_are_refused():
    with pytest.raises(InvalidInput):
        rules.normalize_intake_fields([{"label": "Goal"}, {"label": "goal"}])


@pytest.mark.parametrize("currency,digits,text", [
    ("USD", 2, "12.34 USD"), ("JPY", 0, "1234 JPY"), ("KWD", 3, "1.234 KWD")])
def test_money_minor_units(currency, digits, text):
    assert minor_digits(currency) == digits
    assert format_amount(1234, currency) == text

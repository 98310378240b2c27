"""Issue 9, item 1 (and item 6's session_type default): every number a coach configures is
bounded where it enters (API, service, admin), and the policy parsers are fast and safe on
any JSON, including values already stored in a database."""

from __future__ import annotations

import json
import math
import time
from typing import Any

import pytest
from django.contrib.admin.sites import site
from django.forms.models import model_to_dict
from django.test import RequestFactory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coachgate.catalog import rules, services
from coachgate.catalog.models import Offer
from coachgate.kit.errors import InvalidInput
from coachgate.scheduling.services import list_slots
from tests.clients import Api
from tests.factories import make_offer, make_student, token_for

OFFER = {"title": "T", "price_minor": 5000, "currency": "USD", "duration_minutes": 60,
         "delivery": "jitsi"}


def _refused(r: Any, field: str) -> None:
    assert r.status_code == 422, r.json_body
    assert r.json_body["code"] == "invalid_input"
    assert r.json_body["details"]["field"] == field, r.json_body


# --- money policy ----------------------------------------------------------------------

@pytest.mark.parametrize("value", [
    "1e-10000000",    # took 6.5 s and was stored
    "1e-999999999",   # froze the process
    "1e-5", "0", "1", "0.0", "1/1", "3/3", "2/1", "1/0", "-0.5", "-1/3", " 1/3", "0.1234567",
    "1234567/9999999", "٠.٥", "0x1", "nan", "inf", "", "9" * 100_000, 0, 1, 1.5, -0.25, True,
    None, [], {}, ["1/3"], float("nan"), float("inf"), 1e-5, 10**100,
])
def test_a_ratio_that_is_not_a_short_fraction_inside_0_1_is_refused(value):
    t0 = time.perf_counter()
    with pytest.raises(InvalidInput) as caught:
        rules.parse_money_policy({"no_show_wait_ratio": value})
    assert time.perf_counter() - t0 < 0.1
    assert caught.value.details == {"field": "money_policy.no_show_wait_ratio"}


@pytest.mark.parametrize("wait,payable", [
    ("1/3", "2/3"), ("0.25", "0.5"), (".5", "0.75"), (0.25, 0.5), ("1/1000", "999/1000"),
    ("0.000001", "0.999999"),
])
def test_short_decimals_and_fractions_are_accepted(wait, payable):
    policy = rules.parse_money_policy({"no_show_wait_ratio": wait,
                                       "min_payable_ratio": payable})
    assert policy.no_show_wait_ratio == (wait if isinstance(wait, str) else repr(wait))
    assert policy.as_dict() == rules.parse_money_policy(policy.as_dict()).as_dict()


def test_the_api_refuses_huge_ratio_exponents_quickly_and_stores_nothing(coach):
    api = Api(token_for(coach))
    for value in ("1e-10000000", "1e-999999999"):
        t0 = time.perf_counter()
        r = api.post("/offers", {**OFFER, "money_policy": {"no_show_wait_ratio": value}})
        assert time.perf_counter() - t0 < 1
        _refused(r, "money_policy.no_show_wait_ratio")
    offer = make_offer(coach)
    r = api.patch(f"/offers/{offer.pk}", {"money_policy": {"min_payable_ratio": "1"}})
    _refused(r, "money_policy.min_payable_ratio")
    assert not Offer.objects.exclude(pk=offer.pk).exists()
    offer.refresh_from_db()
    assert offer.money_policy == {"no_show_wait_ratio": "1/3", "min_payable_ratio": "2/3"}


# --- access policy ---------------------------------------------------------------------

@pytest.mark.parametrize("key,value", [
    ("revoke_after_s", 1e30), ("revoke_after_s", 10**30), ("revoke_after_s", 30 * 86400 + 1),
    ("grant_before_s", -1), ("grant_before_s", 3600.0), ("grant_before_s", "3600"),
    ("grant_before_s", True), ("join_window_before_s", None), ("join_window_before_s", [1]),
    ("provision_before_s", 10**20), ("provision_before_s", float("inf")),
    ("reminders_before_s", [60] * 6), ("reminders_before_s", [10**30]),
    ("reminders_before_s", [1.5]), ("reminders_before_s", "60"), ("reminders_before_s", None),
    ("end_action", ["delete"]), ("end_action", "shred"), ("discord_mode", 1),
])
def test_an_access_duration_out_of_range_or_not_an_integer_is_refused(key, value):
    with pytest.raises(InvalidInput) as caught:
        rules.parse_access_policy({key: value})
    assert caught.value.details == {"field": f"access_policy.{key}"}


def test_access_durations_up_to_30_days_are_accepted():
    month = 30 * 86400
    policy = rules.parse_access_policy({
        "grant_before_s": month, "provision_before_s": month, "join_window_before_s": 0,
        "revoke_after_s": month, "reminders_before_s": [0, month, 60, 60, 3600]})
    assert policy.reminders_before_s == (month, 3600, 60, 0)
    assert rules.parse_access_policy(policy.as_dict()) == policy


@pytest.mark.parametrize("raw,field", [
    ('{"revoke_after_s": 1e30}', "access_policy.revoke_after_s"),
    ('{"revoke_after_s": 1e400}', "access_policy.revoke_after_s"),
    ('{"revoke_after_s": Infinity}', "access_policy.revoke_after_s"),
    ('{"grant_before_s": NaN}', "access_policy.grant_before_s"),
    ('{"reminders_before_s": [-Infinity]}', "access_policy.reminders_before_s"),
    ('"everything"', "access_policy"),
])
def test_the_api_answers_422_naming_the_field_for_overflowing_durations(coach, raw, field):
    api = Api(token_for(coach))
    body = json.dumps(OFFER)[:-1] + f', "access_policy": {raw}}}'
    r = api.post("/offers", raw=body)
    if field == "access_policy":  # not an object: the schema refuses it
        assert (r.status_code, r.json_body["code"]) == (422, "invalid_input")
    else:
        _refused(r, field)
    offer = make_offer(coach)
    r = api.call("PATCH", f"/offers/{offer.pk}", raw=f'{{"access_policy": {raw}}}')
    assert (r.status_code, r.json_body["code"]) == (422, "invalid_input")
    offer.refresh_from_db()
    assert offer.access_policy == rules.AccessPolicy().as_dict()


# --- the parsers on any JSON (values already stored elsewhere too) ---------------------

_SCALARS = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-10**40,
                                                                     max_value=10**40)
            | st.floats() | st.text(max_size=30)
            | st.sampled_from(["1/3", "0.5", "1e-999999999", "1/0", "Infinity", ""]))
_JSON = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=6)
                     | st.dictionaries(st.text(max_size=10), inner, max_size=6), max_leaves=20)
_ACCESS_KEYS = list(rules.AccessPolicy().as_dict())
_MONEY_KEYS = list(rules.MoneyPolicy().as_dict())


@settings(max_examples=400, deadline=200, suppress_health_check=[HealthCheck.too_slow])
@given(data=_JSON | st.dictionaries(st.sampled_from(_ACCESS_KEYS + _MONEY_KEYS), _JSON,
                                    max_size=8))
def test_parsers_raise_only_invalid_input_quickly_on_any_json(data):
    for parse in (rules.parse_access_policy, rules.parse_money_policy):
        try:
            policy = parse(data)
        except InvalidInput as exc:
            assert str(exc.details.get("field", "")).split(".")[0] in ("access_policy",
                                                                       "money_policy")
        else:
            assert parse(policy.as_dict()) == policy  # what it returns is valid again


@settings(max_examples=200, deadline=200)
@given(values=st.dictionaries(st.sampled_from(_ACCESS_KEYS), _SCALARS | st.lists(_SCALARS)))
def test_accepted_access_policies_keep_the_date_arithmetic_safe(values):
    from datetime import UTC, datetime

    from coachgate.access.rules import timeline

    try:
        policy = rules.parse_access_policy(values)
    except InvalidInput:
        return
    for year in (1900, 8999):  # kit.clock's range of instants
        start = datetime(year, 6, 1, tzinfo=UTC)
        assert timeline(start, start, policy)


# --- the service and the admin re-validate ---------------------------------------------

def test_the_service_refuses_what_the_api_refuses(coach):
    bad: list[tuple[dict[str, Any], str]] = [
        ({"money_policy": {"no_show_wait_ratio": "1e-10000000"}},
         "money_policy.no_show_wait_ratio"),
        ({"access_policy": {"revoke_after_s": 1e30}}, "access_policy.revoke_after_s"),
        ({"access_policy": ["not", "a", "dict"]}, "access_policy"),
        ({"slot_step_minutes": 1}, "slot_step_minutes"),
        ({"capacity": 10**9}, "capacity"),
        ({"capacity": True}, "capacity"),
        ({"price_minor": "5000"}, "price_minor"),
        ({"price_minor": 10**13}, "price_minor"),
        ({"horizon_days": 1.5}, "horizon_days"),
        ({"free_cancellation_hours": 10**6}, "free_cancellation_hours"),
        ({"session_type": "hologram"}, "session_type"),
        ({"intake_fields": [{"label": "Pick", "type": "choice", "choices": [10**5000 // 7]}]},
         "intake_fields[0].choices"),
        ({"intake_fields": [{"label": "x" * 201}]}, "intake_fields[0].label"),
        ({"intake_fields": "everything"}, "intake_fields"),
    ]
    offer = make_offer(coach)
    for change, field in bad:
        with pytest.raises(InvalidInput) as caught:
            services.create_offer(coach, {**OFFER, **change})
        assert caught.value.details.get("field") == field, (change, caught.value.details)
        with pytest.raises(InvalidInput):
            services.update_offer(coach, offer.pk, change)
    assert Offer.objects.count() == 1
    with pytest.raises(InvalidInput) as caught:
        services.update_coach_profile(coach, {"seat_capacity": 10**30})
    assert caught.value.details == {"field": "seat_capacity"}


def test_the_admin_offer_form_refuses_unbounded_policies(admin, coach):
    offer = make_offer(coach)
    model_admin = site._registry[Offer]
    request = RequestFactory().post("/admin/catalog/offer/")
    request.user = admin
    form_class = model_admin.get_form(request, offer)
    data = {k: v for k, v in model_to_dict(offer).items()
            if v is not None and k not in ("intake_fields", "access_policy", "money_policy")}
    data["intake_fields-0-label"] = ""  # the admin edits questions and policies as inputs
    for field, key, value in (("access_policy", "revoke_after_s", "1e30"),
                              ("money_policy", "no_show_wait_ratio", "1e-999999999"),
                              ("slot_step_minutes", "", "1")):
        name = f"{field}-{key}" if key else field
        form = form_class(data={**data, name: value}, instance=offer)
        assert not form.is_valid()
        assert field in form.errors, form.errors
    form = form_class(data={**data, "access_policy-revoke_after_s": "60"}, instance=offer)
    assert form.is_valid(), form.errors
    form.save()
    offer.refresh_from_db()
    assert offer.access_policy == {**rules.AccessPolicy().as_dict(), "revoke_after_s": 60}


def test_intake_number_answers_are_finite_and_bounded(coach):
    offer = make_offer(coach, intake_fields=[{"label": "Age", "type": "number"}])
    start = list_slots(None, offer)[0].start.isoformat()
    api = Api(token_for(make_student()))
    for raw in ("Infinity", "NaN", "-Infinity", "1e400", str(10**16)):
        body = (f'{{"offer_id": {offer.pk}, "start": "{start}", '
                f'"intake": {{"age": {raw}}}}}')
        r = api.post("/bookings", raw=body)
        assert (r.status_code, r.json_body["code"]) == (422, "invalid_input"), (raw, r.json_body)
        assert "age" in r.json_body["details"]["fields"]
    r = api.post("/bookings", {"offer_id": offer.pk, "start": start, "intake": {"age": 41.5}})
    assert r.status_code == 201, r.json_body
    assert math.isclose(r.json_body["bookings"][0]["intake_answers"]["age"], 41.5)


# --- item 6: session_type default ------------------------------------------------------

def test_an_offer_created_without_session_type_is_a_video_offer(coach):
    r = Api(token_for(coach)).post("/offers", OFFER)
    assert r.status_code == 201, r.json_body
    assert r.json_body["session_type"] == "video"
    assert Offer.objects.get(pk=r.json_body["id"]).session_type == "video"
    offer = services.create_offer(coach, dict(OFFER))
    offer.refresh_from_db()
    assert offer.session_type == "video"


# --- other numbers in catalog routes ---------------------------------------------------

@pytest.mark.parametrize("path", [
    "/offers?coach_id=99999999999999999999999", "/offers?coach_id=-99999999999999999999999",
    "/offers/99999999999999999999999", "/offers/99999999999999999999999/slots",
    "/coaches/99999999999999999999999",
])
def test_ids_past_a_database_integer_find_nothing(db, path):
    r = Api().get(path)
    assert r.status_code in (200, 404), r.json_body
    assert r.json_body == [] or r.json_body["code"] == "not_found"

"""The money and outcome rules: SPEC.md's tables, and invariants over random inputs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coachgate.billing import rules
from coachgate.billing.rules import Evidence, Outcome, Percentages, Thresholds
from coachgate.kit.money import format_amount

PCT = Percentages()  # SPEC's defaults: fee 10 %, no-show charge 50 %


@pytest.mark.parametrize(("duration", "wait", "payable"), [
    (60, 20, 40), (90, 30, 60), (100, 33, 66), (30, 10, 20), (45, 15, 30), (1, 0, 0),
    (1440, 480, 960),
])
def test_default_thirds(duration: int, wait: int, payable: int) -> None:
    t = rules.thresholds(duration, "1/3", "2/3")
    assert (t.no_show_wait_minutes, t.min_payable_minutes) == (wait, payable)


def test_ratios_are_per_offer_and_exact() -> None:
    # 004's "0.33 / 0.66" reading is still expressible per offer: 90 → 29/59.
    assert rules.thresholds(90, "0.33", "0.66") == Thresholds(29, 59)
    # As floats 0.29 × 100 = 28.999999999999996 and 0.57 × 100 = 56.99999999999999, whose
    # floors are 28 and 56. Exact arithmetic gives 29 and 57.
    assert rules.ratio_minutes(100, "0.29") == 29
    assert rules.ratio_minutes(100, "0.57") == 57


@pytest.mark.parametrize(("outcome", "charge", "payout", "fee"), [
    (Outcome.COMPLETED, 5000, 4500, 500),
    (Outcome.NO_SHOW_STUDENT, 2500, 2250, 250),
    (Outcome.LATE_CANCELLATION, 2500, 2250, 250),  # settled as a student no-show
    (Outcome.EARLY_END_SHORT, 0, 0, 0),
    (Outcome.NO_SHOW_COACH, 0, 0, 0),
    (Outcome.CANCELLED_BY_COACH, 0, 0, 0),
    (Outcome.FREE_CANCELLATION, 0, 0, 0),
])
def test_spec_settlement_table(outcome: Outcome, charge: int, payout: int, fee: int) -> None:
    s = rules.settle(outcome, 5000, PCT)
    assert (s.charge, s.payout, s.fee) == (charge, payout, fee)


@pytest.mark.parametrize(("price", "outcome", "charge", "fee", "payout"), [
    (1, Outcome.NO_SHOW_STUDENT, 1, 0, 1),  # 0.5 → 1 (half up); fee 0.1 → 0
    (3, Outcome.NO_SHOW_STUDENT, 2, 0, 2),  # 1.5 → 2; fee 0.2 → 0
    (105, Outcome.COMPLETED, 105, 11, 94),  # fee 10.5 → 11
    (104, Outcome.COMPLETED, 104, 10, 94),  # fee 10.4 → 10
    (15, Outcome.COMPLETED, 15, 2, 13),  # fee 1.5 → 2
    (9999, Outcome.NO_SHOW_STUDENT, 5000, 500, 4500),  # 4999.5 → 5000
])
def test_half_up_rounding_by_hand(price: int, outcome: Outcome, charge: int, fee: int,
                                  payout: int) -> None:
    s = rules.settle(outcome, price, PCT)
    assert (s.charge, s.fee, s.payout) == (charge, fee, payout)


@pytest.mark.parametrize(("currency", "price", "charged"), [
    ("JPY", 10001, "5001 JPY"),  # no minor digits: 5000.5 yen → 5001 yen
    ("USD", 10001, "50.01 USD"),  # 50.005 dollars → 50.01
    ("KWD", 10001, "5.001 KWD"),  # three digits: 5.0005 dinars → 5.001
])
def test_currencies_round_to_their_minor_unit(currency: str, price: int, charged: str) -> None:
    s = rules.settle(Outcome.NO_SHOW_STUDENT, price, PCT)
    assert format_amount(s.charge, currency) == charged
    assert s.charge == s.payout + s.fee


percent = st.fractions(min_value=0, max_value=100, max_denominator=1000)


@given(price=st.integers(min_value=0, max_value=10**13), charge_pct=percent, fee_pct=percent)
def test_split_invariants(price: int, charge_pct: Fraction, fee_pct: Fraction) -> None:
    s = rules.split(price, charge_pct, fee_pct)
    assert s.charge == s.payout + s.fee
    assert 0 <= s.fee <= s.charge <= price and s.payout >= 0
    exact_charge = Fraction(price) * charge_pct / 100
    assert abs(s.charge - exact_charge) <= Fraction(1, 2)
    # half-up: a tie goes up, never down
    if exact_charge - int(exact_charge) == Fraction(1, 2):
        assert s.charge == int(exact_charge) + 1
    exact_fee = Fraction(s.charge) * fee_pct / 100
    assert abs(s.fee - exact_fee) <= Fraction(1, 2)


@given(price=st.integers(min_value=0, max_value=10**12),
       currency=st.sampled_from(["JPY", "USD", "EUR", "KWD", "BHD"]),
       fee=st.decimals(min_value=0, max_value=100, places=2),
       no_show=st.decimals(min_value=0, max_value=100, places=2),
       outcome=st.sampled_from(list(Outcome)))
def test_settle_invariants_over_settings_and_currencies(
        price: int, currency: str, fee: Decimal, no_show: Decimal, outcome: Outcome) -> None:
    pct = Percentages(fee=rules.exact(str(fee)), no_show_charge=rules.exact(str(no_show)))
    s = rules.settle(outcome, price, pct)
    assert s.charge == s.payout + s.fee and s.uncharged == price - s.charge >= 0
    if outcome == Outcome.COMPLETED:
        assert s.charge == price
    elif outcome in (Outcome.NO_SHOW_STUDENT, Outcome.LATE_CANCELLATION):
        assert s.charge <= price
    else:
        assert (s.charge, s.fee, s.payout) == (0, 0, 0)
    # Amounts are integers in the minor unit whatever the currency: formatting adds digits
    # and never rounds.
    assert format_amount(s.charge, currency).replace(".", "").split()[0].lstrip("0") == (
        str(s.charge) if s.charge else "")


@given(price=st.integers(min_value=0, max_value=10**12))
def test_no_show_never_costs_more_than_completion(price: int) -> None:
    assert rules.settle(Outcome.NO_SHOW_STUDENT, price, PCT).charge <= rules.settle(
        Outcome.COMPLETED, price, PCT).charge


@given(duration=st.integers(min_value=1, max_value=1440),
       num=st.integers(min_value=0, max_value=1000), den=st.integers(min_value=1, max_value=1000))
def test_ratio_minutes_is_the_exact_floor(duration: int, num: int, den: int) -> None:
    ratio = f"{num}/{den}"
    m = rules.ratio_minutes(duration, ratio)
    assert m * den <= duration * num < (m + 1) * den


@given(price=st.integers(min_value=0, max_value=10**12), size=st.integers(min_value=1,
                                                                            max_value=500))
def test_pack_values_sum_to_the_price(price: int, size: int) -> None:
    values = rules.pack_session_values(price, size)
    assert len(values) == size and sum(values) == price
    assert max(values) - min(values) <= 1


def test_percentages_are_checked() -> None:
    with pytest.raises(ValueError, match="between 0 and 100"):
        Percentages(fee=Fraction(101))
    assert rules.exact("12.5") == Fraction(25, 2) and rules.exact("1/3") == Fraction(1, 3)


T0 = datetime(2031, 3, 3, 10, 0, tzinfo=UTC)
END = T0 + timedelta(hours=1)
T60 = rules.thresholds(60, "1/3", "2/3")
M = timedelta(minutes=1)


@pytest.mark.parametrize(("evidence", "outcome"), [
    (Evidence(), Outcome.COMPLETED),  # no evidence: the scheduled end is reached
    (Evidence(T0, None), Outcome.COMPLETED),  # still running at the end
    (Evidence(T0, END), Outcome.COMPLETED),
    (Evidence(T0, END + 5 * M), Outcome.COMPLETED),
    (Evidence(T0, T0 + 40 * M), Outcome.COMPLETED),  # exactly the minimum payable
    (Evidence(T0, T0 + 39 * M), Outcome.EARLY_END_SHORT),
    (Evidence(None, T0 + 39 * M), Outcome.EARLY_END_SHORT),  # start unknown: the schedule's
    (Evidence(T0 + 15 * M, T0 + 50 * M), Outcome.EARLY_END_SHORT),  # lasted 35 minutes
    (Evidence(T0 + 15 * M, T0 + 55 * M), Outcome.COMPLETED),  # lasted 40 minutes
    (Evidence(T0 - 5 * M, T0 + 39 * M), Outcome.EARLY_END_SHORT),  # early minutes not counted
])
def test_end_outcome(evidence: Evidence, outcome: Outcome) -> None:
    assert rules.end_outcome(starts_at=T0, ends_at=END, t=T60, evidence=evidence) == outcome


def test_no_show_wait_and_authorisation_times() -> None:
    assert rules.no_show_allowed_from(T0, T60) == T0 + 20 * M
    day = timedelta(hours=24)
    assert rules.authorize_at(booked_at=T0 - 10 * day, starts_at=T0, before=day) == T0 - day
    assert rules.authorize_at(booked_at=T0 - 2 * M, starts_at=T0, before=day) == T0 - 2 * M


# --- the gateway's quantum (docs/billing.md, "Amounts a gateway can move") ---------------


@pytest.mark.parametrize(("price", "quantum", "outcome", "charge", "fee", "payout"), [
    # KWD at Stripe (10 fils): 5.010 KWD no-show → 2.505 → 2.510 (half up); fee 0.251 → 0.250
    (5010, 10, Outcome.NO_SHOW_STUDENT, 2510, 250, 2260),
    (5010, 10, Outcome.COMPLETED, 5010, 500, 4510),  # fee 0.501 → 0.500
    (5050, 10, Outcome.COMPLETED, 5050, 510, 4540),  # fee 0.505 → 0.510 (half up)
    # MGA at Stripe (whole ariary = 100 ISO units): 15 ariary no-show → 7.5 → 8
    (1500, 100, Outcome.NO_SHOW_STUDENT, 800, 100, 700),
    (1500, 1, Outcome.NO_SHOW_STUDENT, 750, 75, 675),  # the same price offline
])
def test_settlement_rounds_to_the_gateways_quantum_by_hand(
        price: int, quantum: int, outcome: Outcome, charge: int, fee: int, payout: int) -> None:
    s = rules.settle(outcome, price, PCT, quantum)
    assert (s.charge, s.fee, s.payout) == (charge, fee, payout)


def test_a_price_off_the_quantum_is_never_charged_more_than_its_price() -> None:
    # Only a row older than a gateway switch has one (offers refuse such prices).
    s = rules.settle(Outcome.COMPLETED, 12345, PCT, 10)
    assert (s.charge, s.uncharged) == (12340, 5)


quantum = st.sampled_from([1, 10, 100])


@given(units=st.integers(min_value=0, max_value=10**11), q=quantum, fee=percent,
       no_show=percent, outcome=st.sampled_from(list(Outcome)))
def test_ledger_amounts_are_always_exactly_chargeable(
        units: int, q: int, fee: Fraction, no_show: Fraction, outcome: Outcome) -> None:
    """Whatever the settings: a price the gateway can charge settles into amounts it can
    charge (and give back), each within half a quantum of the exact share."""
    price = units * q
    s = rules.settle(outcome, price, Percentages(fee=fee, no_show_charge=no_show), q)
    for amount in (s.charge, s.fee, s.payout, s.uncharged):
        assert amount % q == 0 and amount >= 0
    assert s.charge == s.payout + s.fee and s.charge + s.uncharged == price
    exact_charge = Fraction(price) * rules.charge_percent(outcome, Percentages(
        fee=fee, no_show_charge=no_show)) / 100
    assert abs(s.charge - exact_charge) <= Fraction(q, 2)
    assert abs(s.fee - Fraction(s.charge) * fee / 100) <= Fraction(q, 2)


@given(units=st.integers(min_value=0, max_value=10**11), q=quantum,
       size=st.integers(min_value=1, max_value=500))
def test_pack_values_are_on_the_quantum(units: int, q: int, size: int) -> None:
    values = rules.pack_session_values(units * q, size, q)
    assert len(values) == size and sum(values) == units * q
    assert all(v % q == 0 for v in values) and max(values) - min(values) <= q
    for v in values:  # and every settlement of a session is chargeable too
        s = rules.settle(Outcome.NO_SHOW_STUDENT, v, PCT, q)
        assert s.charge % q == 0 and s.uncharged % q == 0


def test_pack_values_keep_an_off_quantum_remainder_on_the_last_session() -> None:
    assert rules.pack_session_values(10005, 3, 10) == [3330, 3330, 3345]

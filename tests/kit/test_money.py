"""kit.money: ISO 4217 minor units from the iso4217 package, and what a gateway can move."""

from __future__ import annotations

import iso4217
import pytest
from hypothesis import given
from hypothesis import strategies as st

from coachgate.kit import money


@pytest.mark.parametrize("code", ["ANG", "BGN", "ZWL", "HRK", "SLL", "CUC"])
def test_withdrawn_codes_are_refused(code: str) -> None:
    assert not money.is_currency(code)
    with pytest.raises(ValueError, match="unknown currency"):
        money.minor_digits(code)


@pytest.mark.parametrize(("code", "digits"), [("XCG", 2), ("ZWG", 2), ("VED", 2)])
def test_new_codes_are_accepted(code: str, digits: int) -> None:
    assert money.is_currency(code) and money.minor_digits(code) == digits


@pytest.mark.parametrize("code", [
    "XAU", "XAG", "XPT", "XPD",  # metals
    "XTS", "XXX",  # testing, "no currency"
    "XDR", "XBA", "XSU", "XUA",  # units without a minor unit
    "BOV", "CHE", "CHW", "CLF", "COU", "MXV", "USN", "UYI",  # ISO's fund codes
    "XAD", "UYW",  # units of account
])
def test_funds_metals_and_testing_codes_are_refused(code: str) -> None:
    assert not money.is_currency(code)


@pytest.mark.parametrize(("code", "digits"), [
    ("USD", 2), ("EUR", 2), ("JPY", 0), ("KRW", 0), ("ISK", 0), ("UGX", 0), ("MGA", 2),
    ("KWD", 3), ("BHD", 3), ("IQD", 3), ("LYD", 3), ("VND", 0), ("CLP", 0)])
def test_minor_digits(code: str, digits: int) -> None:
    assert money.minor_digits(code) == digits


def test_every_accepted_code_is_isos_with_isos_digits() -> None:
    for code in money.CURRENCIES:
        assert money.minor_digits(code) == iso4217.Currency(code).exponent
    assert len(money.CURRENCIES) > 150


def test_formatting() -> None:
    assert money.format_amount(1999, "USD") == "19.99 USD"
    assert money.format_amount(500, "JPY") == "500 JPY"
    assert money.format_amount(1500, "KWD") == "1.500 KWD"


@pytest.mark.parametrize(("code", "quantum"), [
    ("USD", 1), ("EUR", 1), ("HUF", 1), ("TWD", 1), ("JPY", 1), ("ISK", 1), ("UGX", 1),
    ("KWD", 10), ("BHD", 10), ("JOD", 10), ("OMR", 10), ("TND", 10), ("MGA", 100)])
def test_stripe_quantum(code: str, quantum: int) -> None:
    assert money.chargeable_quantum(code, "stripe") == quantum
    assert money.chargeable_quantum(code, "offline") == 1


def test_stripe_cannot_charge_other_three_decimal_currencies() -> None:
    assert money.chargeable_quantum("IQD", "stripe") is None
    assert money.quantum("IQD", "stripe") == 1
    assert money.price_problem(1000, "IQD", "stripe") == (
        "currency", "The stripe payment gateway cannot charge IQD.")
    assert money.price_problem(1000, "IQD", "offline") is None


@pytest.mark.parametrize(("amount", "code", "sent"), [
    (5000, "USD", 5000), (5000, "JPY", 5000), (1234, "ISK", 123400), (5000, "UGX", 500000),
    (50000, "MGA", 500), (12340, "KWD", 12340), (100050, "HUF", 100050)])
def test_to_and_from_stripe(amount: int, code: str, sent: int) -> None:
    assert money.to_gateway(amount, code, "stripe") == sent
    assert money.from_gateway(sent, code, "stripe") == amount
    assert money.to_gateway(amount, code, "offline") == amount


@pytest.mark.parametrize(("amount", "code"), [(12345, "KWD"), (12345, "MGA"), (5, "BHD"),
                                              (1000, "IQD")])
def test_amounts_stripe_cannot_move_exactly_are_refused_not_rounded(amount: int, code: str
                                                                    ) -> None:
    with pytest.raises(money.NotChargeable):
        money.to_gateway(amount, code, "stripe")


def test_amounts_from_stripe_that_are_not_whole_iso_units_are_refused() -> None:
    with pytest.raises(money.NotChargeable):
        money.from_gateway(123450, "ISK", "stripe")  # 1234.50 kr: no ISO unit for it


def test_price_problems_name_the_field() -> None:
    assert money.price_problem(12340, "KWD", "stripe") is None
    field, why = money.price_problem(12345, "KWD", "stripe") or ("", "")
    assert field == "price_minor" and "multiple of 10" in why and "0.010 KWD" in why
    assert money.price_problem(12345, "KWD", "offline") is None
    assert money.price_problem(0, "IQD", "stripe") is None  # free: never charged
    assert money.price_problem(100, "BGN", "offline") == (
        "currency", "'BGN' is not an active ISO 4217 currency.")


@given(code=st.sampled_from(sorted(money.CURRENCIES)), units=st.integers(0, 10**9))
def test_every_multiple_of_the_quantum_converts_exactly_both_ways(code: str, units: int
                                                                 ) -> None:
    q = money.chargeable_quantum(code, "stripe")
    if q is None:
        return
    amount = units * q
    sent = money.to_gateway(amount, code, "stripe")
    assert money.from_gateway(sent, code, "stripe") == amount
    step = money.STRIPE_UNITS.get(code, money.GatewayUnit(0)).step
    assert sent % step == 0
    if q > 1:  # and one minor unit more is refused
        with pytest.raises(money.NotChargeable):
            money.to_gateway(amount + 1, code, "stripe")

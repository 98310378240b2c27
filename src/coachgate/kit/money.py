"""Money is an integer count of the currency's ISO 4217 minor unit, never a float.

Which codes exist and how many minor digits each has come from the ``iso4217`` package,
which ships the ISO 4217 maintenance agency's current list ("list one") and is released
again whenever the agency publishes a change (XCG replacing ANG, ZWG replacing ZWL, BGN
withdrawn with Bulgaria's euro): a dependency upgrade, not a hand edit here, brings them.

A gateway's amount unit is not always ISO's (Stripe counts ISK and UGX in hundredths and
MGA in whole ariary; it wants the last of the three digits of BHD/JOD/KWD/OMR/TND to be
0). ``quantum(currency, gateway)`` is the smallest amount, in ISO minor units, that a
gateway can move exactly; ``to_gateway``/``from_gateway`` convert exactly or refuse. The
knowledge lives here, at the bottom of the dependency graph, because the catalog (which
may import only kit) refuses offer prices the configured gateway cannot charge.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from functools import cache

import iso4217

from coachgate.kit.config import conf

# Units of account that ISO lists with minor digits, and without the fund flag, yet that
# nobody pays a coaching session in: the Arab Monetary Fund's accounting dinar and
# Uruguay's wage-indexed unit.
_UNITS_OF_ACCOUNT = frozenset({"XAD", "UYW"})


def _fund_codes() -> frozenset[str]:
    """Codes whose name carries ISO's IsFund flag (BOV, CHE, CHW, CLF, COU, MXV, USN,
    UYI): settlement and index units beside a real currency, not money a card pays in."""
    funds: set[str] = set()
    for entry in iso4217.raw_xml.findall("CcyTbl/CcyNtry"):
        name, code = entry.find("CcyNm"), entry.find("Ccy")
        if name is not None and code is not None and code.text \
                and name.get("IsFund") == "true":
            funds.add(code.text.strip())
    return frozenset(funds)


def _accepted() -> dict[str, int]:
    """The codes coachgate accepts, with their ISO minor digits.

    Accepted: every active ISO 4217 currency with a defined minor unit. Not accepted:
    codes whose minor unit ISO gives as "N.A." (gold XAU, silver XAG, platinum, palladium,
    the bond-market units XBA-XBD, SDR XDR, Sucre XSU, XUA, the testing code XTS and
    "no currency" XXX), the fund codes (``_fund_codes``) and the units of account above.
    Withdrawn codes (ANG, BGN, HRK, SLL, ZWL, ...) are not on ISO's current list at all.
    """
    funds = _fund_codes()
    found: dict[str, int] = {}
    for currency in iso4217.Currency:
        digits = currency.exponent
        if digits is None or currency.code in funds or currency.code in _UNITS_OF_ACCOUNT:
            continue
        found[currency.code] = digits
    return found


_DIGITS: dict[str, int] = _accepted()
CURRENCIES: frozenset[str] = frozenset(_DIGITS)


def is_currency(code: str) -> bool:
    return code in CURRENCIES


def minor_digits(currency: str) -> int:
    try:
        return _DIGITS[currency]
    except KeyError:
        raise ValueError(f"unknown currency {currency!r}") from None


def format_amount(amount_minor: int, currency: str) -> str:
    """1999 USD -> '19.99 USD'; 500 JPY -> '500 JPY'; 1500 KWD -> '1.500 KWD'."""
    digits = minor_digits(currency)
    value = Decimal(amount_minor).scaleb(-digits)
    return f"{value:.{digits}f} {currency}"


# --- what a gateway can charge ----------------------------------------------------------


@dataclass(frozen=True)
class GatewayUnit:
    """How a gateway counts one currency: its integers count 10^-``digits`` of the major
    unit, and must be multiples of ``step``."""

    digits: int
    step: int = 1


# Stripe (https://docs.stripe.com/currencies), where it differs from "ISO's digits, any
# integer". Zero-decimal currencies: whole units (ISO agrees except for MGA, whose ISO
# minor unit is 1/100 ariary). Special cases: ISK and UGX became zero-decimal, but Stripe
# keeps them two-decimal for backwards compatibility, amounts divisible by 100 ("Invalid
# amount. Currency ISK has become effectively zero-decimal ..."). Three-decimal
# currencies: the last digit must be 0 (5.124 KWD must go as 5120 or 5130). HUF and TWD
# are zero-decimal at Stripe only for payouts, which coachgate does not make through
# Stripe; charges take two decimals, as ISO does.
_STRIPE_ZERO_DECIMAL = ("BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF",
                        "VND", "VUV", "XAF", "XOF", "XPF")
_STRIPE_THREE_DECIMAL = ("BHD", "JOD", "KWD", "OMR", "TND")
STRIPE_UNITS: dict[str, GatewayUnit] = {
    **{c: GatewayUnit(0) for c in _STRIPE_ZERO_DECIMAL},
    **{c: GatewayUnit(3, 10) for c in _STRIPE_THREE_DECIMAL},
    "ISK": GatewayUnit(2, 100),
    "UGX": GatewayUnit(2, 100),
}




def configured_gateway() -> str:
    """The platform's payment gateway (COACHGATE["PAYMENT_GATEWAY"], default offline)."""

    return conf().PAYMENT_GATEWAY


def gateway_unit(currency: str, gateway: str | None = None) -> GatewayUnit | None:
    """How ``gateway`` (default: the configured one) counts ``currency``; None when it
    cannot charge it at all."""
    gateway = gateway or configured_gateway()
    digits = minor_digits(currency)
    if gateway == "offline":  # records the ledger's amounts as they are
        return GatewayUnit(digits)
    if gateway == "stripe":
        unit = STRIPE_UNITS.get(currency)
        if unit is not None:
            return unit
        # Stripe charges no other currency with more than two ISO digits (IQD, LYD).
        return GatewayUnit(digits) if digits <= 2 else None
    raise ValueError(f"unknown payment gateway {gateway!r}")


def _scale(currency: str, unit: GatewayUnit) -> Fraction:
    """Gateway amount = ISO amount × this."""
    return Fraction(10) ** (unit.digits - minor_digits(currency))


@cache
def _quantum(currency: str, gateway: str) -> int | None:
    unit = gateway_unit(currency, gateway)
    if unit is None:
        return None
    # The smallest ISO amount a with a × scale an integer multiple of step.
    return (_scale(currency, unit) / unit.step).denominator


def chargeable_quantum(currency: str, gateway: str | None = None) -> int | None:
    """The smallest amount in ISO minor units that ``gateway`` moves exactly (every amount
    it moves is a multiple of it): USD 1, KWD 10 at Stripe, MGA 100 at Stripe. None when
    the gateway cannot charge the currency at all."""
    return _quantum(currency, gateway or configured_gateway())


def quantum(currency: str, gateway: str | None = None) -> int:
    """``chargeable_quantum``, 1 for a currency the gateway cannot charge (its payment
    fails at the gateway, visibly; settlement still records the ledger)."""
    return chargeable_quantum(currency, gateway) or 1


class NotChargeable(ValueError):
    """An amount the gateway cannot move exactly (or a currency it cannot charge)."""


def to_gateway(amount_minor: int, currency: str, gateway: str) -> int:
    """ISO minor units -> the gateway's integer, exactly: 1234 ISK -> 123400 at Stripe;
    50000 MGA (500.00 ariary) -> 500. Raises NotChargeable instead of rounding."""
    unit = gateway_unit(currency, gateway)
    if unit is None:
        raise NotChargeable(f"{gateway} cannot charge {currency}")
    value = amount_minor * _scale(currency, unit)
    if value.denominator != 1 or value.numerator % unit.step:
        raise NotChargeable(
            f"{format_amount(amount_minor, currency)} is not a multiple of "
            f"{format_amount(_quantum(currency, gateway) or 1, currency)}, the smallest "
            f"amount {gateway} charges in {currency}")
    return value.numerator


def from_gateway(amount: int, currency: str, gateway: str) -> int:
    """The gateway's integer -> ISO minor units, exactly (raises NotChargeable when the
    gateway's amount has a fraction of the ISO minor unit)."""
    unit = gateway_unit(currency, gateway)
    if unit is None:
        raise NotChargeable(f"{gateway} cannot charge {currency}")
    value = amount / _scale(currency, unit)
    if value.denominator != 1:
        raise NotChargeable(f"{amount} from {gateway} is a fraction of a {currency} minor "
                            "unit")
    return value.numerator


def price_problem(price_minor: int, currency: str, gateway: str | None = None
                  ) -> tuple[str, str] | None:
    """(field, why) when ``gateway`` (default: the configured one) cannot charge this price
    exactly, else None. A price must be chargeable whole; what settlement takes of it (a
    no-show's share, the fee) is rounded to the same quantum by billing's rules. A free
    offer never reaches a gateway."""
    if not is_currency(currency):  # e.g. an offer stored before its code was withdrawn
        return "currency", f"'{currency}' is not an active ISO 4217 currency."
    if price_minor == 0:
        return None
    gateway = gateway or configured_gateway()
    q = chargeable_quantum(currency, gateway)
    if q is None:
        return "currency", f"The {gateway} payment gateway cannot charge {currency}."
    if price_minor % q:
        return "price_minor", (
            f"The {gateway} payment gateway charges {currency} in steps of "
            f"{format_amount(q, currency)}: {format_amount(price_minor, currency)} cannot be "
            f"charged exactly (price_minor must be a multiple of {q}).")
    return None

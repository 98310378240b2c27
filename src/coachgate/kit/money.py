"""Money is an integer count of the currency's minor unit, never a float."""

from __future__ import annotations

from decimal import Decimal

# ISO 4217 minor-unit exponents that differ from the usual 2.
_ZERO = {"BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX",
         "UYI", "VND", "VUV", "XAF", "XOF", "XPF"}
_THREE = {"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"}
_FOUR = {"CLF", "UYW"}
# The active ISO 4217 codes with two minor digits that coachgate accepts.
_TWO = {
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
    "BGN", "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD", "CDF", "CHF",
    "CNY", "COP", "CRC", "CUP", "CVE", "CZK", "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR",
    "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF",
    "IDR", "ILS", "INR", "IRR", "JMD", "KES", "KGS", "KHR", "KPW", "KYD", "KZT", "LAK", "LBP",
    "LKR", "LRD", "LSL", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR",
    "MWK", "MXN", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "PAB", "PEN", "PGK",
    "PHP", "PKR", "PLN", "QAR", "RON", "RSD", "RUB", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD",
    "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS", "TMT", "TOP",
    "TRY", "TTD", "TWD", "TZS", "UAH", "USD", "UYU", "UZS", "VES", "WST", "XCD", "YER", "ZAR",
    "ZMW", "ZWL",
}

CURRENCIES: frozenset[str] = frozenset(_ZERO | _TWO | _THREE | _FOUR)


def is_currency(code: str) -> bool:
    return code in CURRENCIES


def minor_digits(currency: str) -> int:
    if currency in _ZERO:
        return 0
    if currency in _THREE:
        return 3
    if currency in _FOUR:
        return 4
    if currency in _TWO:
        return 2
    raise ValueError(f"unknown currency {currency!r}")


def format_amount(amount_minor: int, currency: str) -> str:
    """1999 USD -> '19.99 USD'; 500 JPY -> '500 JPY'; 1500 KWD -> '1.500 KWD'."""
    digits = minor_digits(currency)
    value = Decimal(amount_minor).scaleb(-digits)
    return f"{value:.{digits}f} {currency}"

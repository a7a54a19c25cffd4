"""Money: ISO 4217 minor units, rounding once per invoice line, decimals on the wire.

Prices and quantities are exact `Decimal`s; an invoice line's amount becomes integer minor units of its
currency exactly once (`to_minor_units`, half away from zero), and totals are sums of those integers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from contextlib import AbstractContextManager
from decimal import (
    ROUND_HALF_EVEN,
    ROUND_HALF_UP,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    localcontext,
)
from types import MappingProxyType

from tollway.errors import ValidationError

# Every ISO 4217 list-one currency with a minor unit (codes whose minor unit is "N.A.", such as XAU or XDR,
# are not money an invoice can be in). Fund codes (BOV, CHE, CHW, CLF, COU, MXV, USN, UYI, UYW) included.
# ANG and BGN stay while their replacements (XCG, EUR) phase them in.
CURRENCY_EXPONENTS: Mapping[str, int] = MappingProxyType(
    {
        "AED": 2,
        "AFN": 2,
        "ALL": 2,
        "AMD": 2,
        "ANG": 2,
        "AOA": 2,
        "ARS": 2,
        "AUD": 2,
        "AWG": 2,
        "AZN": 2,
        "BAM": 2,
        "BBD": 2,
        "BDT": 2,
        "BGN": 2,
        "BHD": 3,
        "BIF": 0,
        "BMD": 2,
        "BND": 2,
        "BOB": 2,
        "BOV": 2,
        "BRL": 2,
        "BSD": 2,
        "BTN": 2,
        "BWP": 2,
        "BYN": 2,
        "BZD": 2,
        "CAD": 2,
        "CDF": 2,
        "CHE": 2,
        "CHF": 2,
        "CHW": 2,
        "CLF": 4,
        "CLP": 0,
        "CNY": 2,
        "COP": 2,
        "COU": 2,
        "CRC": 2,
        "CUC": 2,
        "CUP": 2,
        "CVE": 2,
        "CZK": 2,
        "DJF": 0,
        "DKK": 2,
        "DOP": 2,
        "DZD": 2,
        "EGP": 2,
        "ERN": 2,
        "ETB": 2,
        "EUR": 2,
        "FJD": 2,
        "FKP": 2,
        "GBP": 2,
        "GEL": 2,
        "GHS": 2,
        "GIP": 2,
        "GMD": 2,
        "GNF": 0,
        "GTQ": 2,
        "GYD": 2,
        "HKD": 2,
        "HNL": 2,
        "HTG": 2,
        "HUF": 2,
        "IDR": 2,
        "ILS": 2,
        "INR": 2,
        "IQD": 3,
        "IRR": 2,
        "ISK": 0,
        "JMD": 2,
        "JOD": 3,
        "JPY": 0,
        "KES": 2,
        "KGS": 2,
        "KHR": 2,
        "KMF": 0,
        "KPW": 2,
        "KRW": 0,
        "KWD": 3,
        "KYD": 2,
        "KZT": 2,
        "LAK": 2,
        "LBP": 2,
        "LKR": 2,
        "LRD": 2,
        "LSL": 2,
        "LYD": 3,
        "MAD": 2,
        "MDL": 2,
        "MGA": 2,
        "MKD": 2,
        "MMK": 2,
        "MNT": 2,
        "MOP": 2,
        "MRU": 2,
        "MUR": 2,
        "MVR": 2,
        "MWK": 2,
        "MXN": 2,
        "MXV": 2,
        "MYR": 2,
        "MZN": 2,
        "NAD": 2,
        "NGN": 2,
        "NIO": 2,
        "NOK": 2,
        "NPR": 2,
        "NZD": 2,
        "OMR": 3,
        "PAB": 2,
        "PEN": 2,
        "PGK": 2,
        "PHP": 2,
        "PKR": 2,
        "PLN": 2,
        "PYG": 0,
        "QAR": 2,
        "RON": 2,
        "RSD": 2,
        "RUB": 2,
        "RWF": 0,
        "SAR": 2,
        "SBD": 2,
        "SCR": 2,
        "SDG": 2,
        "SEK": 2,
        "SGD": 2,
        "SHP": 2,
        "SLE": 2,
        "SOS": 2,
        "SRD": 2,
        "SSP": 2,
        "STN": 2,
        "SVC": 2,
        "SYP": 2,
        "SZL": 2,
        "THB": 2,
        "TJS": 2,
        "TMT": 2,
        "TND": 3,
        "TOP": 2,
        "TRY": 2,
        "TTD": 2,
        "TWD": 2,
        "TZS": 2,
        "UAH": 2,
        "UGX": 0,
        "USD": 2,
        "USN": 2,
        "UYI": 0,
        "UYU": 2,
        "UYW": 4,
        "UZS": 2,
        "VED": 2,
        "VES": 2,
        "VND": 0,
        "VUV": 0,
        "WST": 2,
        "XAF": 0,
        "XCD": 2,
        "XCG": 2,
        "XOF": 0,
        "XPF": 0,
        "YER": 2,
        "ZAR": 2,
        "ZMW": 2,
        "ZWG": 2,
    }
)

_SYMBOLS: Mapping[str, str] = MappingProxyType({"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"})

# Largest magnitude `parse_decimal` accepts; far beyond any real price or quantity, small enough to stay exact.
MAX_MAGNITUDE = Decimal(10) ** 18
# A decimal string: optional sign, digits with an optional point, an optional short exponent. No spaces,
# underscores, NaN or Infinity (Decimal() itself accepts all of those).
_DECIMAL_TEXT = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,3})?", re.ASCII)  # 0-9 only: no "١٢٣"
_DECIMAL_HINT = 'must be a decimal string like "0.000003"'


# -- decimal contexts ------------------------------------------------------------------------------------
# Every decimal context money is computed in is made here. None rounds silently: a context either raises on an
# inexact result (`exact_arithmetic`) or is used only by a function that rounds once, on purpose, and says so.

# 100 significant digits hold any product of two 10^18-bounded, 12-place decimals and a 60-digit fraction.
EXACT_PRECISION = 100


def exact_arithmetic() -> AbstractContextManager[Context]:
    """A decimal context that never rounds silently: an inexact result raises `decimal.Inexact`."""
    return localcontext(
        Context(prec=EXACT_PRECISION, traps=[InvalidOperation, DivisionByZero, Overflow, Inexact], Emax=999_999)
    )


# Proration divides by a period's length in microseconds, and 49 x 10/30 does not terminate: such a quotient is
# rounded, once and on purpose, to 60 significant digits, half to even — some 40 digits below any currency's minor
# unit. A quotient that terminates (1/2, 3/10) is exact. The invoice line then rounds once to the minor unit
# (`to_minor_units`); these are the only roundings of money before it.
PRORATION_DIGITS = 60


def _proration(*, exact: bool = False) -> Context:
    traps = [InvalidOperation, DivisionByZero, Overflow, *([Inexact] if exact else [])]
    return Context(prec=PRORATION_DIGITS, rounding=ROUND_HALF_EVEN, traps=traps)


def share(part: int, whole: int) -> Decimal:
    """part / whole (e.g. microseconds of a period): exact when it terminates, else rounded once to
    `PRORATION_DIGITS` significant digits, half to even."""
    return _proration().divide(Decimal(part), Decimal(whole))


def prorate(amount: Decimal, part: int, whole: int) -> Decimal:
    """amount x part / whole, dividing last (60 x 10/30 is exactly 20, where multiplying by a rounded 1/3 is not):
    the product exact (an inexact one raises), the quotient rounded as `share` rounds."""
    product = _proration(exact=True).multiply(amount, Decimal(part))
    return _proration().divide(product, Decimal(whole))


def prorated_difference(minuend: Decimal, subtrahend: Decimal) -> Decimal:
    """minuend - subtrahend of two prorated amounts (what was charged for a period minus what was served), to
    `PRORATION_DIGITS` significant digits, half to even: exact unless their digits span more than that."""
    return _proration().subtract(minuend, subtrahend)


# For people only, never money: a share shown as a percentage.
_DISPLAY_DIGITS = 28  # Python's default precision, which the invoice document has always shown
_PERCENT_DIGITS = 40


def percent(fraction: Decimal) -> Decimal:
    """fraction x 100 for people: to 28 significant digits, half to even ("33.33333333333333333333333333")."""
    return Context(prec=_DISPLAY_DIGITS, rounding=ROUND_HALF_EVEN).multiply(fraction, Decimal(100))


def rounded_percent(fraction: Decimal, places: int = 2) -> Decimal:
    """fraction x 100 for people, to `places` decimal places: the product to 40 significant digits, then the
    places, each half to even ("33.33")."""
    ctx = Context(prec=_PERCENT_DIGITS, rounding=ROUND_HALF_EVEN)
    return ctx.quantize(ctx.multiply(fraction, Decimal(100)), Decimal(1).scaleb(-places))


def currency_exponent(code: str) -> int:
    """The ISO 4217 minor-unit exponent of `code` (USD 2, JPY 0, KWD 3). Codes are upper case."""
    exponent = CURRENCY_EXPONENTS.get(code) if isinstance(code, str) else None
    if exponent is None:
        raise ValidationError(f"unknown currency {code!r} (ISO 4217)", field="currency")
    return exponent


def to_minor_units(amount: Decimal, currency: str) -> int:
    """`amount` rounded once, half away from zero, to whole minor units (USD 12.345 -> 1235, -0.005 -> -1)."""
    exponent = currency_exponent(currency)
    if not amount.is_finite():
        raise ValueError(f"cannot round {amount} to minor units")
    # Enough digits that scaleb is exact and quantize rounds exactly once.
    ctx = Context(
        prec=max(60, len(amount.as_tuple().digits), amount.adjusted() + exponent) + 10, rounding=ROUND_HALF_UP
    )
    return int(amount.scaleb(exponent, context=ctx).quantize(Decimal(1), rounding=ROUND_HALF_UP, context=ctx))


def from_minor_units(minor: int, currency: str) -> Decimal:
    """Integer minor units as an exact amount (1235 USD -> Decimal("12.35"), 13 JPY -> Decimal("13"))."""
    exponent = currency_exponent(currency)
    sign, digits, _ = Decimal(minor).as_tuple()
    return Decimal((sign, digits, -exponent))


def _group(integer_digits: str) -> str:
    return f"{int(integer_digits):,}"


def format_money(minor: int, currency: str) -> str:
    """For people: "$1,234.56", "-€1.00", "¥1,235", "1,234.567 KWD"."""
    exponent = currency_exponent(currency)
    sign = "-" if minor < 0 else ""
    text = str(abs(minor)).rjust(exponent + 1, "0")
    whole, fraction = (text[:-exponent], text[-exponent:]) if exponent else (text, "")
    number = _group(whole) + (f".{fraction}" if fraction else "")
    symbol = _SYMBOLS.get(currency)
    if symbol is not None:
        return f"{sign}{symbol}{number}"
    return f"{sign}{number} {currency}"


def price_text(amount: Decimal, currency: str) -> str:
    """An exact amount (a unit price, a tier's amount) for people, unrounded: "$0.00001", "0.5 KWD"."""
    symbol = _SYMBOLS.get(currency)
    sign = "-" if amount < 0 else ""
    number = format_quantity(abs(amount))
    return f"{sign}{symbol}{number}" if symbol else f"{sign}{number} {currency}"


def format_quantity(value: Decimal) -> str:
    """A quantity for people, exact, with thousands separators: "1,234,567", "1,234.5", "0.000003"."""
    text = decimal_text(value)
    sign = "-" if text.startswith("-") else ""
    whole, _, fraction = text.lstrip("-").partition(".")
    return sign + _group(whole) + (f".{fraction}" if fraction else "")


def decimal_text(value: Decimal) -> str:
    """A decimal as plain text, exact: no exponent, no trailing zeros ("1200", "0.000003", "-1.5")."""
    if not value.is_finite():
        raise ValueError(f"{value} is not a finite decimal")
    text = str(value)  # exact; plain unless it has an exponent (4x faster than formatting; per call: costs)
    if "E" in text:
        text = format(value, "f")  # exact, no exponent
    if "." in text:  # only a fraction's trailing zeros to drop
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _places(value: Decimal) -> int:
    """Decimal places of `value` once trailing zeros are dropped."""
    text = decimal_text(value)
    return len(text.partition(".")[2])


def parse_decimal(value: object, *, field: str, max_places: int = 12, minimum: Decimal | None = Decimal(0)) -> Decimal:
    """A wire decimal (a string, an int or a Decimal; never a float or a bool) checked for range and scale.

    Raises ValidationError naming `field` for anything else, NaN/Infinity, more than `max_places` decimal
    places, a value below `minimum` (None: no minimum) or a magnitude above 10^18.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise ValidationError(f"{field} {_DECIMAL_HINT}, got {value!r}", field=field)
    if isinstance(value, str):
        if _DECIMAL_TEXT.fullmatch(value) is None:
            raise ValidationError(f"{field} {_DECIMAL_HINT}, got {value!r}", field=field)
        number = Decimal(value)
    elif isinstance(value, int):
        if abs(value) > MAX_MAGNITUDE:
            raise ValidationError(f"{field} is too large (at most 10^18 in magnitude)", field=field)
        number = Decimal(value)
    else:
        number = value
    if not number.is_finite():
        raise ValidationError(f"{field} {_DECIMAL_HINT}, got {value!r}", field=field)
    if number.copy_abs() > MAX_MAGNITUDE:
        raise ValidationError(f"{field} is too large (at most 10^18 in magnitude)", field=field)
    if _places(number) > max_places:
        raise ValidationError(f"{field} has more than {max_places} decimal places", field=field)
    if minimum is not None and number < minimum:
        raise ValidationError(f"{field} must be at least {decimal_text(minimum)}", field=field)
    return Decimal(0) if number.is_zero() else number  # no "-0" or "0E-7" downstream

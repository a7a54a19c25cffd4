from __future__ import annotations

from decimal import Context, Decimal, Inexact

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tollway.api.encoding import decimal_text as encoding_decimal_text
from tollway.errors import ValidationError
from tollway.money import (
    CURRENCY_EXPONENTS,
    PRORATION_DIGITS,
    currency_exponent,
    decimal_text,
    format_money,
    format_quantity,
    from_minor_units,
    parse_decimal,
    percent,
    prorate,
    prorated_difference,
    rounded_percent,
    share,
    to_minor_units,
)


@pytest.mark.parametrize(
    ("code", "exponent"),
    [
        ("USD", 2),
        ("EUR", 2),
        ("GBP", 2),
        ("JPY", 0),
        ("KRW", 0),
        ("ISK", 0),
        ("VND", 0),
        ("CLP", 0),
        ("KWD", 3),
        ("BHD", 3),
        ("OMR", 3),
        ("TND", 3),
        ("JOD", 3),
        ("IQD", 3),
        ("LYD", 3),
        ("CLF", 4),
        ("UYW", 4),
        ("CHF", 2),
        ("XOF", 0),
        ("XPF", 0),
    ],
)
def test_currency_exponents(code: str, exponent: int) -> None:
    assert currency_exponent(code) == exponent
    assert CURRENCY_EXPONENTS[code] == exponent


def test_currency_table_is_complete_and_immutable() -> None:
    assert len(CURRENCY_EXPONENTS) >= 150
    assert all(len(code) == 3 and code.isupper() and code.isalpha() for code in CURRENCY_EXPONENTS)
    assert set(CURRENCY_EXPONENTS.values()) == {0, 2, 3, 4}
    with pytest.raises(TypeError):
        CURRENCY_EXPONENTS["ABC"] = 2  # type: ignore[index]
    # Codes without a minor unit (gold, SDR) and withdrawn ones are not invoice currencies.
    for code in ("XAU", "XDR", "HRK", "VEF", "MRO"):
        assert code not in CURRENCY_EXPONENTS


@pytest.mark.parametrize("code", ["usd", "US", "USDD", "", "XXX", "ZZZ", " USD"])
def test_unknown_currency(code: str) -> None:
    with pytest.raises(ValidationError) as info:
        currency_exponent(code)
    assert info.value.field == "currency"
    assert "ISO 4217" in info.value.message
    assert repr(code) in info.value.message


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [
        ("12.345", "USD", 1235),
        ("12.344999999", "USD", 1234),
        ("-0.005", "USD", -1),
        ("-0.004", "USD", 0),
        ("0.005", "USD", 1),
        ("-12.345", "USD", -1235),
        ("12.5", "JPY", 13),
        ("-12.5", "JPY", -13),
        ("12.4999", "JPY", 12),
        ("1.0005", "KWD", 1001),
        ("1.0004", "KWD", 1000),
        ("0.00005", "CLF", 1),
        ("0", "USD", 0),
        ("1E+3", "USD", 100000),
        ("123456789012345678.995", "USD", 12345678901234567900),
        # 31 significant digits: the default 28-digit context would round before the minor unit.
        ("1234567890123456789012345678.905", "USD", 123456789012345678901234567891),
    ],
)
def test_to_minor_units_rounds_half_away_from_zero(amount: str, currency: str, minor: int) -> None:
    assert to_minor_units(Decimal(amount), currency) == minor


def test_sum_before_rounding() -> None:
    # 1000 amounts of 0.000006 USD: rounding each first gives 0 cents; summing first gives 0.006 -> 1 cent.
    amounts = [Decimal("0.000006")] * 1000
    assert sum(to_minor_units(a, "USD") for a in amounts) == 0
    assert to_minor_units(sum(amounts, Decimal(0)), "USD") == 1
    # 3 x 0.005 USD: each rounds up to 1 cent (3 cents), the sum 0.015 rounds to 2 cents.
    assert sum(to_minor_units(Decimal("0.005"), "USD") for _ in range(3)) == 3
    assert to_minor_units(Decimal("0.005") * 3, "USD") == 2


def test_to_minor_units_rejects_non_finite_and_unknown_currency() -> None:
    with pytest.raises(ValueError, match="minor units"):
        to_minor_units(Decimal("NaN"), "USD")
    with pytest.raises(ValidationError):
        to_minor_units(Decimal(1), "usd")


@pytest.mark.parametrize(
    ("minor", "currency", "amount"),
    [
        (1235, "USD", "12.35"),
        (-1, "USD", "-0.01"),
        (0, "USD", "0.00"),
        (13, "JPY", "13"),
        (1001, "KWD", "1.001"),
        (5, "CLF", "0.0005"),
    ],
)
def test_from_minor_units_is_exact(minor: int, currency: str, amount: str) -> None:
    value = from_minor_units(minor, currency)
    assert value == Decimal(amount)
    assert str(value) == amount  # carries exactly the currency's places


@settings(max_examples=200, deadline=None)
@given(minor=st.integers(min_value=-(10**30), max_value=10**30), currency=st.sampled_from(["USD", "JPY", "KWD", "CLF"]))
def test_minor_units_round_trip(minor: int, currency: str) -> None:
    assert to_minor_units(from_minor_units(minor, currency), currency) == minor


@settings(max_examples=200, deadline=None)
@given(cents_times_1000=st.integers(min_value=-(10**12), max_value=10**12))
def test_usd_rounding_matches_integer_oracle(cents_times_1000: int) -> None:
    # amount = cents_times_1000 / 100000 USD; oracle: round |x| half up in integer arithmetic, then re-sign.
    amount = Decimal(cents_times_1000).scaleb(-5)
    magnitude = abs(cents_times_1000)
    expected = (magnitude // 1000) + (1 if magnitude % 1000 >= 500 else 0)
    assert to_minor_units(amount, "USD") == (expected if cents_times_1000 >= 0 else -expected)


@pytest.mark.parametrize(
    ("minor", "currency", "text"),
    [
        (123456, "USD", "$1,234.56"),
        (-100, "USD", "-$1.00"),
        (5, "USD", "$0.05"),
        (0, "USD", "$0.00"),
        (123456789, "EUR", "€1,234,567.89"),
        (99, "GBP", "£0.99"),
        (1235, "JPY", "¥1,235"),
        (-1234567, "KWD", "-1,234.567 KWD"),
        (123456, "CHF", "1,234.56 CHF"),
        (1000, "KRW", "1,000 KRW"),
        (1, "CLF", "0.0001 CLF"),
    ],
)
def test_format_money(minor: int, currency: str, text: str) -> None:
    assert format_money(minor, currency) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("1234567", "1,234,567"),
        ("1234.5", "1,234.5"),
        ("1234.500", "1,234.5"),
        ("0.000003", "0.000003"),
        ("-9876543.21", "-9,876,543.21"),
        ("1E+6", "1,000,000"),
        ("0", "0"),
        ("999", "999"),
    ],
)
def test_format_quantity(value: str, text: str) -> None:
    assert format_quantity(Decimal(value)) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("1200", "1200"),
        ("1.2E+3", "1200"),
        ("0.000003", "0.000003"),
        ("3E-6", "0.000003"),
        ("1.50", "1.5"),
        ("-0.00", "0"),
        ("0E-12", "0"),
        ("-1.5", "-1.5"),
        ("100.000", "100"),
        # more digits than the default 28-digit context holds, kept exact
        ("12345678901234567890.123456789012345", "12345678901234567890.123456789012345"),
    ],
)
def test_decimal_text(value: str, text: str) -> None:
    assert decimal_text(Decimal(value)) == text
    assert encoding_decimal_text(Decimal(value)) == text


@settings(max_examples=500)
@given(
    st.decimals(allow_nan=False, allow_infinity=False, places=None),
    st.integers(min_value=-40, max_value=30),
)
def test_decimal_text_is_the_fixed_point_text_without_trailing_zeros(number: Decimal, shift: int) -> None:
    value = number.scaleb(shift)  # every exponent: the plain and the scientific text of a decimal
    fixed = format(value, "f")
    if "." in fixed:
        fixed = fixed.rstrip("0").rstrip(".")
    assert decimal_text(value) == ("0" if fixed == "-0" else fixed)
    assert Decimal(decimal_text(value)) == value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0.000003", Decimal("0.000003")),
        ("3", Decimal(3)),
        (3, Decimal(3)),
        (Decimal("0.5"), Decimal("0.5")),
        ("1000000000000000000", Decimal(10**18)),
        ("0.000000000001", Decimal("1E-12")),
        ("1.500000000000000", Decimal("1.5")),  # trailing zeros do not count as places
        ("3e-6", Decimal("0.000003")),
        ("+2", Decimal(2)),
        ("-0", Decimal(0)),
        (".5", Decimal("0.5")),
    ],
)
def test_parse_decimal_accepts(value: object, expected: Decimal) -> None:
    parsed = parse_decimal(value, field="amount")
    assert parsed == expected
    assert decimal_text(parsed) == decimal_text(expected)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (0.5, 'must be a decimal string like "0.000003"'),
        (True, 'must be a decimal string like "0.000003"'),
        (None, 'must be a decimal string like "0.000003"'),
        ([1], 'must be a decimal string like "0.000003"'),
        ("", 'must be a decimal string like "0.000003"'),
        ("abc", 'must be a decimal string like "0.000003"'),
        ("NaN", 'must be a decimal string like "0.000003"'),
        ("Infinity", 'must be a decimal string like "0.000003"'),
        ("-inf", 'must be a decimal string like "0.000003"'),
        (Decimal("NaN"), 'must be a decimal string like "0.000003"'),
        (Decimal("Infinity"), 'must be a decimal string like "0.000003"'),
        ("1_000", 'must be a decimal string like "0.000003"'),
        (" 1", 'must be a decimal string like "0.000003"'),
        ("1e99999", 'must be a decimal string like "0.000003"'),
        ("1,5", 'must be a decimal string like "0.000003"'),
        ("1000000000000000000.1", "too large"),
        ("1e19", "too large"),
        (10**19, "too large"),
        ("0.0000000000001", "more than 12 decimal places"),
        ("-1", "must be at least 0"),
    ],
)
def test_parse_decimal_rejects(value: object, fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_decimal(value, field="rateCards[0].price.amount")
    assert info.value.field == "rateCards[0].price.amount"
    assert fragment in info.value.message
    assert "rateCards[0].price.amount" in info.value.message


def test_parse_decimal_options() -> None:
    assert parse_decimal("-5", field="x", minimum=None) == Decimal(-5)
    assert parse_decimal("-5", field="x", minimum=Decimal(-5)) == Decimal(-5)
    with pytest.raises(ValidationError, match="at least 1"):
        parse_decimal("0.5", field="x", minimum=Decimal(1))
    assert parse_decimal("0.12", field="x", max_places=2) == Decimal("0.12")
    with pytest.raises(ValidationError, match="more than 2 decimal places"):
        parse_decimal("0.125", field="x", max_places=2)
    with pytest.raises(ValidationError, match="too large"):
        parse_decimal("-1e19", field="x", minimum=None)


# -- proration: the one rounding before the line's, explicit ----------------------------------------------


def test_a_terminating_proration_is_exact() -> None:
    assert share(15, 30) == Decimal("0.5")
    assert prorate(Decimal(60), 10, 30) == Decimal(20)  # dividing last: 60 x 10 / 30, not 60 x 0.333...
    assert prorate(Decimal("49"), 15, 30) == Decimal("24.5")


def test_a_proration_that_does_not_terminate_is_rounded_once_to_60_digits_half_even() -> None:
    third = share(1, 3)
    assert third == Decimal("0." + "3" * 60)
    assert share(2, 3) == Decimal("0." + "6" * 59 + "7")  # half to even at the 60th digit
    assert prorate(Decimal(49), 10, 30) == Decimal("16." + "3" * 58)
    assert len(prorate(Decimal(49), 10, 30).as_tuple().digits) == PRORATION_DIGITS
    assert to_minor_units(prorate(Decimal(49), 10, 30), "USD") == 1633


def test_a_proration_product_is_never_rounded() -> None:
    with pytest.raises(Inexact):
        prorate(Decimal("1." + "1" * 59), 11, 13)  # 60 digits x 11 has 61: the product would have to round


def test_the_unused_part_of_a_fee_is_rounded_as_a_proration_is() -> None:
    charged, served = prorate(Decimal(49), 20, 30), prorate(Decimal(49), 1, 30)
    exact = Context(prec=200).subtract(charged, served)  # 61 digits: ...3333|7
    assert exact == Decimal("31.0" + "3" * 56 + "37")
    assert prorated_difference(charged, served) == Decimal("31.0" + "3" * 56 + "4")  # to 60 digits, half even
    assert prorated_difference(Decimal(49), Decimal("24.5")) == Decimal("24.5")


def test_percentages_for_people() -> None:
    assert rounded_percent(share(1, 3)) == Decimal("33.33")
    assert rounded_percent(Decimal("0.123456")) == Decimal("12.35")
    assert percent(share(1, 3)) == Decimal("33.33333333333333333333333333")

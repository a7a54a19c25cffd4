from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tollway.billing.periods import fraction
from tollway.billing.pricing.dynamic import price_dynamic
from tollway.billing.pricing.flat import price_flat
from tollway.billing.pricing.model import DynamicPrice, FlatPrice, PackagePrice, UnitPrice
from tollway.billing.pricing.package import price_package
from tollway.billing.pricing.unit import price_unit
from tollway.money import to_minor_units

D = Decimal


@pytest.mark.parametrize(
    ("quantity", "amount", "expected"),
    [
        ("0", "0.000003", "0"),
        ("1", "0.000003", "0.000003"),
        ("1000000", "0.000003", "3"),  # $3 per million tokens
        ("1000000000000", "0.000003", "3000000"),  # 10^12 tokens
        ("999999999999", "0.000003", "2999999.999997"),
        ("1000000000000", "0.000000000001", "1"),  # a 12-decimal price
        ("1000000000001", "0.000000000001", "1.000000000001"),
        ("2.5", "4", "10"),
        ("333", "0.00001", "0.00333"),
    ],
)
def test_price_unit(quantity: str, amount: str, expected: str) -> None:
    assert price_unit(D(quantity), UnitPrice(D(amount))) == D(expected)


def test_price_unit_beyond_the_default_context_is_exact() -> None:
    # 123,456,789,012,345,678.123456 units x 0.987654321098: 36 significant digits, more than the default 28.
    quantity, amount = D("123456789012345678.123456"), D("0.987654321098")
    product = 123456789012345678123456 * 987654321098  # integer oracle, scaled by 10^-(6 + 12)
    expected = D(f"{product // 10**18}.{product % 10**18:018d}")
    assert price_unit(quantity, UnitPrice(amount)) == expected
    assert quantity * amount != expected  # the default context would have rounded


def test_pricing_rejects_negative_or_non_finite_quantity() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        price_unit(D(-1), UnitPrice(D(1)))
    with pytest.raises(ValueError, match=">= 0"):
        price_dynamic(D("NaN"), DynamicPrice(D(1)))
    with pytest.raises(ValueError, match=">= 0"):
        price_package(D("-0.5"), PackagePrice(D(1), D(10)))


@pytest.mark.parametrize(
    ("quantity", "multiplier", "expected"),
    [
        ("12.345678", "1.3", "16.0493814"),
        ("0", "1.3", "0"),
        ("0.000000000001", "1.3", "0.0000000000013"),
        ("1000", "1", "1000"),
        ("5", "0", "0"),
    ],
)
def test_price_dynamic(quantity: str, multiplier: str, expected: str) -> None:
    assert price_dynamic(D(quantity), DynamicPrice(D(multiplier))) == D(expected)


@pytest.mark.parametrize(
    ("quantity", "amount", "per_package", "expected_amount", "expected_packages"),
    [
        ("0", "1", "100000", "0", "0"),
        ("1", "1", "100000", "1", "1"),
        ("99999", "1", "100000", "1", "1"),
        ("100000", "1", "100000", "1", "1"),  # exactly one package
        ("100001", "1", "100000", "2", "2"),  # a started package counts whole
        ("250000", "1", "100000", "3", "3"),
        ("2001", "2.50", "1000", "7.5", "3"),
        ("1.2", "1", "0.5", "3", "3"),  # fractional package size: ceil(2.4)
        ("1.0", "1", "0.5", "2", "2"),
        ("0.0000001", "5", "1000000", "5", "1"),
        ("1000000000000", "0.1", "1000", "100000000", "1000000000"),
    ],
)
def test_price_package(
    quantity: str, amount: str, per_package: str, expected_amount: str, expected_packages: str
) -> None:
    got_amount, got_packages = price_package(D(quantity), PackagePrice(D(amount), D(per_package)))
    assert got_amount == D(expected_amount)
    assert got_packages == D(expected_packages)


def test_price_package_rejects_zero_package_size() -> None:
    with pytest.raises(ValueError, match="quantity_per_package"):
        price_package(D(1), PackagePrice(D(1), D(0)))


@pytest.mark.parametrize(
    ("amount", "share", "expected"),
    [
        ("49", "1", "49"),
        ("49", "0.5", "24.5"),
        ("49", "0", "0"),
        ("49.99", "0.25", "12.4975"),
        ("0.000000000001", "0.5", "0.0000000000005"),
    ],
)
def test_price_flat(amount: str, share: str, expected: str) -> None:
    assert price_flat(FlatPrice(D(amount)), D(share)) == D(expected)
    assert price_flat(FlatPrice(D(amount), "in_arrears"), D(share)) == D(expected)


def test_price_flat_default_is_the_whole_fee() -> None:
    assert price_flat(FlatPrice(D("49"))) == D(49)


def test_flat_fee_prorated_by_a_third_of_a_period_rounds_on_the_line() -> None:
    # 10 of April's 30 days of a $49 fee: 49 / 3 = 16.333... -> $16.33 once rounded.
    share = fraction(
        datetime(2026, 4, 21, tzinfo=UTC),
        datetime(2026, 5, 1, tzinfo=UTC),
        datetime(2026, 4, 1, tzinfo=UTC),
        datetime(2026, 5, 1, tzinfo=UTC),
    )
    amount = price_flat(FlatPrice(D(49)), share)
    assert D("16.3333333333") < amount < D("16.3333333334")
    assert to_minor_units(amount, "USD") == 1633
    # 20 of 30 days: 98 / 3 = 32.666... -> $32.67
    two_thirds = fraction(
        datetime(2026, 4, 11, tzinfo=UTC),
        datetime(2026, 5, 1, tzinfo=UTC),
        datetime(2026, 4, 1, tzinfo=UTC),
        datetime(2026, 5, 1, tzinfo=UTC),
    )
    assert to_minor_units(price_flat(FlatPrice(D(49)), two_thirds), "USD") == 3267


@pytest.mark.parametrize("share", ["1.5", "-0.1", "NaN"])
def test_price_flat_rejects_a_share_outside_0_to_1(share: str) -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        price_flat(FlatPrice(D(49)), D(share))

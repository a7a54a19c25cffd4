from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tollway.billing.pricing.model import (
    DynamicPrice,
    PackagePrice,
    Tier,
    TierCharge,
    TieredPrice,
    UnitPrice,
    UsageCharge,
    UsageTerms,
)
from tollway.billing.pricing.usage import charge_usage
from tollway.money import to_minor_units

D = Decimal

# The "pro" plan's output tokens: 1M at $10/M, then $8/M; 100k free, 10% off, at least $10 a period.
PRO_OUTPUT = UsageTerms(
    price=TieredPrice(
        mode="graduated",
        tiers=(Tier(up_to=D(1_000_000), unit_price=D("0.00001")), Tier(up_to=None, unit_price=D("0.000008"))),
    ),
    free_quantity=D(100_000),
    discount_percentage=D(10),
    minimum_amount=D(10),
)


def test_pro_output_tokens_step_by_step() -> None:
    # 3,000,000 tokens: 100,000 free -> 2,900,000 billable -> 1,000,000 x 0.00001 = 10 plus
    # 1,900,000 x 0.000008 = 15.2 -> 25.2 -> 10% off = 2.52 -> 22.68; above the $10 minimum.
    charge = charge_usage(D(3_000_000), PRO_OUTPUT)
    assert charge == UsageCharge(
        quantity=D(3_000_000),
        free_quantity=D(100_000),
        billable_quantity=D(2_900_000),
        priced_amount=D("25.2"),
        discount_amount=D("2.52"),
        maximum_cut=D(0),
        minimum_top_up=D(0),
        amount=D("22.68"),
        unit_price=None,
        tiers=(
            TierCharge(1, D(1_000_000), D(1_000_000), D("0.00001"), D(0), D(10)),
            TierCharge(2, None, D(1_900_000), D("0.000008"), D(0), D("15.2")),
        ),
        packages=None,
    )
    assert to_minor_units(charge.amount, "USD") == 2268


def test_minimum_spend_tops_up_after_the_discount() -> None:
    # 500,000 tokens: 400,000 billable x 0.00001 = 4 -> 10% off = 3.6 -> topped up by 6.4 to 10.
    charge = charge_usage(D(500_000), PRO_OUTPUT)
    assert (charge.priced_amount, charge.discount_amount, charge.minimum_top_up, charge.amount) == (
        D(4),
        D("0.4"),
        D("6.4"),
        D(10),
    )


def test_free_quantity_larger_than_usage() -> None:
    charge = charge_usage(D(50_000), PRO_OUTPUT)
    assert charge.free_quantity == D(50_000)  # at most the quantity
    assert charge.billable_quantity == D(0)
    assert charge.priced_amount == D(0)
    assert charge.discount_amount == D(0)
    assert charge.minimum_top_up == D(10)
    assert charge.amount == D(10)
    assert [c.quantity for c in charge.tiers] == [D(0), D(0)]


def test_zero_usage_without_minimum_is_zero() -> None:
    charge = charge_usage(D(0), UsageTerms(price=UnitPrice(D("0.000003"))))
    assert charge.amount == D(0)
    assert charge.unit_price == D("0.000003")
    assert charge.tiers == ()
    assert charge.packages is None


def test_maximum_spend_caps_a_trillion_tokens() -> None:
    # 10^12 tokens x $3/M = 3,000,000, capped at 1,000: cut 2,999,000.
    terms = UsageTerms(price=UnitPrice(D("0.000003")), maximum_amount=D(1000))
    charge = charge_usage(D(10**12), terms)
    assert charge.priced_amount == D(3_000_000)
    assert charge.maximum_cut == D(2_999_000)
    assert charge.amount == D(1000)


@pytest.mark.parametrize(
    ("quantity", "discount", "cut", "top_up", "amount"),
    [
        # unit price 1, 20% off, maximum 30, minimum 20
        ("50", "10", "10", "0", "30"),  # 50 -> 40 -> capped to 30
        ("37.5", "7.5", "0", "0", "30"),  # 37.5 -> 30 exactly at the cap: nothing cut
        ("35", "7", "0", "0", "28"),  # 35 is over the cap, 28 after the discount is not: nothing cut
        ("37.51", "7.502", "0.008", "0", "30"),  # 37.51 -> 30.008: the cap cuts what the discount left over
        ("30", "6", "0", "0", "24"),
        ("25", "5", "0", "0", "20"),  # exactly at the minimum: nothing added
        ("20", "4", "0", "4", "20"),  # 20 -> 16 -> topped up to 20
        ("0", "0", "0", "20", "20"),
    ],
)
def test_discount_then_cap_then_minimum(quantity: str, discount: str, cut: str, top_up: str, amount: str) -> None:
    terms = UsageTerms(price=UnitPrice(D(1)), discount_percentage=D(20), minimum_amount=D(20), maximum_amount=D(30))
    charge = charge_usage(D(quantity), terms)
    assert (charge.discount_amount, charge.maximum_cut, charge.minimum_top_up, charge.amount) == (
        D(discount),
        D(cut),
        D(top_up),
        D(amount),
    )


@pytest.mark.parametrize(
    ("quantity", "discount", "cut", "top_up", "amount"),
    [
        # unit price 1, 50% off, maximum 60, minimum 20; the cap applies to the amount after the discount
        # 100 -> 50: over the cap before the discount, under it after: nothing cut (capping first gives 30)
        ("100", "50", "0", "0", "50"),
        ("130", "65", "5", "0", "60"),  # 130 -> 65, capped to 60
        ("30", "15", "0", "5", "20"),  # 30 -> 15, under the minimum of 20: topped up
        ("70", "35", "0", "0", "35"),  # over the cap before the discount, between minimum and cap after it
    ],
)
def test_a_discount_that_crosses_the_cap(quantity: str, discount: str, cut: str, top_up: str, amount: str) -> None:
    terms = UsageTerms(price=UnitPrice(D(1)), discount_percentage=D(50), minimum_amount=D(20), maximum_amount=D(60))
    charge = charge_usage(D(quantity), terms)
    assert charge.priced_amount == D(quantity)
    assert (charge.discount_amount, charge.maximum_cut, charge.minimum_top_up, charge.amount) == (
        D(discount),
        D(cut),
        D(top_up),
        D(amount),
    )


def test_order_when_minimum_exceeds_maximum() -> None:
    # Validation rejects such terms; the order still decides: the minimum comes last and wins.
    terms = UsageTerms(price=UnitPrice(D(1)), minimum_amount=D(50), maximum_amount=D(30))
    charge = charge_usage(D(100), terms)
    assert (charge.maximum_cut, charge.minimum_top_up, charge.amount) == (D(70), D(20), D(50))


def test_percentage_discount_is_exact() -> None:
    # 333 tokens x 0.00001 = 0.00333; 33.3% off = 0.00110889; leaves 0.00222111
    terms = UsageTerms(price=UnitPrice(D("0.00001")), discount_percentage=D("33.3"))
    charge = charge_usage(D(333), terms)
    assert charge.discount_amount == D("0.00110889")
    assert charge.amount == D("0.00222111")
    full = charge_usage(D(333), UsageTerms(price=UnitPrice(D("0.00001")), discount_percentage=D(100)))
    assert full.amount == D(0)


def test_volume_line_carries_its_unit_price() -> None:
    price = TieredPrice(
        mode="volume",
        tiers=(Tier(up_to=D(1000), unit_price=D("0.02"), flat_price=D(3)), Tier(up_to=None, unit_price=D("0.01"))),
    )
    charge = charge_usage(D(1500), UsageTerms(price=price, free_quantity=D(100)))
    # 1,400 billable, all in tier 2: 1,400 x 0.01 = 14
    assert charge.billable_quantity == D(1400)
    assert charge.amount == D(14)
    assert charge.unit_price == D("0.01")
    assert charge.tiers == (TierCharge(2, None, D(1400), D("0.01"), D(0), D(14)),)
    # 1,100 with 100 free: 1,000 billable stays in tier 1: 1,000 x 0.02 + 3 = 23
    lower = charge_usage(D(1100), UsageTerms(price=price, free_quantity=D(100)))
    assert lower.amount == D(23)
    assert lower.unit_price == D("0.02")


def test_package_line_carries_packages_and_package_amount() -> None:
    terms = UsageTerms(price=PackagePrice(amount=D(1), quantity_per_package=D(100_000)), free_quantity=D(50_000))
    charge = charge_usage(D(250_001), terms)
    # 200,001 billable -> 3 packages started -> 3
    assert charge.billable_quantity == D(200_001)
    assert charge.packages == D(3)
    assert charge.unit_price == D(1)
    assert charge.amount == D(3)


def test_dynamic_line() -> None:
    charge = charge_usage(D("12.345678"), UsageTerms(price=DynamicPrice(D("1.3")), discount_percentage=D(50)))
    # 12.345678 x 1.3 = 16.0493814; half off: 8.0246907
    assert charge.priced_amount == D("16.0493814")
    assert charge.amount == D("8.0246907")
    assert charge.unit_price is None
    assert to_minor_units(charge.amount, "USD") == 802


def test_negative_quantity_is_refused() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        charge_usage(D(-1), PRO_OUTPUT)


amounts = st.integers(min_value=0, max_value=10_000).map(lambda cents: D(cents) / 100)


@settings(max_examples=200, deadline=None)
@given(
    quantity=st.integers(min_value=0, max_value=10**7).map(D),
    unit_micros=st.integers(min_value=0, max_value=100),
    free=st.integers(min_value=0, max_value=10**6).map(D),
    percentage=st.integers(min_value=0, max_value=100).map(D),
    minimum=st.none() | amounts,
    maximum=st.none() | amounts,
)
# Rows where the order of the steps decides, run on every run whatever Hypothesis draws: priced over the cap but
# under it after the discount; over the cap both before and after; under the minimum only after the discount.
@example(quantity=D(1_000_000), unit_micros=50, free=D(0), percentage=D(40), minimum=None, maximum=D(40))
@example(quantity=D(1_100_000), unit_micros=50, free=D(100_000), percentage=D(10), minimum=D(1), maximum=D(40))
@example(quantity=D(2_000_000), unit_micros=50, free=D(0), percentage=D(50), minimum=None, maximum=D(40))
@example(quantity=D(400_000), unit_micros=50, free=D(0), percentage=D(25), minimum=D(18), maximum=D(19))
def test_amount_stays_within_minimum_and_maximum(
    quantity: Decimal,
    unit_micros: int,
    free: Decimal,
    percentage: Decimal,
    minimum: Decimal | None,
    maximum: Decimal | None,
) -> None:
    terms = UsageTerms(
        price=UnitPrice(D(unit_micros) / 10**6),
        free_quantity=free,
        discount_percentage=percentage,
        minimum_amount=minimum,
        maximum_amount=maximum,
    )
    charge = charge_usage(quantity, terms)
    if minimum is not None:
        assert charge.amount >= minimum
    if maximum is not None:
        assert charge.amount <= max(maximum, minimum if minimum is not None else maximum)
    # Oracle in integer micro-units: billable x price, minus the percentage, then cap and floor.
    billable = max(int(quantity) - int(free), 0)
    priced_micros = billable * unit_micros  # in 10^-6
    after_discount = D(priced_micros) * (100 - percentage) / 100 / 10**6
    expected = after_discount
    if maximum is not None:
        expected = min(expected, maximum)
    if minimum is not None:
        expected = max(expected, minimum)
    assert charge.amount == expected
    assert charge.amount == charge.priced_amount - charge.discount_amount - charge.maximum_cut + charge.minimum_top_up


@settings(max_examples=200, deadline=None)
@given(
    quantity=st.integers(min_value=0, max_value=10**6).map(lambda n: D(n) / 100),
    per_package=st.integers(min_value=1, max_value=5000).map(lambda n: D(n) / 10),
)
def test_packages_are_the_smallest_multiple_covering_the_quantity(quantity: Decimal, per_package: Decimal) -> None:
    charge = charge_usage(quantity, UsageTerms(price=PackagePrice(amount=D(2), quantity_per_package=per_package)))
    packages = charge.packages
    assert packages is not None
    assert packages == packages.to_integral_value()
    assert packages * per_package >= quantity
    if quantity > 0:
        assert (packages - 1) * per_package < quantity
    else:
        assert packages == 0
    assert charge.amount == packages * 2

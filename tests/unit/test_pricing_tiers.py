from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tollway.billing.pricing.model import Tier, TierCharge, TieredPrice
from tollway.billing.pricing.tiered_graduated import price_graduated
from tollway.billing.pricing.tiered_volume import price_volume

D = Decimal

# Three tiers: up to 1,000 at 0.01 (+5 flat), up to 5,000 at 0.008 (+2 flat), above at 0.005 (+1 flat).
TIERS = (
    Tier(up_to=D(1000), unit_price=D("0.01"), flat_price=D(5)),
    Tier(up_to=D(5000), unit_price=D("0.008"), flat_price=D(2)),
    Tier(up_to=None, unit_price=D("0.005"), flat_price=D(1)),
)
GRADUATED = TieredPrice(mode="graduated", tiers=TIERS)
VOLUME = TieredPrice(mode="volume", tiers=TIERS)


@pytest.mark.parametrize(
    ("quantity", "total", "per_tier"),
    [
        # per tier: (quantity, flat charged, amount)
        ("0", "5", [("0", "5", "5"), ("0", "0", "0"), ("0", "0", "0")]),  # first tier's flat even at zero
        ("1", "5.01", [("1", "5", "5.01"), ("0", "0", "0"), ("0", "0", "0")]),
        ("999", "14.99", [("999", "5", "14.99"), ("0", "0", "0"), ("0", "0", "0")]),
        ("1000", "15", [("1000", "5", "15"), ("0", "0", "0"), ("0", "0", "0")]),  # up_to is inclusive
        ("1000.5", "17.004", [("1000", "5", "15"), ("0.5", "2", "2.004"), ("0", "0", "0")]),
        ("1001", "17.008", [("1000", "5", "15"), ("1", "2", "2.008"), ("0", "0", "0")]),
        ("4999", "48.992", [("1000", "5", "15"), ("3999", "2", "33.992"), ("0", "0", "0")]),
        ("5000", "49", [("1000", "5", "15"), ("4000", "2", "34"), ("0", "0", "0")]),
        ("5001", "50.005", [("1000", "5", "15"), ("4000", "2", "34"), ("1", "1", "1.005")]),
        ("10000", "75", [("1000", "5", "15"), ("4000", "2", "34"), ("5000", "1", "26")]),
    ],
)
def test_graduated_boundaries(quantity: str, total: str, per_tier: list[tuple[str, str, str]]) -> None:
    amount, breakdown = price_graduated(D(quantity), GRADUATED)
    assert amount == D(total)
    assert breakdown == tuple(
        TierCharge(
            tier=i + 1,
            up_to=TIERS[i].up_to,
            quantity=D(q),
            unit_price=TIERS[i].unit_price,
            flat_price=D(flat),
            amount=D(a),
        )
        for i, (q, flat, a) in enumerate(per_tier)
    )


def test_graduated_at_a_trillion_tokens() -> None:
    # 1M tokens at $10/M, the rest at $8/M: 10 + 999,999,000,000 x 0.000008 = 10 + 7,999,992 = 8,000,002
    price = TieredPrice(
        mode="graduated",
        tiers=(Tier(up_to=D(1_000_000), unit_price=D("0.00001")), Tier(up_to=None, unit_price=D("0.000008"))),
    )
    amount, breakdown = price_graduated(D(10**12), price)
    assert amount == D(8_000_002)
    assert [c.quantity for c in breakdown] == [D(1_000_000), D(999_999_000_000)]
    assert [c.amount for c in breakdown] == [D(10), D(7_999_992)]


def test_graduated_single_open_tier() -> None:
    price = TieredPrice(mode="graduated", tiers=(Tier(up_to=None, unit_price=D("0.000003"), flat_price=D(2)),))
    assert price_graduated(D(0), price)[0] == D(2)
    assert price_graduated(D(1_000_000), price)[0] == D(5)


def test_graduated_flat_only_tiers() -> None:
    # A "first 100 free, then a fixed 20 for any amount above" price: unit prices 0, flats 0 and 20.
    price = TieredPrice(
        mode="graduated", tiers=(Tier(up_to=D(100)), Tier(up_to=None, unit_price=D(0), flat_price=D(20)))
    )
    assert price_graduated(D(100), price)[0] == D(0)
    assert price_graduated(D("100.000001"), price)[0] == D(20)
    assert price_graduated(D(10**9), price)[0] == D(20)


@pytest.mark.parametrize(
    ("quantity", "total", "tier", "unit_price", "flat"),
    [
        ("0", "5", 1, "0.01", "5"),  # zero usage falls in the first tier, its flat is charged
        ("999", "14.99", 1, "0.01", "5"),
        ("1000", "15", 1, "0.01", "5"),  # inclusive
        ("1000.5", "10.004", 2, "0.008", "2"),  # 1000.5 x 0.008 = 8.004, + 2
        ("1001", "10.008", 2, "0.008", "2"),  # cheaper than 1000 units: the volume drop
        ("4999", "41.992", 2, "0.008", "2"),
        ("5000", "42", 2, "0.008", "2"),
        ("5001", "26.005", 3, "0.005", "1"),
        ("1000000000000", "5000000001", 3, "0.005", "1"),
    ],
)
def test_volume_boundaries(quantity: str, total: str, tier: int, unit_price: str, flat: str) -> None:
    amount, breakdown = price_volume(D(quantity), VOLUME)
    assert amount == D(total)
    assert breakdown == (
        TierCharge(
            tier=tier,
            up_to=TIERS[tier - 1].up_to,
            quantity=D(quantity),
            unit_price=D(unit_price),
            flat_price=D(flat),
            amount=D(total),
        ),
    )


def test_mode_mismatch_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="graduated"):
        price_graduated(D(1), VOLUME)
    with pytest.raises(ValueError, match="volume"):
        price_volume(D(1), GRADUATED)


# --- properties against independent oracles -------------------------------------------------------------------


@st.composite
def integer_tiers(draw: st.DrawFn) -> tuple[Tier, ...]:
    """1-4 tiers with integer bounds and prices in cents, the last open."""
    bounds = sorted(draw(st.sets(st.integers(min_value=1, max_value=60), max_size=3)))
    prices = st.integers(min_value=0, max_value=500).map(lambda cents: D(cents) / 100)
    tiers = [Tier(up_to=D(b), unit_price=draw(prices), flat_price=draw(prices)) for b in bounds]
    tiers.append(Tier(up_to=None, unit_price=draw(prices), flat_price=draw(prices)))
    return tuple(tiers)


@settings(max_examples=200, deadline=None)
@given(tiers=integer_tiers(), quantity=st.integers(min_value=0, max_value=100))
def test_graduated_matches_unit_by_unit_sum(tiers: tuple[Tier, ...], quantity: int) -> None:
    # Oracle: price unit 1, 2, ..., quantity one at a time by the first tier whose up_to it does not exceed;
    # a tier's flat is charged when at least one unit lands in it, the first tier's always.
    expected = D(0)
    used = {0}
    for unit in range(1, quantity + 1):
        index = next(i for i, t in enumerate(tiers) if t.up_to is None or unit <= t.up_to)
        expected += tiers[index].unit_price
        used.add(index)
    expected += sum((tiers[i].flat_price for i in used), D(0))
    amount, breakdown = price_graduated(D(quantity), TieredPrice(mode="graduated", tiers=tiers))
    assert amount == expected
    assert sum((c.quantity for c in breakdown), D(0)) == quantity
    assert len(breakdown) == len(tiers)


@settings(max_examples=200, deadline=None)
@given(tiers=integer_tiers(), a=st.integers(min_value=0, max_value=100), b=st.integers(min_value=0, max_value=100))
def test_volume_is_monotone_within_a_tier(tiers: tuple[Tier, ...], a: int, b: int) -> None:
    low, high = sorted((a, b))
    price = TieredPrice(mode="volume", tiers=tiers)
    low_amount, (low_tier,) = price_volume(D(low), price)
    high_amount, (high_tier,) = price_volume(D(high), price)
    # Oracle for the tier: count the bounds strictly below the quantity.
    bounds = [t.up_to for t in tiers if t.up_to is not None]
    assert low_tier.tier == 1 + sum(1 for bound in bounds if bound < low)
    assert high_tier.tier == 1 + sum(1 for bound in bounds if bound < high)
    expected_low = D(low) * tiers[low_tier.tier - 1].unit_price + tiers[low_tier.tier - 1].flat_price
    assert low_amount == expected_low
    if low_tier.tier == high_tier.tier:
        assert low_amount <= high_amount

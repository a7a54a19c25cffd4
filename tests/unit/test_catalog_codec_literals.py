"""The SQL adapter's stored form of prices, one direction at a time, against literal records.

The contract suite checks `decode(encode(x)) == x`, which passes when both directions share a mistake (a
decimal stored as a float, a tier bound dropped on both sides); these cases pin each direction alone.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tollway.adapters.sql.catalog_codec import decode_usage_price, encode_usage_price
from tollway.billing.pricing.model import DynamicPrice, PackagePrice, Tier, TieredPrice, UnitPrice, UsagePrice

CASES: list[tuple[UsagePrice, dict[str, Any]]] = [
    (UnitPrice(Decimal("0.0000025")), {"type": "unit", "amount": "0.0000025"}),
    (UnitPrice(Decimal("10.50")), {"type": "unit", "amount": "10.50"}),  # the trailing zero is kept
    (UnitPrice(Decimal("1E+6")), {"type": "unit", "amount": "1E+6"}),  # and the exponent
    (
        TieredPrice(
            mode="graduated",
            tiers=(
                Tier(up_to=Decimal("1000000"), unit_price=Decimal("0.00001")),
                Tier(up_to=None, unit_price=Decimal("0.000008"), flat_price=Decimal("5")),
            ),
        ),
        {
            "type": "tiered",
            "mode": "graduated",
            "tiers": [
                {"upTo": "1000000", "unitPrice": "0.00001", "flatPrice": "0"},
                {"upTo": None, "unitPrice": "0.000008", "flatPrice": "5"},
            ],
        },
    ),
    (
        PackagePrice(Decimal("2.5"), Decimal("1000")),
        {"type": "package", "amount": "2.5", "quantityPerPackage": "1000"},
    ),
    (DynamicPrice(Decimal("1.2")), {"type": "dynamic", "multiplier": "1.2"}),
]
IDS = ["unit", "unit-trailing-zero", "unit-exponent", "tiered", "package", "dynamic"]


@pytest.mark.parametrize(("price", "stored"), CASES, ids=IDS)
def test_a_price_is_stored_as_this_record(price: UsagePrice, stored: dict[str, Any]) -> None:
    assert encode_usage_price(price) == stored


@pytest.mark.parametrize(("price", "stored"), CASES, ids=IDS)
def test_this_record_is_read_as_this_price(price: UsagePrice, stored: dict[str, Any]) -> None:
    decoded = decode_usage_price(stored)
    assert decoded == price
    # Equal decimals can differ in their digits (10.5 == 10.50): the digits read are the ones stored.
    assert repr(decoded) == repr(price)


def test_an_unknown_stored_price_type_is_an_error() -> None:
    with pytest.raises(ValueError, match="'volume-ish'"):
        decode_usage_price({"type": "volume-ish"})

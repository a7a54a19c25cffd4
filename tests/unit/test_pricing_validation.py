from __future__ import annotations

from decimal import Decimal

import pytest

from tollway.billing.pricing import validate_flat_price, validate_tiers, validate_usage_terms
from tollway.billing.pricing.model import (
    DynamicPrice,
    FlatPrice,
    PackagePrice,
    Tier,
    TieredPrice,
    UnitPrice,
    UsageTerms,
)
from tollway.errors import ValidationError

D = Decimal
FIELD = "rateCards[2].price"


def test_valid_tiers_pass() -> None:
    validate_tiers((Tier(up_to=None, unit_price=D(1)),), field=FIELD)
    validate_tiers(
        (Tier(up_to=D("0.5")), Tier(up_to=D(1000), flat_price=D(5)), Tier(up_to=None, unit_price=D("0.000001"))),
        field=FIELD,
    )


@pytest.mark.parametrize(
    ("tiers", "field", "fragment"),
    [
        ((), f"{FIELD}.tiers", "at least one tier"),
        ((Tier(up_to=D(10)),), f"{FIELD}.tiers[0].upToAmount", "must be left out"),
        ((Tier(up_to=D(10)), Tier(up_to=D(20))), f"{FIELD}.tiers[1].upToAmount", "must be left out"),
        ((Tier(up_to=None), Tier(up_to=None)), f"{FIELD}.tiers[0].upToAmount", "only the last tier"),
        ((Tier(up_to=D(10)), Tier(up_to=None), Tier(up_to=None)), f"{FIELD}.tiers[1].upToAmount", "only the last tier"),
        ((Tier(up_to=D(0)), Tier(up_to=None)), f"{FIELD}.tiers[0].upToAmount", "must be > 0"),
        ((Tier(up_to=D(-5)), Tier(up_to=None)), f"{FIELD}.tiers[0].upToAmount", "must be > 0"),
        ((Tier(up_to=D(10)), Tier(up_to=D(10)), Tier(up_to=None)), f"{FIELD}.tiers[1].upToAmount", "greater than"),
        ((Tier(up_to=D(10)), Tier(up_to=D(5)), Tier(up_to=None)), f"{FIELD}.tiers[1].upToAmount", "greater than"),
        ((Tier(up_to=D(10), unit_price=D(-1)), Tier(up_to=None)), f"{FIELD}.tiers[0].unitPrice.amount", ">= 0"),
        ((Tier(up_to=D(10)), Tier(up_to=None, flat_price=D("-0.01"))), f"{FIELD}.tiers[1].flatPrice.amount", ">= 0"),
        ((Tier(up_to=D("NaN")), Tier(up_to=None)), f"{FIELD}.tiers[0].upToAmount", "must be > 0"),
        ((Tier(up_to=None, unit_price=D("NaN")),), f"{FIELD}.tiers[0].unitPrice.amount", ">= 0"),
    ],
)
def test_invalid_tiers(tiers: tuple[Tier, ...], field: str, fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        validate_tiers(tiers, field=FIELD)
    assert info.value.field == field
    assert fragment in info.value.message
    assert field in info.value.message


CARD = "rateCards[1]"


def test_valid_usage_terms_pass() -> None:
    validate_usage_terms(
        UsageTerms(
            price=UnitPrice(D("0.000003")),
            free_quantity=D(100),
            discount_percentage=D(100),
            minimum_amount=D(10),
            maximum_amount=D(10),
        ),
        field=CARD,
    )
    validate_usage_terms(UsageTerms(price=PackagePrice(D(1), D("0.5"))), field=CARD)
    validate_usage_terms(UsageTerms(price=DynamicPrice(D(0))), field=CARD)
    validate_usage_terms(UsageTerms(price=TieredPrice("volume", (Tier(up_to=None),))), field=CARD)


@pytest.mark.parametrize(
    ("terms", "field", "fragment"),
    [
        (UsageTerms(price=UnitPrice(D(-1))), f"{CARD}.price.amount", ">= 0"),
        (UsageTerms(price=PackagePrice(D(-1), D(10))), f"{CARD}.price.amount", ">= 0"),
        (UsageTerms(price=PackagePrice(D(1), D(0))), f"{CARD}.price.quantityPerPackage", "> 0"),
        (UsageTerms(price=DynamicPrice(D("-1.3"))), f"{CARD}.price.multiplier", ">= 0"),
        (
            UsageTerms(price=TieredPrice("graduated", (Tier(up_to=D(5)),))),
            f"{CARD}.price.tiers[0].upToAmount",
            "must be left out",
        ),
        (
            UsageTerms(price=TieredPrice("stairs", (Tier(up_to=None),))),  # type: ignore[arg-type]
            f"{CARD}.price.mode",
            "'graduated' or 'volume'",
        ),
        (UsageTerms(price=UnitPrice(D(1)), free_quantity=D(-1)), f"{CARD}.discounts.usage.quantity", ">= 0"),
        (
            UsageTerms(price=UnitPrice(D(1)), discount_percentage=D("100.01")),
            f"{CARD}.discounts.percentage.percentage",
            "100",
        ),
        (
            UsageTerms(price=UnitPrice(D(1)), discount_percentage=D(-1)),
            f"{CARD}.discounts.percentage.percentage",
            "0 and 100",
        ),
        (UsageTerms(price=UnitPrice(D(1)), minimum_amount=D(-1)), f"{CARD}.price.minimumAmount", ">= 0"),
        (UsageTerms(price=UnitPrice(D(1)), maximum_amount=D(-1)), f"{CARD}.price.maximumAmount", ">= 0"),
        (
            UsageTerms(price=UnitPrice(D(1)), minimum_amount=D("10.01"), maximum_amount=D(10)),
            f"{CARD}.price.minimumAmount",
            "must not exceed maximumAmount",
        ),
        (UsageTerms(price=FlatPrice(D(1))), f"{CARD}.price", "not a usage price"),  # type: ignore[arg-type]
    ],
)
def test_invalid_usage_terms(terms: UsageTerms, field: str, fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        validate_usage_terms(terms, field=CARD)
    assert info.value.field == field
    assert fragment in info.value.message


def test_flat_price_validation() -> None:
    validate_flat_price(FlatPrice(D(49), "in_arrears"), field="rateCards[0].price")
    with pytest.raises(ValidationError) as info:
        validate_flat_price(FlatPrice(D(-49)), field="rateCards[0].price")
    assert info.value.field == "rateCards[0].price.amount"
    with pytest.raises(ValidationError) as info:
        validate_flat_price(FlatPrice(D(49), "monthly"), field="rateCards[0].price")  # type: ignore[arg-type]
    assert info.value.field == "rateCards[0].price.paymentTerm"

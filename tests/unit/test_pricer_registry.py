"""One Pricer interface, one registry keyed by price type: a price model added as one module (here a test-only
"per_thousand" model defined in this file) is validated, priced, described and carried by both codecs once it is
in a registry — and the built-in registry, a value, stays as it was."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

import pytest

from tollway.adapters.sql.catalog_codec import decode_usage_price, encode_usage_price
from tollway.api.plan_codec import decode_rate_card, encode_rate_card
from tollway.api.wire import Obj
from tollway.billing.features import Feature
from tollway.billing.invoicing.lines import usage_line
from tollway.billing.invoicing.usage import MeteredUsage
from tollway.billing.plans import RateCard
from tollway.billing.pricing.model import (
    DynamicPrice,
    ModelCharge,
    PackagePrice,
    Tier,
    TieredPrice,
    UnitPrice,
    UsageCharge,
    UsagePrice,
    UsageTerms,
)
from tollway.billing.pricing.pricer import Pricer, WireFields, check_quantity, non_negative, stored, wire
from tollway.billing.pricing.registry import BUILT_IN, PRICERS
from tollway.billing.pricing.terms import validate_usage_terms
from tollway.billing.pricing.usage import charge_usage
from tollway.errors import ValidationError
from tollway.money import exact_arithmetic, format_quantity, price_text

D = Decimal


@dataclass(frozen=True, slots=True)
class PerThousandPrice:
    """`amount` per 1,000 units, exact (no rounding to whole thousands)."""

    type: ClassVar[str] = "per_thousand"
    amount: Decimal


class PerThousandPricer:
    type = "per_thousand"
    price_class = PerThousandPrice
    wire_fields = frozenset({"amount"})
    config_fields = (frozenset({"amount"}), frozenset[str]())

    def charge(self, quantity: Decimal, price: PerThousandPrice) -> ModelCharge:
        check_quantity(quantity)
        with exact_arithmetic():
            return ModelCharge(quantity * price.amount / 1000)

    def describe(self, charge: UsageCharge, price: PerThousandPrice, name: str, currency: str) -> str:
        return f"{format_quantity(charge.quantity)} {name} at {price_text(price.amount, currency)} per 1,000"

    def label(self, price: PerThousandPrice, currency: str) -> str:
        return f"{price_text(price.amount, currency)} per 1,000"

    def validate(self, price: PerThousandPrice, *, field: str) -> None:
        non_negative(price.amount, f"{field}.amount")

    def to_wire(self, price: PerThousandPrice) -> dict[str, Any]:
        return {"amount": wire(price.amount)}

    def from_wire(self, fields: WireFields) -> PerThousandPrice:
        return PerThousandPrice(fields.req_decimal("amount"))

    def to_record(self, price: PerThousandPrice) -> dict[str, Any]:
        return {"amount": stored(price.amount)}

    def from_record(self, record: Mapping[str, Any]) -> PerThousandPrice:
        return PerThousandPrice(Decimal(record["amount"]))

    def from_config(self, values: Mapping[str, Any], *, field: str) -> PerThousandPrice:
        return PerThousandPrice(values["amount"])


PER_THOUSAND: Pricer[PerThousandPrice] = PerThousandPricer()
WITH_TEST_MODEL = PRICERS.with_pricer(PER_THOUSAND)
FEATURE = Feature(id="f1", key="output-tokens", name="Output tokens", meter_slug="tokens")


def test_the_built_in_registry_lists_the_price_types_in_order() -> None:
    assert PRICERS.types == ("unit", "tiered", "package", "dynamic")
    assert PRICERS.types == tuple(pricer.type for pricer in BUILT_IN)
    assert WITH_TEST_MODEL.types == ("unit", "tiered", "package", "dynamic", "per_thousand")


def test_a_price_type_is_registered_once() -> None:
    with pytest.raises(ValueError, match="'per_thousand' registered twice"):
        WITH_TEST_MODEL.with_pricer(PER_THOUSAND)


def test_a_registered_model_is_priced_with_the_line_terms_around_it() -> None:
    terms = UsageTerms(PerThousandPrice(D("0.5")), free_quantity=D(500), discount_percentage=D(10), minimum_amount=D(1))
    charge = charge_usage(D(2500), terms, pricers=WITH_TEST_MODEL)
    assert charge.billable_quantity == D(2000)
    assert charge.priced_amount == D(1)  # 2,000 x 0.5 / 1,000
    assert charge.discount_amount == D("0.1")
    assert charge.minimum_top_up == D("0.1")
    assert charge.amount == D(1)
    assert (charge.unit_price, charge.tiers, charge.packages) == (None, (), None)


def test_a_model_no_registry_holds_is_not_priced() -> None:
    terms = UsageTerms(PerThousandPrice(D("0.5")))
    with pytest.raises(TypeError, match="not a usage price"):
        charge_usage(D(1), terms)  # the built-in registry does not know it: registering is explicit
    with pytest.raises(ValidationError) as info:
        validate_usage_terms(terms, field="rateCards[0]")
    assert info.value.field == "rateCards[0].price"


def test_a_registered_model_is_validated_by_its_pricer() -> None:
    validate_usage_terms(UsageTerms(PerThousandPrice(D("0.5"))), field="rateCards[0]", pricers=WITH_TEST_MODEL)
    with pytest.raises(ValidationError) as info:
        validate_usage_terms(UsageTerms(PerThousandPrice(D(-1))), field="rateCards[0]", pricers=WITH_TEST_MODEL)
    assert info.value.field == "rateCards[0].price.amount"


def test_a_registered_model_makes_an_invoice_line_in_its_own_words() -> None:
    card = RateCard(key="out", name="Output", feature_key=FEATURE.key, usage=UsageTerms(PerThousandPrice(D("0.5"))))
    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
    line = usage_line(
        card=card,
        feature=FEATURE,
        currency="USD",
        period_start=start,
        period_end=end,
        usage=MeteredUsage(D(12345)),
        pricers=WITH_TEST_MODEL,
    )
    assert line.description == "12,345 Output tokens at $0.5 per 1,000"
    assert line.amount == D("6.1725")
    assert line.amount_minor == 617  # rounded once, on the line


def test_a_registered_model_travels_through_the_api_codec() -> None:
    body = {
        "type": "usage_based",
        "key": "out",
        "featureKey": "output-tokens",
        "price": {"type": "per_thousand", "amount": "0.5", "maximumAmount": "100"},
    }
    card = decode_rate_card(body, "rateCards[0]", pricers=WITH_TEST_MODEL)
    assert card.usage == UsageTerms(PerThousandPrice(D("0.5")), maximum_amount=D(100))
    price = encode_rate_card(card, "P1M", pricers=WITH_TEST_MODEL)["price"]
    assert price == {"type": "per_thousand", "amount": "0.5", "minimumAmount": None, "maximumAmount": "100"}


def test_the_api_codec_refuses_fields_of_other_models_and_unregistered_types() -> None:
    body = {"type": "usage_based", "key": "out", "featureKey": "output-tokens"}
    with pytest.raises(ValidationError) as info:
        decode_rate_card(
            {**body, "price": {"type": "per_thousand", "amount": "0.5", "multiplier": "2"}},
            "rateCards[0]",
            pricers=WITH_TEST_MODEL,
        )
    assert info.value.field == "rateCards[0].price.multiplier"
    assert "on a per_thousand price" in info.value.message
    with pytest.raises(ValidationError) as info:
        decode_rate_card({**body, "price": {"type": "per_thousand", "amount": "0.5"}}, "rateCards[0]")
    assert info.value.field == "rateCards[0].price.type"
    assert "must be one of unit, tiered, package, dynamic, flat" in info.value.message


def test_a_registered_model_travels_through_the_store_codec() -> None:
    record = encode_usage_price(PerThousandPrice(D("0.50")), pricers=WITH_TEST_MODEL)
    assert record == {"type": "per_thousand", "amount": "0.50"}
    assert repr(decode_usage_price(record, pricers=WITH_TEST_MODEL)) == repr(PerThousandPrice(D("0.50")))
    with pytest.raises(ValueError, match="'per_thousand'"):
        decode_usage_price(record)


@pytest.mark.parametrize(
    ("price", "label"),
    [
        (UnitPrice(D("0.000003")), "$0.000003 per unit"),
        (PerThousandPrice(D("0.5")), "$0.5 per 1,000"),
    ],
)
def test_a_label_is_the_pricers(price: UnitPrice | PerThousandPrice, label: str) -> None:
    assert WITH_TEST_MODEL.of(price).label(price, "USD") == label


SAMPLES: list[UsagePrice] = [
    UnitPrice(D("0.0000025")),
    TieredPrice("graduated", (Tier(D("1000"), D("0.01"), D("5")), Tier(None, D("0.008")))),
    TieredPrice("volume", (Tier(D("1E+3"), D("0.010")), Tier(None, D("0"), D("1.50")))),
    PackagePrice(D("2.5"), D("1000")),
    DynamicPrice(D("1.30")),
    PerThousandPrice(D("0.5")),
]


@pytest.mark.parametrize("price", SAMPLES, ids=lambda price: type(price).__name__)
def test_every_pricer_reads_back_what_it_writes(price: UsagePrice) -> None:
    pricer = WITH_TEST_MODEL.of(price)
    assert pricer.type == price.type
    fields = Obj(pricer.to_wire(price), "price", pricer.wire_fields)
    assert pricer.from_wire(fields) == price  # the wire writes plain decimals: equal, not the same digits
    assert repr(pricer.from_record(pricer.to_record(price))) == repr(price)  # the store keeps the digits

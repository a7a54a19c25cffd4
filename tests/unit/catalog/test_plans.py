"""PlanService: versions and the draft -> published -> archived lifecycle, every validation error's field."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest

from tests.unit.catalog.helpers import NOW, STARTER, World, card, expect, phases, published, usage
from tollway.billing.entitlements import EntitlementTemplate
from tollway.billing.plans import Phase
from tollway.billing.pricing.model import FlatPrice, Tier, TieredPrice, UsageTerms
from tollway.errors import ConflictError, NotFoundError, ValidationError


async def test_plan_versions_and_lifecycle(world: World) -> None:
    catalog = world.catalog
    v1 = await catalog.plans.create_plan(key="pro", name="Pro", currency="USD", billing_cadence="P1M", phases=STARTER)
    assert (v1.version, v1.status, v1.created_at) == (1, "draft", NOW)
    await expect(
        ConflictError,
        "key",
        catalog.plans.create_plan(key="pro", name="P", currency="USD", billing_cadence="P1M", phases=STARTER),
    )
    world.clock.advance(timedelta(hours=1))
    p1 = await catalog.plans.publish_plan(v1.id)
    assert (p1.status, p1.published_at) == ("published", NOW + timedelta(hours=1))
    await expect(ConflictError, "status", catalog.plans.publish_plan(v1.id))
    await expect(
        ConflictError, "status", catalog.plans.update_plan(v1.id, name="X", billing_cadence="P1M", phases=STARTER)
    )
    await expect(ConflictError, "status", catalog.plans.delete_plan(v1.id))
    v2 = await catalog.plans.create_plan(key="pro", name="Pro 2", currency="USD", billing_cadence="P1Y", phases=STARTER)
    assert v2.version == 2
    await expect(ConflictError, "status", catalog.plans.archive_plan(v2.id))
    edited = await catalog.plans.update_plan(
        v2.id, name="Pro two", billing_cadence="P1M", phases=STARTER, description="yearly no more"
    )
    assert (edited.name, edited.billing_cadence, edited.description) == ("Pro two", "P1M", "yearly no more")
    assert (await catalog.plans.plan("pro")).id == v1.id  # the published one
    assert (await catalog.plans.plan("pro", 2)).name == "Pro two"
    world.clock.advance(timedelta(hours=1))
    p2 = await catalog.plans.publish_plan(v2.id)
    old = await catalog.plans.plan(v1.id)
    assert (old.status, old.archived_at) == ("archived", NOW + timedelta(hours=2))
    assert (await catalog.plans.plan("pro")).id == p2.id
    assert [(p.version, p.status) for p in await catalog.plans.plans(key="pro")] == [(1, "archived"), (2, "published")]
    assert [p.version for p in await catalog.plans.plans(status="archived")] == [1]
    await expect(ValidationError, "status", catalog.plans.plans(status="live"))
    v3 = await catalog.plans.create_plan(key="pro", name="Pro 3", currency="USD", billing_cadence="P1M", phases=STARTER)
    assert (await catalog.plans.plan("pro")).id == p2.id
    await catalog.plans.delete_plan(v3.id)
    await expect(NotFoundError, "plan", catalog.plans.plan(v3.id))
    assert [p.version for p in await catalog.plans.plans(key="pro")] == [1, 2]
    archived = await catalog.plans.archive_plan(p2.id)
    assert archived.status == "archived"
    assert (await catalog.plans.plan("pro")).version == 2  # no published version: the latest
    v4 = await catalog.plans.create_plan(key="pro", name="Pro 4", currency="USD", billing_cadence="P1M", phases=STARTER)
    assert v4.version == 3


BAD_TIERS = TieredPrice("graduated", (Tier(up_to=Decimal(10)), Tier(up_to=Decimal(5)), Tier(up_to=None)))


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"key": "pro plan"}, "key"),
        ({"name": ""}, "name"),
        ({"currency": "usd"}, "currency"),
        ({"currency": "XYZ"}, "currency"),
        ({"billing_cadence": "1M"}, "billingCadence"),
        ({"billing_cadence": "PT1M"}, "billingCadence"),
        ({"phases": ()}, "phases"),
        ({"phases": phases(card("a", "nope", usage=usage("1")))}, "phases[0].rateCards[0].featureKey"),
        ({"phases": phases(card("a", "sso"), card("a", "input-tokens"))}, "phases[0].rateCards[1].key"),
        ({"phases": phases(card("a", "sso"), card("b", "sso"))}, "phases[0].rateCards[1].featureKey"),
        ({"phases": phases(card("ok"), card("bad key"))}, "phases[0].rateCards[1].key"),
        ({"phases": phases(card("a", usage=usage("1")))}, "phases[0].rateCards[0].featureKey"),
        ({"phases": phases(card("a", "sso", usage=usage("1")))}, "phases[0].rateCards[0].featureKey"),
        ({"phases": phases(card("a", "input-tokens", usage=usage("-1")))}, "phases[0].rateCards[0].price.amount"),
        (
            {"phases": phases(card("a", "input-tokens", usage=UsageTerms(BAD_TIERS)))},
            "phases[0].rateCards[0].price.tiers[1].upToAmount",
        ),
        (
            {"phases": phases(card("a", "input-tokens", usage=replace(usage("1"), discount_percentage=Decimal(101))))},
            "phases[0].rateCards[0].discounts.percentage.percentage",
        ),
        (
            {
                "phases": phases(
                    card(
                        "a",
                        "input-tokens",
                        usage=replace(usage("1"), minimum_amount=Decimal(5), maximum_amount=Decimal(2)),
                    )
                )
            },
            "phases[0].rateCards[0].price.minimumAmount",
        ),
        (
            {"phases": phases(card("a", "input-tokens", usage=usage("1"), flat=FlatPrice(Decimal(1))))},
            "phases[0].rateCards[0].price",
        ),
        ({"phases": phases(card("fee", flat=FlatPrice(Decimal("-5"))))}, "phases[0].rateCards[0].price.amount"),
        (
            {"phases": phases(card("fee", flat=FlatPrice(Decimal(5)), billing_cadence="monthly"))},
            "phases[0].rateCards[0].billingCadence",
        ),
        (
            {"phases": (Phase("trial", "Trial", (card("a", "sso"),)), Phase("main", "Main", (card("a", "sso"),)))},
            "phases[0].duration",
        ),
        (
            {"phases": (Phase("p", "P", (), "P14D"), Phase("p", "P", ()))},
            "phases[1].key",
        ),
        (
            {"phases": phases(card("e", entitlement=EntitlementTemplate("boolean")))},
            "phases[0].rateCards[0].entitlementTemplate",
        ),
        (
            {"phases": phases(card("e", "sso", entitlement=EntitlementTemplate("metered", limit=Decimal(5))))},
            "phases[0].rateCards[0].entitlementTemplate",
        ),
        (
            {"phases": phases(card("e", "input-tokens", entitlement=EntitlementTemplate("metered")))},
            "phases[0].rateCards[0].entitlementTemplate.issueAfterReset",
        ),
        (
            {
                "phases": phases(
                    card("e", "input-tokens", entitlement=EntitlementTemplate("metered", Decimal(1), usage_period="x"))
                )
            },
            "phases[0].rateCards[0].entitlementTemplate.usagePeriod",
        ),
        (
            {"phases": phases(card("e", "sso", entitlement=EntitlementTemplate("unlimited")))},  # type: ignore[arg-type]
            "phases[0].rateCards[0].entitlementTemplate.type",
        ),
        ({"metadata": {"when": NOW}}, "metadata"),
    ],
)
async def test_plan_validation(world: World, changes: dict[str, object], field: str) -> None:
    body: dict[str, object] = {
        "key": "pro",
        "name": "Pro",
        "currency": "USD",
        "billing_cadence": "P1M",
        "phases": STARTER,
    } | changes
    await expect(ValidationError, field, world.catalog.plans.create_plan(**body))  # type: ignore[arg-type]
    assert await world.catalog.plans.plans() == []


async def test_metered_entitlement_needs_a_sum_or_count_meter(world: World) -> None:
    await world.catalog.features.create_feature(key="visits", meter_slug="visitors")
    cards = phases(card("v", "visits", entitlement=EntitlementTemplate("metered", limit=Decimal(10))))
    error = await expect(
        ValidationError,
        "phases[0].rateCards[0].entitlementTemplate",
        world.catalog.plans.create_plan(key="p", name="P", currency="USD", billing_cadence="P1M", phases=cards),
    )
    assert "UNIQUE_COUNT" in error.message


async def test_publish_rechecks_features(world: World) -> None:
    plan = await world.catalog.plans.create_plan(
        key="pro", name="Pro", currency="USD", billing_cadence="P1M", phases=phases(card("sso", "sso"))
    )
    await world.catalog.features.archive_feature("sso")  # no published plan uses it yet
    await expect(ValidationError, "phases[0].rateCards[0].featureKey", world.catalog.plans.publish_plan(plan.id))
    assert (await world.catalog.plans.plan(plan.id)).status == "draft"


async def test_unknown_plans(world: World) -> None:
    await expect(NotFoundError, "plan", world.catalog.plans.plan("ghost"))
    await expect(NotFoundError, "plan", world.catalog.plans.publish_plan("ghost"))
    await published(world)
    await expect(NotFoundError, "plan", world.catalog.plans.plan("starter", 7))

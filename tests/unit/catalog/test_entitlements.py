"""EntitlementService: metered values hand-computed, hard and soft limits, usage periods, boolean and static
values, plan phases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tests.support.meter_events import token_event
from tests.unit.catalog.helpers import NOW, World, card, expect, metered_world, phases, published
from tollway.billing.entitlements import EntitlementTemplate, EntitlementValue
from tollway.billing.plans import Phase
from tollway.billing.pricing.model import FlatPrice
from tollway.errors import NotFoundError


async def test_metered_entitlement_value_hand_computed(world: World) -> None:
    await metered_world(world)
    value = await world.catalog.entitlements.entitlement_value("acme", "output-tokens")
    # 400 + 350 + 30 from 11-10 (start) to now; the 700 of 11-09 predates the subscription
    assert value == EntitlementValue(has_access=True, balance=Decimal(220), usage=Decimal(780), overage=Decimal(0))
    early = await world.catalog.entitlements.entitlement_value(
        "acme", "output-tokens", at=datetime(2026, 11, 15, tzinfo=UTC)
    )
    assert (early.usage, early.balance) == (Decimal(400), Decimal(600))
    await world.events.insert_events([token_event("t8", "acme-bot", NOW - timedelta(minutes=30), 250)])
    await world.events.roll_up()
    over = await world.catalog.entitlements.entitlement_value("acme", "output-tokens")
    assert over == EntitlementValue(has_access=False, balance=Decimal(0), usage=Decimal(1030), overage=Decimal(30))
    # next period: usage starts again from 12-01
    december = await world.catalog.entitlements.entitlement_value(
        "acme", "output-tokens", at=datetime(2026, 12, 2, tzinfo=UTC)
    )
    assert (december.usage, december.balance, december.has_access) == (Decimal(0), Decimal(1000), True)


async def test_usage_exactly_at_a_hard_limit_refuses_access(world: World) -> None:
    # docs/billing.md: a hard limit gives access "while usage is below it": none once usage equals the limit
    await metered_world(world)
    await world.events.insert_events([token_event("t8", "acme-bot", NOW - timedelta(minutes=30), 219)])
    await world.events.roll_up()
    below = await world.catalog.entitlements.entitlement_value("acme", "output-tokens")
    assert below == EntitlementValue(has_access=True, balance=Decimal(1), usage=Decimal(999), overage=Decimal(0))
    await world.events.insert_events([token_event("t9", "acme-bot", NOW - timedelta(minutes=20), 1)])
    await world.events.roll_up()
    at_limit = await world.catalog.entitlements.entitlement_value("acme", "output-tokens")
    # 400 + 350 + 30 + 219 + 1 = 1000 = the limit: no access, nothing left, nothing over
    assert at_limit == EntitlementValue(has_access=False, balance=Decimal(0), usage=Decimal(1000), overage=Decimal(0))


async def test_soft_limit_keeps_access(world: World) -> None:
    await metered_world(world, hard=False)
    await world.events.insert_events([token_event("t8", "acme-bot", NOW - timedelta(minutes=30), 250)])
    value = await world.catalog.entitlements.entitlement_value("acme", "output-tokens")
    assert value == EntitlementValue(has_access=True, balance=Decimal(0), usage=Decimal(1030), overage=Decimal(30))


async def test_usage_period_of_the_template(world: World) -> None:
    await metered_world(world, period="P1D")
    value = await world.catalog.entitlements.entitlement_value("acme", "output-tokens")
    assert (value.usage, value.balance) == (Decimal(30), Decimal(970))  # 11-23 00:00 to now


async def test_boolean_static_and_missing_entitlements(world: World) -> None:
    await metered_world(world)
    assert await world.catalog.entitlements.entitlement_value("acme", "sso") == EntitlementValue(has_access=True)
    static = await world.catalog.entitlements.entitlement_value("acme", "input-tokens")
    assert static == EntitlementValue(has_access=True, config={"models": ["a"]})
    await world.catalog.features.create_feature(key="extra")
    # an access-only feature (no meter) not in the plan: no access (OpenMeter's answer without an entitlement)
    assert await world.catalog.entitlements.entitlement_value("acme", "extra") == EntitlementValue(has_access=False)
    # usage not in the plan: access without a limit, until some plan sells the feature as a gate (boolean)
    await world.catalog.features.create_feature(key="cost", meter_slug="llm_cost")
    assert await world.catalog.entitlements.entitlement_value("acme", "cost") == EntitlementValue(has_access=True)
    gate = phases(card("cost", "cost", entitlement=EntitlementTemplate("boolean")))
    await published(world, "enterprise", gate)
    assert await world.catalog.entitlements.entitlement_value("acme", "cost") == EntitlementValue(has_access=False)
    before = await world.catalog.entitlements.entitlement_value("acme", "sso", at=datetime(2026, 11, 9, tzinfo=UTC))
    assert before == EntitlementValue(has_access=False)
    await world.catalog.customers.create_customer(key="idle", name="Idle")
    assert await world.catalog.entitlements.entitlement_value("idle", "sso") == EntitlementValue(has_access=False)
    await expect(NotFoundError, "feature", world.catalog.entitlements.entitlement_value("acme", "ghost"))
    await expect(NotFoundError, "customer", world.catalog.entitlements.entitlement_value("ghost", "sso"))


async def test_entitlements_follow_plan_phases(world: World) -> None:
    trial = Phase("trial", "Trial", (card("sso", "sso", entitlement=EntitlementTemplate("boolean")),), "P14D")
    main = Phase("main", "Main", (card("fee", flat=FlatPrice(Decimal(49))),))
    await published(world, "phased", (trial, main))
    await world.catalog.customers.create_customer(key="acme", name="Acme")
    await world.catalog.subscriptions.create_subscription(customer="acme", plan_key="phased")
    inside = await world.catalog.entitlements.entitlement_value("acme", "sso", at=NOW + timedelta(days=13, hours=23))
    after = await world.catalog.entitlements.entitlement_value("acme", "sso", at=NOW + timedelta(days=14))
    assert (inside.has_access, after.has_access) == (True, False)

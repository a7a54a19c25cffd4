"""The one access rule (tollway.billing.entitlements.feature_access) and the entitlement value built on it, over
the Starter 500K / Pro 5M / Enterprise unlimited catalog of docs/billing.md."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tests.support.meter_events import token_event
from tests.unit.catalog.helpers import NOW, World, card, phases, published, usage
from tollway.billing.entitlements import EntitlementTemplate, EntitlementValue, FeatureAccess, feature_access
from tollway.billing.pricing.model import FlatPrice

METERED = EntitlementTemplate("metered", limit=Decimal(1000), hard=True)


@pytest.mark.parametrize(
    ("subscribed", "entitlement", "priced", "has_meter", "gated", "expected"),
    [
        (False, METERED, True, True, False, FeatureAccess.NONE),  # no active subscription
        (True, METERED, True, True, False, FeatureAccess.ENTITLED),  # the plan's entitlement decides
        (True, EntitlementTemplate("boolean"), False, False, True, FeatureAccess.ENTITLED),
        (True, None, True, True, False, FeatureAccess.UNLIMITED),  # priced, no entitlement: unlimited
        (True, None, True, True, True, FeatureAccess.UNLIMITED),  # priced here though another plan gates it
        (True, None, False, True, False, FeatureAccess.UNLIMITED),  # usage nothing gates (not billed here)
        (True, None, False, True, True, FeatureAccess.NONE),  # gated elsewhere, not on this plan
        (True, None, False, False, False, FeatureAccess.NONE),  # access-only feature, not on this plan
    ],
)
def test_feature_access_rule(
    subscribed: bool,
    entitlement: EntitlementTemplate | None,
    priced: bool,
    has_meter: bool,
    gated: bool,
    expected: FeatureAccess,
) -> None:
    assert (
        feature_access(subscribed=subscribed, entitlement=entitlement, priced=priced, has_meter=has_meter, gated=gated)
        is expected
    )


def tier(limit: int) -> EntitlementTemplate:
    return EntitlementTemplate("metered", limit=Decimal(limit), hard=True)


async def test_starter_pro_enterprise_values() -> None:
    w = World()
    await w.metering.sync_meters([])
    await w.catalog.features.create_feature(key="output-tokens", meter_slug="llm_tokens", filters={"type": ["output"]})
    await w.catalog.features.create_feature(key="reasoning-models", meter_slug="llm_tokens", filters={"model": ["o1"]})
    await w.catalog.features.create_feature(key="provider-cost", meter_slug="llm_cost")
    await w.catalog.features.create_feature(key="sso")
    price = usage("0.00001")
    sso = card("sso", "sso", entitlement=EntitlementTemplate("boolean"))
    reasoning = card("reasoning", "reasoning-models", entitlement=EntitlementTemplate("boolean"))
    await published(w, "starter", phases(card("out", "output-tokens", usage=price, entitlement=tier(500_000))))
    await published(w, "pro", phases(card("out", "output-tokens", usage=price, entitlement=tier(5_000_000)), sso))
    await published(w, "enterprise", phases(card("out", "output-tokens", usage=price), sso, reasoning))
    support = card("support", "sso", flat=FlatPrice(Decimal(20)))  # sold for a flat fee, no entitlement
    await published(w, "flat", phases(card("fee", flat=FlatPrice(Decimal(99))), support))
    start = datetime(2026, 11, 1, tzinfo=UTC)
    for n, plan in enumerate(["starter", "pro", "enterprise", "flat"]):
        await w.catalog.customers.create_customer(key=plan, name=plan.title(), subjects=[f"{plan}-app"])
        await w.catalog.subscriptions.create_subscription(customer=plan, plan_key=plan, active_from=start)
        await w.events.insert_events([token_event(f"t{n}", f"{plan}-app", NOW - timedelta(days=1), 600_000)])
    await w.catalog.customers.create_customer(key="none", name="No plan", subjects=["none-app"])

    async def value(customer: str, feature: str) -> EntitlementValue:
        return await w.catalog.entitlements.entitlement_value(customer, feature)

    assert await value("starter", "output-tokens") == EntitlementValue(
        has_access=False, balance=Decimal(0), usage=Decimal(600_000), overage=Decimal(100_000)
    )
    assert await value("pro", "output-tokens") == EntitlementValue(
        has_access=True, balance=Decimal(4_400_000), usage=Decimal(600_000), overage=Decimal(0)
    )
    assert await value("enterprise", "output-tokens") == EntitlementValue(has_access=True)  # unlimited
    # access-only and gated features: only the plans that grant them
    assert [(await value(c, "sso")).has_access for c in ("starter", "pro", "enterprise")] == [False, True, True]
    assert [(await value(c, "reasoning-models")).has_access for c in ("starter", "pro", "enterprise")] == [
        False,
        False,
        True,
    ]
    # usage no plan gates or prices: the gateway lets it through, and so does the value
    assert await value("starter", "provider-cost") == EntitlementValue(has_access=True)
    assert await value("flat", "output-tokens") == EntitlementValue(has_access=True)
    assert await value("flat", "sso") == EntitlementValue(has_access=True)  # a flat price reads as access too
    assert await value("none", "output-tokens") == EntitlementValue(has_access=False)  # no subscription

"""CustomerContexts: kept catalog reads follow writes made through another process's services."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from tests.unit.catalog.helpers import World, metered_world
from tollway.billing.entitlements import EntitlementValue
from tollway.errors import NotFoundError
from tollway.wiring.catalog import build_catalog


async def test_kept_catalog_reads_follow_writes_made_through_another_service(world: World) -> None:
    """A second service on the same stores stands for another worker process: it keeps the customer's
    catalog rows between values, and still sees the first one's writes on its very next read."""
    await metered_world(world)
    other = build_catalog(world.store, world.metering, world.clock)
    assert (await other.entitlements.entitlement_value("acme", "output-tokens")).usage == Decimal(780)
    acme = await world.catalog.customers.customer("acme")
    # acme-bot's 350 no longer counts
    await world.catalog.customers.update_customer(replace(acme, subjects=("acme-corp",)))
    assert (await other.entitlements.entitlement_value("acme", "output-tokens")).usage == Decimal(430)
    [subscription] = await world.catalog.subscriptions.subscriptions(customer="acme")
    await world.catalog.subscriptions.cancel_subscription(subscription.id)
    assert await other.entitlements.entitlement_value("acme", "output-tokens") == EntitlementValue(has_access=False)
    await world.catalog.customers.delete_customer("acme")
    with pytest.raises(NotFoundError):
        await other.entitlements.entitlement_value("acme", "output-tokens")

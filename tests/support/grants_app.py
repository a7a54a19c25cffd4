"""A management app with unit grants for the openmeter SDK tests: plan `starter` (output tokens at $0.00001, a hard
limit of 1000 a month) subscribed by customer `acme` (subject `acme-agent`) since Dec 1, 1200 output tokens used on
Dec 5, the clock at Dec 15."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

from fastapi import FastAPI

from tests.support.meter_events import token_event
from tollway.adapters.memory.catalog import MemoryCatalogStore
from tollway.adapters.memory.store import MemoryEventStore
from tollway.adapters.memory.unit_grants import MemoryUnitGrantStore
from tollway.api.app import create_management_app
from tollway.billing.catalog import Catalog
from tollway.billing.entitlements import EntitlementTemplate
from tollway.billing.plans import Phase, RateCard
from tollway.billing.pricing.model import UnitPrice, UsageTerms
from tollway.clock import FrozenClock
from tollway.metering.service import MeteringService
from tollway.wiring.catalog import build_catalog, build_unit_grants

TOKEN = "sdk-grants-token"
DEC_1 = datetime(2026, 12, 1, tzinfo=UTC)
NOW = datetime(2026, 12, 15, tzinfo=UTC)


async def setup(clock: FrozenClock) -> tuple[MeteringService, Catalog, MemoryUnitGrantStore]:
    events = MemoryEventStore(clock)
    metering = MeteringService(events, clock)
    await metering.sync_meters([])
    grants = MemoryUnitGrantStore()
    catalog = build_catalog(MemoryCatalogStore(), metering, clock, unit_grants=grants)
    await catalog.features.create_feature(key="output-tokens", meter_slug="llm_tokens", filters={"type": ["output"]})
    card = RateCard(
        key="output",
        name="Output tokens",
        feature_key="output-tokens",
        usage=UsageTerms(UnitPrice(Decimal("0.00001"))),
        billing_cadence="P1M",
        entitlement=EntitlementTemplate("metered", limit=Decimal(1000), hard=True),
    )
    phases = (Phase(key="default", name="Default", rate_cards=(card,)),)
    plan = await catalog.plans.create_plan(
        key="starter", name="Starter", currency="USD", billing_cadence="P1M", phases=phases
    )
    await catalog.plans.publish_plan(plan.id)
    await catalog.customers.create_customer(key="acme", name="Acme", subjects=["acme-agent"])
    await catalog.subscriptions.create_subscription(
        customer="acme", plan_key="starter", active_from=DEC_1, billing_anchor=DEC_1
    )
    await metering.insert([token_event("e1", "acme-agent", datetime(2026, 12, 5, tzinfo=UTC), 1200)])
    await events.roll_up()
    return metering, catalog, grants


def grants_app() -> FastAPI:
    """The management app over `setup`'s state: 1200 output tokens on Dec 5, limit 1000, now Dec 15."""
    clock = FrozenClock(NOW)
    metering, catalog, grants = asyncio.run(setup(clock))
    return create_management_app(
        metering=metering,
        admin_token=TOKEN,
        catalog=catalog,
        unit_grants=build_unit_grants(catalog, grants),
        api_docs="open",
    )

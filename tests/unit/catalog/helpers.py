"""What the catalog service tests share: the world (memory stores, frozen clock, the catalog's services), rate card and
plan builders, the expected-error check, token events and a metered subscription."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tests.support.meter_events import token_event
from tollway.adapters.memory.catalog import MemoryCatalogStore
from tollway.adapters.memory.store import MemoryEventStore
from tollway.billing.entitlements import EntitlementTemplate
from tollway.billing.plans import Phase, RateCard
from tollway.billing.pricing.model import UnitPrice, UsageTerms
from tollway.clock import FrozenClock
from tollway.errors import DomainError
from tollway.metering.service import MeteringService
from tollway.wiring.catalog import build_catalog

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


class World:
    def __init__(self) -> None:
        self.clock = FrozenClock(NOW)
        self.events = MemoryEventStore(self.clock)
        self.store = MemoryCatalogStore()
        self.metering = MeteringService(self.events, self.clock)
        self.catalog = build_catalog(self.store, self.metering, self.clock)


def card(key: str, feature: str | None = None, **kwargs: object) -> RateCard:
    return RateCard(key=key, name=key.title(), feature_key=feature, **kwargs)  # type: ignore[arg-type]


def usage(amount: str) -> UsageTerms:
    return UsageTerms(price=UnitPrice(Decimal(amount)))


def phases(*cards: RateCard) -> tuple[Phase, ...]:
    return (Phase(key="default", name="Default", rate_cards=cards),)


STARTER = phases(
    card("input-tokens", "input-tokens", usage=usage("0.000003"), billing_cadence="P1M"),
    card("output-tokens", "output-tokens", usage=usage("0.00001"), billing_cadence="P1M"),
)


async def published(w: World, key: str = "starter", cards: tuple[Phase, ...] = STARTER, cadence: str = "P1M") -> str:
    plan = await w.catalog.plans.create_plan(
        key=key, name=key.title(), currency="USD", billing_cadence=cadence, phases=cards
    )
    return (await w.catalog.plans.publish_plan(plan.id)).id


async def expect(error: type[DomainError], field: str, work: object) -> DomainError:
    with pytest.raises(error) as caught:
        await work  # type: ignore[misc]
    assert caught.value.field == field, caught.value.message
    return caught.value


def entitled(hard: bool, period: str | None = None) -> tuple[Phase, ...]:
    return phases(
        card(
            "output-tokens",
            "output-tokens",
            usage=usage("0.00001"),
            entitlement=EntitlementTemplate("metered", limit=Decimal(1000), hard=hard, usage_period=period),
        ),
        card("sso", "sso", entitlement=EntitlementTemplate("boolean")),
        card("input-tokens", "input-tokens", entitlement=EntitlementTemplate("static", config={"models": ["a"]})),
    )


async def metered_world(world: World, *, hard: bool = True, period: str | None = None) -> None:
    await published(world, "metered", entitled(hard, period))
    await world.catalog.customers.create_customer(key="acme", name="Acme", subjects=["acme-corp", "acme-bot"])
    await world.catalog.subscriptions.create_subscription(
        customer="acme",
        plan_key="metered",
        active_from=datetime(2026, 11, 10, tzinfo=UTC),
        billing_anchor=datetime(2026, 11, 1, tzinfo=UTC),
    )
    day = datetime(2026, 11, 1, tzinfo=UTC)
    await world.events.insert_events(
        [
            token_event("t1", "acme-corp", day + timedelta(days=8), 700),  # 11-09: before the subscription starts
            token_event("t2", "acme-corp", day + timedelta(days=11), 400),  # 11-12
            token_event("t3", "acme-bot", day + timedelta(days=19, hours=3), 350),  # 11-20
            token_event("t4", "acme-corp", day + timedelta(days=19), 5000, kind="input"),  # another feature
            token_event("t5", "globex", day + timedelta(days=14), 999),  # another customer
            token_event("t6", "acme-corp", datetime(2026, 10, 31, tzinfo=UTC), 50),  # previous period
            token_event("t7", "acme-corp", NOW - timedelta(hours=1), 30),  # 11-23 11:00
        ]
    )
    await world.events.roll_up()

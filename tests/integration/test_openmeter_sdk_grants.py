"""OpenMeter's unit grants through the openmeter SDK (1.0.0b236) against Tollway's management app: the SDK
creates grants on a customer's metered entitlement (its v2 customer path) and on a subject (v1), lists them,
reads the entitlement value (totalAvailableGrantAmount, balance, hasAccess counting grants), the burn-down
history with grantUsages, and voids a grant with DELETE /api/v1/grants/{id}. Values worked out by hand."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import openmeter
import pytest
from fastapi import FastAPI

from tests.support.meter_events import token_event
from tests.support.served import served
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


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with served(grants_app()) as url:
        yield url


@pytest.fixture
def client(base_url: str) -> Any:
    return openmeter.Client(endpoint=base_url, token=TOKEN)


def test_grants_through_the_openmeter_sdk(client: Any) -> None:
    first = client.customer_entitlement_v2.create_customer_entitlement_grant(
        "acme",
        "output-tokens",
        {"amount": 500, "priority": 1, "effectiveAt": "2026-12-01T00:00:00Z", "metadata": {"reason": "bonus"}},
    )
    assert (first.amount, first.priority, first.metadata) == (500, 1, {"reason": "bonus"})
    second = client.customer_entitlement_v2.create_customer_entitlement_grant(
        "acme",
        "output-tokens",
        {
            "amount": 300,
            "priority": 2,
            "effectiveAt": "2026-12-01T00:00:00Z",
            "expiration": {"duration": "MONTH", "count": 1},
        },
    )
    assert second.expires_at == datetime(2027, 1, 1, tzinfo=UTC)
    listed = client.customer_entitlement_v2.get_grants("acme", "output-tokens")
    assert sorted(g.id for g in listed.items_property) == sorted([first.id, second.id])

    value = client.customer_entitlement.get_customer_entitlement_value("acme", "output-tokens")
    # 1200 used: the allowance's 1000, then 200 of the priority-1 grant; left 300 + 300
    assert (value.has_access, value.usage, value.balance, value.overage) == (True, 1200, 600, 0)
    assert value.total_available_grant_amount == 800  # 500 + 300

    history = client.customer_entitlement_v2.get_customer_entitlement_history(
        "acme", "output-tokens", window_size="DAY"
    )
    assert len(history.windowed_history) == 14  # December 1 to 15
    assert [(w.usage, w.balance_at_start) for w in history.windowed_history[3:6]] == [(0, 1800), (1200, 1800), (0, 600)]
    (segment,) = history.burndown_history
    assert (segment.usage, segment.balance_at_start, segment.balance_at_end) == (1200, 1800, 600)
    assert [(u.grant_id, u.usage) for u in segment.grant_usages] == [(first.id, 200)]

    client.grants.delete(first.id)
    after = client.customer_entitlement.get_customer_entitlement_value("acme", "output-tokens")
    # voided now, not retroactively (OpenMeter): the 200 it paid on December 5 stay paid by it, its 300 left
    # are gone; the other grant's 300 remain. Available from grants: 200 + 300
    assert (after.has_access, after.balance, after.total_available_grant_amount) == (True, 300, 500)


def test_the_subject_route_and_bad_grants(base_url: str) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    base = base_url + "/api/v1"
    with httpx.Client(base_url=base, headers=auth) as http:
        made = http.post(
            "/subjects/acme-agent/entitlements/output-tokens/grants",
            json={"amount": "50", "effectiveAt": "2026-12-10T00:00:00Z", "recurrence": {"interval": "WEEK"}},
        )
        assert made.status_code == 201
        assert (made.json()["amount"], made.json()["recurrence"]) == (
            "50",
            {"interval": "P1W", "anchor": "2026-12-10T00:00:00Z"},
        )
        listed = http.get("/subjects/acme-agent/entitlements/output-tokens/grants").json()
        assert made.json()["id"] in [g["id"] for g in listed]
        for body, field in [
            ({"amount": "0", "effectiveAt": "2026-12-10T00:00:00Z"}, "amount"),
            ({"amount": "5"}, "effectiveAt"),
            ({"amount": "5", "effectiveAt": "2026-12-10T00:00:00Z", "priority": 300}, "priority"),
            (
                {"amount": "5", "effectiveAt": "2026-12-10T00:00:00Z", "expiration": {"duration": "AGE", "count": 1}},
                "expiration.duration",
            ),
            (
                {"amount": "5", "effectiveAt": "2026-12-10T00:00:00Z", "recurrence": {"interval": "sometimes"}},
                "recurrence.interval",
            ),
        ]:
            refused = http.post("/customers/acme/entitlements/output-tokens/grants", json=body)
            assert refused.status_code == 400, body
            assert refused.json()["field"] == field
        assert http.post("/subjects/nobody/entitlements/output-tokens/grants", json={}).status_code == 404
        assert http.delete("/grants/01NOPE").status_code == 404

"""/api/v1/customers/{customerIdOrKey}/credits over HTTP (in-process ASGI, memory stores): grants created,
repeated by key (200, same grant), refused with another body under the same key (409 naming key), voided;
the balance (live, settled, pending) and the ledger as decimal strings; bad input -> 4xx naming the field,
and nothing stored."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest

from tests.support.meter_events import token_event
from tollway.adapters.memory.catalog import MemoryCatalogStore
from tollway.adapters.memory.credits import MemoryCreditStore
from tollway.adapters.memory.store import MemoryEventStore
from tollway.api.app import create_management_app
from tollway.billing.credit_accounts.service import CreditService
from tollway.billing.invoicing.preview import InvoicePreview
from tollway.billing.invoicing.usage import MeteringUsageReader
from tollway.billing.plans import Phase, RateCard
from tollway.billing.pricing.model import UnitPrice, UsageTerms
from tollway.clock import FrozenClock
from tollway.metering.service import MeteringService
from tollway.wiring.catalog import build_catalog

AUTH = {"Authorization": "Bearer admin-secret"}
DEC_1 = datetime(2026, 12, 1, tzinfo=UTC)
BASE = "/api/v1/customers/acme/credits"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    clock = FrozenClock(DEC_1)
    events = MemoryEventStore(clock)
    metering = MeteringService(events, clock)
    await metering.sync_meters([])
    catalog_store = MemoryCatalogStore()
    catalog = build_catalog(catalog_store, metering, clock)
    await catalog.features.create_feature(key="output-tokens", meter_slug="llm_tokens", filters={"type": ["output"]})
    card = RateCard(
        key="output",
        name="Output",
        feature_key="output-tokens",
        usage=UsageTerms(UnitPrice(Decimal("0.00001"))),
        billing_cadence="P1M",
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
    clock.set(datetime(2026, 12, 10, tzinfo=UTC))
    await metering.insert([token_event("e1", "acme-agent", datetime(2026, 12, 9, tzinfo=UTC), 450_000)])
    await events.roll_up()
    store = MemoryCreditStore()
    preview = InvoicePreview(catalog.contexts, MeteringUsageReader(metering), clock, credits=store)
    credits = CreditService(store, catalog_store, clock, preview=preview)
    app = create_management_app(metering=metering, admin_token="admin-secret", credits=credits)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tollway") as http:
        yield http


async def test_grants_balance_and_ledger(client: httpx.AsyncClient) -> None:
    body = {
        "name": "December",
        "amount": "20",
        "expiresAfter": "P1M",
        "key": "dec",
        "effectiveAt": "2026-12-01T00:00:00Z",
    }
    created = await client.post(f"{BASE}/grants", json=body, headers=AUTH)
    assert created.status_code == 201
    grant = created.json()
    assert {k: grant[k] for k in ("amount", "currency", "status", "priority", "expiresAt", "fundingMethod")} == {
        "amount": "20",
        "currency": "USD",
        "status": "active",
        "priority": 1,
        "expiresAt": "2027-01-01T00:00:00Z",
        "fundingMethod": "none",
    }
    again = await client.post(f"{BASE}/grants", json=body, headers=AUTH)
    assert again.status_code == 200
    assert again.json()["id"] == grant["id"]
    clash = await client.post(f"{BASE}/grants", json={**body, "amount": "25"}, headers=AUTH)
    assert clash.status_code == 409
    assert clash.json()["field"] == "key"
    bought = {"name": "Top-up", "amount": "10.50", "fundingMethod": "invoice", "price": "9"}
    assert (await client.post(f"{BASE}/grants", json=bought, headers=AUTH)).status_code == 201
    # 450,000 tokens x $0.00001 = $4.50 so far: live $20 - $4.50 = $15.50; $10.50 bought, not paid
    balance = (await client.get(f"{BASE}/balance", headers=AUTH)).json()
    assert {k: balance[k] for k in ("currency", "live", "settled", "pending")} == {
        "currency": "USD",
        "live": "15.5",
        "settled": "20",
        "pending": "10.5",
    }
    voided = await client.post(f"{BASE}/grants/{grant['id']}/void", headers=AUTH)
    assert voided.json()["status"] == "voided"
    ledger = (await client.get(f"{BASE}/transactions", headers=AUTH)).json()
    assert [(r["type"], r["amount"], r["balanceBefore"], r["balanceAfter"]) for r in ledger] == [
        ("funded", "20", "0", "20"),
        ("voided", "-20", "20", "0"),
    ]
    assert len((await client.get(f"{BASE}/grants", headers=AUTH)).json()) == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "amount": "0.001"}, "amount"),
        ({"name": "x", "amount": True}, "amount"),
        ({"name": "x", "amount": "-1"}, "amount"),
        ({"name": "x", "amount": "1", "priority": 0}, "priority"),
        ({"name": "x", "amount": "1", "expiresAfter": "1 month"}, "expiresAfter"),
        ({"name": "x", "amount": "1", "fundingMethod": "card"}, "fundingMethod"),
        ({"name": "x", "amount": "1", "currency": "usd"}, "currency"),
        ({"name": "x", "amount": "1", "price": "2"}, "price"),
        ({"name": "x", "amount": "1", "filters": {"features": []}}, "filters.features"),
        ({"amount": "1"}, "name"),
        ({"name": "x", "amount": "1", "colour": "red"}, "colour"),
    ],
)
async def test_bad_grants_are_refused_naming_the_field(
    client: httpx.AsyncClient, body: dict[str, object], field: str
) -> None:
    response = await client.post(f"{BASE}/grants", json=body, headers=AUTH)
    assert response.status_code == 400
    assert response.json()["field"] == field
    assert (await client.get(f"{BASE}/grants", headers=AUTH)).json() == []


async def test_unknown_customer_and_grant_are_404(client: httpx.AsyncClient) -> None:
    missing = await client.get("/api/v1/customers/nobody/credits/balance", headers=AUTH)
    assert missing.status_code == 404
    assert (await client.post(f"{BASE}/grants/01NOPE/void", headers=AUTH)).status_code == 404

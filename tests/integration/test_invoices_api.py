"""/api/v1/invoices over HTTP (in-process ASGI, invoices in SQLite): list with filters and pages, get, issue,
finalize, void, mark-uncollectible, mark-paid, OpenMeter's /api/v1/billing/invoices; bad input -> a 4xx
problem naming the field, and nothing changes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests.support.meter_events import token_event
from tollway.adapters.memory.catalog import MemoryCatalogStore
from tollway.adapters.memory.store import MemoryEventStore
from tollway.adapters.sql.engine import create_sql_engine
from tollway.adapters.sql.invoices import SqlInvoiceStore
from tollway.adapters.sql.migrate import upgrade
from tollway.api.app import create_management_app
from tollway.billing.invoicing.close import CloseSettings, PeriodCloser
from tollway.billing.invoicing.ports import STRIPE_SYNC, STRIPE_VOID
from tollway.billing.invoicing.service import InvoiceService
from tollway.billing.invoicing.usage import MeteringUsageReader
from tollway.billing.plans import Phase, RateCard
from tollway.billing.pricing.model import FlatPrice, UnitPrice, UsageTerms
from tollway.clock import FrozenClock
from tollway.metering.service import MeteringService
from tollway.wiring.catalog import build_catalog

TOKEN = "admin-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
OCT = datetime(2026, 10, 1, tzinfo=UTC)
NOV = datetime(2026, 11, 1, tzinfo=UTC)


@dataclass
class World:
    clock: FrozenClock
    store: SqlInvoiceStore
    client: httpx.AsyncClient
    opening_id: str
    october_id: str


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    clock = FrozenClock(datetime(2026, 9, 20, tzinfo=UTC))
    events = MemoryEventStore(clock)
    metering = MeteringService(events, clock)
    await metering.sync_meters([])
    catalog_store = MemoryCatalogStore()
    catalog = build_catalog(catalog_store, metering, clock)
    await catalog.features.create_feature(key="output-tokens", meter_slug="llm_tokens", filters={"type": ["output"]})
    cards = (
        RateCard(key="platform", name="Platform fee", flat=FlatPrice(Decimal("30")), billing_cadence="P1M"),
        RateCard(
            key="output",
            name="Output tokens",
            feature_key="output-tokens",
            usage=UsageTerms(UnitPrice(Decimal("0.00001"))),
            billing_cadence="P1M",
        ),
    )
    plan = await catalog.plans.create_plan(
        key="basic", name="Basic", currency="USD", billing_cadence="P1M", phases=(Phase("default", "Default", cards),)
    )
    await catalog.plans.publish_plan(plan.id)
    await catalog.customers.create_customer(key="acme", name="Acme", subjects=["acme-app"])
    await catalog.customers.create_customer(key="globex", name="Globex", subjects=["globex-app"])
    await catalog.subscriptions.create_subscription(customer="acme", plan_key="basic", active_from=OCT)
    await metering.insert([token_event("e1", "acme-app", datetime(2026, 10, 9, tzinfo=UTC), 1_234_567)])

    engine = create_sql_engine(f"sqlite:///{tmp_path / 'api.db'}")
    await asyncio.to_thread(upgrade, engine)
    store = SqlInvoiceStore(engine, clock)
    clock.set(NOV + timedelta(hours=2))
    closer = PeriodCloser(
        store=store,
        catalog=catalog_store,
        reader=MeteringUsageReader(metering),
        clock=clock,
        settings=CloseSettings(auto_issue=False),
    )
    opening, october = (await closer.run_once()).created
    service = InvoiceService(store, catalog_store, clock, due=timedelta(days=14), stripe=True)
    app = create_management_app(metering=metering, admin_token=TOKEN, invoices=service)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tollway") as client:
        yield World(clock, store, client, opening.id, october.id)
    engine.dispose()


async def test_list_filters_and_pages(world: World) -> None:
    listed = await world.client.get("/api/v1/invoices", params={"customer": "acme"}, headers=AUTH)
    assert listed.status_code == 200
    body = listed.json()
    assert (body["totalCount"], body["page"], body["pageSize"]) == (2, 1, 100)
    # both were created at the same instant: their order among themselves is the id's
    ids = [i["id"] for i in body["items"]]
    assert sorted(ids) == sorted([world.opening_id, world.october_id])
    october = body["items"][ids.index(world.october_id)]
    assert (october["status"], october["number"], october["currency"]) == ("draft", None, "USD")
    # 1,234,567 x 0.00001 = 12.34567 -> 12.35; November's fee in advance 30.00 -> 42.35
    assert october["totalMinor"] == 4235
    assert [line["amountMinor"] for line in october["lines"]] == [1235, 3000]
    assert october["lines"][0]["quantity"] == "1234567"
    page = await world.client.get("/api/v1/invoices", params={"page": "2", "pageSize": "1"}, headers=AUTH)
    assert [i["id"] for i in page.json()["items"]] == ids[1:]
    empty = await world.client.get("/api/v1/invoices", params={"customer": "globex"}, headers=AUTH)
    assert empty.json()["items"] == []
    drafts = await world.client.get("/api/v1/billing/invoices", params={"statuses": "draft"}, headers=AUTH)
    assert drafts.json()["totalCount"] == 2


@pytest.mark.parametrize(
    ("params", "status", "field"),
    [
        ({"status": "open"}, 400, "status"),
        ({"customer": "nobody"}, 404, "customer"),
        ({"pageSize": "0"}, 400, "pageSize"),
        ({"pageSize": "5000"}, 400, "pageSize"),
        ({"page": "x"}, 400, "page"),
    ],
)
async def test_bad_list_parameters_name_the_field(
    world: World, params: dict[str, str], status: int, field: str
) -> None:
    response = await world.client.get("/api/v1/invoices", params=params, headers=AUTH)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["field"] == field


async def test_issue_assigns_numbers_and_transitions_follow_the_lifecycle(world: World) -> None:
    issued = await world.client.post(f"/api/v1/invoices/{world.opening_id}/issue", headers=AUTH)
    assert issued.status_code == 200
    body = issued.json()
    assert (body["status"], body["number"]) == ("issued", "TW-2026-000001")
    assert body["issuedAt"] == "2026-11-01T02:00:00Z"
    assert body["dueAt"] == "2026-11-15T02:00:00Z"
    assert [o.kind for o in await world.store.get_outbox(world.opening_id)] == [STRIPE_SYNC]
    again = await world.client.post(f"/api/v1/invoices/{world.opening_id}/issue", headers=AUTH)
    assert again.status_code == 409
    assert again.json()["field"] == "status"

    refused = await world.client.post(f"/api/v1/invoices/{world.october_id}/mark-paid", headers=AUTH)
    assert refused.status_code == 409
    got = await world.client.get(f"/api/v1/invoices/{world.october_id}", headers=AUTH)
    assert (got.json()["status"], got.json()["paidAt"]) == ("draft", None)  # unchanged
    finalized = await world.client.post(f"/api/v1/invoices/{world.october_id}/finalize", headers=AUTH)
    assert finalized.json()["number"] == "TW-2026-000002"

    world.clock.advance(timedelta(days=20))
    bad = await world.client.post(f"/api/v1/invoices/{world.october_id}/mark-uncollectible", headers=AUTH)
    assert bad.json()["status"] == "uncollectible"
    paid = await world.client.post(f"/api/v1/invoices/{world.october_id}/mark-paid", headers=AUTH)
    assert (paid.json()["status"], paid.json()["paidAt"]) == ("paid", "2026-11-21T02:00:00Z")
    assert (await world.client.post(f"/api/v1/invoices/{world.october_id}/void", headers=AUTH)).status_code == 409

    voided = await world.client.post(f"/api/v1/billing/invoices/{world.opening_id}/void", headers=AUTH)
    # OpenMeter's paths speak its InvoiceStatus enum (voided); Tollway's own keeps Stripe's spelling (void)
    assert (voided.json()["status"], voided.json()["number"]) == ("voided", "TW-2026-000001")
    own = await world.client.get(f"/api/v1/invoices/{world.opening_id}", headers=AUTH)
    assert own.json()["status"] == "void"
    listed = await world.client.get("/api/v1/billing/invoices", params={"statuses": "voided"}, headers=AUTH)
    assert [(i["id"], i["status"]) for i in listed.json()["items"]] == [(world.opening_id, "voided")]
    assert [o.kind for o in await world.store.get_outbox(world.opening_id)] == [STRIPE_SYNC, STRIPE_VOID]
    openmeter = await world.client.get(f"/api/v1/billing/invoices/{world.opening_id}", headers=AUTH)
    assert openmeter.json()["voidedAt"] == "2026-11-21T02:00:00Z"


async def test_unknown_invoices_and_missing_token(world: World) -> None:
    for method, path in (("GET", "/api/v1/invoices/nope"), ("POST", "/api/v1/invoices/nope/issue")):
        response = await world.client.request(method, path, headers=AUTH)
        assert response.status_code == 404
        assert response.json()["field"] == "id"
    assert (await world.client.get("/api/v1/invoices")).status_code == 401
    assert (await world.client.post(f"/api/v1/invoices/{world.october_id}/issue")).status_code == 401
    still = await world.client.get(f"/api/v1/invoices/{world.october_id}", headers=AUTH)
    assert still.json()["status"] == "draft"

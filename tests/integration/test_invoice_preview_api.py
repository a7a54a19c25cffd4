"""GET /api/v1/invoices/preview (and OpenMeter's simulate route) over HTTP, usage read from a real database
(SQLite and PostgreSQL) through meter rollups. Expected amounts are computed by hand in the comments."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.databases import database_url
from tollway.adapters.memory.catalog import MemoryCatalogStore
from tollway.adapters.sql.engine import create_sql_engine
from tollway.adapters.sql.migrate import upgrade
from tollway.adapters.sql.store import SqlEventStore
from tollway.api.app import create_management_app
from tollway.billing.catalog import Catalog
from tollway.billing.invoicing.preview import InvoicePreview
from tollway.billing.invoicing.usage import MeteringUsageReader
from tollway.billing.plans import Phase, RateCard
from tollway.billing.pricing.model import FlatPrice, Tier, TieredPrice, UnitPrice, UsageTerms
from tollway.clock import FrozenClock
from tollway.metering.service import MeteringService
from tollway.wiring.catalog import build_catalog

TOKEN = "admin-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
D = Decimal


def at(day: int, month: int = 3, hour: int = 0) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


def tokens(n: int, day: int, token_type: str, model: str, subject: str = "acme-corp") -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"{subject}-{day}-{token_type}-{model}-{n}",
        "source": "test",
        "type": "llm.tokens",
        "subject": subject,
        "time": at(day).isoformat(),
        "data": {"tokens": n, "type": token_type, "model": model, "provider": "openai", "status_code": 200},
    }


@dataclass
class World:
    clock: FrozenClock
    store: SqlEventStore
    metering: MeteringService
    catalog: Catalog
    client: httpx.AsyncClient


@pytest.fixture(params=["sqlite", "postgresql"])
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[World]:
    url = database_url(request, tmp_path, "preview.db")
    clock = FrozenClock(at(15, 4))  # events of March are all in the past
    store = SqlEventStore(create_sql_engine(url), clock)
    upgrade(store.engine)
    metering = MeteringService(store, clock)
    await metering.sync_meters([])
    catalog = build_catalog(MemoryCatalogStore(), metering, clock)
    await catalog.features.create_feature(
        key="input-tokens", name="input tokens", meter_slug="llm_tokens", filters={"type": ["input"]}
    )
    await catalog.features.create_feature(
        key="output-tokens", name="output tokens", meter_slug="llm_tokens", filters={"type": ["output"]}
    )
    graduated = TieredPrice("graduated", (Tier(D(1000), D("0.01")), Tier(None, D("0.005"))))
    plan = await catalog.plans.create_plan(
        key="pro",
        name="Pro",
        currency="USD",
        billing_cadence="P1M",
        phases=(
            Phase(
                key="default",
                name="Default",
                rate_cards=(
                    RateCard(key="platform-fee", name="Platform fee", flat=FlatPrice(D(49)), billing_cadence="P1M"),
                    RateCard(
                        key="output-tokens",
                        name="Output tokens",
                        feature_key="output-tokens",
                        usage=UsageTerms(graduated, free_quantity=D(100)),
                        billing_cadence="P1M",
                    ),
                    RateCard(
                        key="input-tokens",
                        name="Input tokens",
                        feature_key="input-tokens",
                        usage=UsageTerms(UnitPrice(D("0.002"))),
                        billing_cadence="P1M",
                    ),
                ),
            ),
        ),
    )
    await catalog.plans.publish_plan(plan.id)
    await catalog.customers.create_customer(key="acme", name="Acme", subjects=["acme-corp"])
    await catalog.customers.create_customer(key="idle", name="Idle")
    await catalog.subscriptions.create_subscription(
        customer="acme", plan_key="pro", active_from=at(11), billing_anchor=at(1)
    )
    await metering.ingest(
        [
            tokens(5000, 5, "output", "gpt-4o"),  # before the subscription starts: not billed
            tokens(800, 12, "output", "gpt-4o"),
            tokens(700, 15, "output", "gpt-4o-mini"),
            tokens(1000, 15, "input", "gpt-4o"),
            tokens(999, 16, "output", "gpt-4o", subject="someone-else"),  # another customer's
        ]
    )
    await store.roll_up()  # these come from rollups, the next from the raw tail
    await metering.ingest([tokens(300, 25, "output", "gpt-4o")])
    app = create_management_app(
        metering=metering,
        admin_token=TOKEN,
        invoice_preview=InvoicePreview(catalog.contexts, MeteringUsageReader(metering), clock),
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tollway") as client:
        yield World(clock, store, metering, catalog, client)
    await store.close()


async def preview(w: World, **params: str) -> dict[str, Any]:
    response = await w.client.get("/api/v1/invoices/preview", params=params, headers=AUTH)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_preview_mid_period(world: World) -> None:
    world.clock.set(at(20, 3, 12))
    body = await preview(world, customer="acme")
    assert body["id"] is None
    assert body["number"] is None
    assert body["status"] == "draft"
    assert body["currency"] == "USD"
    assert body["period"] == {"from": "2026-03-11T00:00:00Z", "to": "2026-04-01T00:00:00Z"}
    lines = {line["rateCardKey"]: line for line in body["lines"]}
    # output: 800 + 700 = 1500 (the 300 of March 25 is after `at`), 100 free -> 1400 billable:
    # 1000 x 0.01 = 10 + 400 x 0.005 = 2 -> $12.00
    output = lines["output-tokens"]
    assert output["type"] == "usage_based"
    assert output["quantity"] == "1500"
    assert output["charge"]["freeQuantity"] == "100"
    assert [t["amount"] for t in output["charge"]["tiers"]] == ["10", "2"]
    assert output["amount"] == "12"
    assert output["amountMinor"] == 1200
    assert output["slices"] == [
        {"groupBy": {"model": "gpt-4o"}, "quantity": "800"},
        {"groupBy": {"model": "gpt-4o-mini"}, "quantity": "700"},
    ]
    # input: 1000 x 0.002 = $2
    assert lines["input-tokens"]["amountMinor"] == 200
    assert lines["input-tokens"]["description"] == "1,000 input tokens x $0.002"
    # April's platform fee, in advance, on the invoice closing March
    fee = lines["platform-fee"]
    assert (fee["type"], fee["amountMinor"]) == ("flat_fee", 4900)
    assert fee["period"] == {"from": "2026-04-01T00:00:00Z", "to": "2026-05-01T00:00:00Z"}
    assert body["totalMinor"] == 1200 + 200 + 4900
    assert body["totals"]["total"] == "63"


async def test_preview_at_a_given_moment(world: World) -> None:
    body = await preview(world, customer="acme", at="2026-03-31T00:00:00Z")
    lines = {line["rateCardKey"]: line for line in body["lines"]}
    # 1800 - 100 free = 1700: 10 + 700 x 0.005 = 13.5
    assert lines["output-tokens"]["amountMinor"] == 1350
    assert body["totalMinor"] == 1350 + 200 + 4900

    april = await preview(world, customer="acme", at="2026-04-10T00:00:00+02:00")
    assert april["period"] == {"from": "2026-04-01T00:00:00Z", "to": "2026-05-01T00:00:00Z"}
    assert [line["amountMinor"] for line in april["lines"]] == [0, 0, 4900]


async def test_preview_by_customer_id_and_simulate(world: World) -> None:
    world.clock.set(at(31, 3))
    acme = await world.catalog.customers.customer("acme")
    by_id = await preview(world, customer=acme.id)
    assert by_id["totalMinor"] == 6450
    simulated = await world.client.post(
        f"/api/v1/billing/customers/{acme.id}/invoices/simulate", json={"currency": "USD"}, headers=AUTH
    )
    assert simulated.status_code == 200, simulated.text
    assert simulated.json()["totalMinor"] == 6450
    wrong = await world.client.post(
        "/api/v1/billing/customers/acme/invoices/simulate", json={"currency": "EUR"}, headers=AUTH
    )
    assert wrong.status_code == 400
    assert wrong.json()["field"] == "currency"


@pytest.mark.parametrize(
    ("params", "status", "field", "words"),
    [
        ({}, 400, "customer", "required"),
        ({"customer": "acme", "at": "yesterday"}, 400, "at", "RFC 3339"),
        ({"customer": "acme", "at": "2026-03-20T00:00:00"}, 400, "at", "RFC 3339"),
        ({"customer": "nobody"}, 404, None, "nobody"),
        ({"customer": "idle"}, 404, "customer", "no subscription active"),
        ({"customer": "acme", "at": "2026-03-10T23:59:59Z"}, 404, "customer", "no subscription active"),
    ],
)
async def test_bad_requests_are_clear(
    world: World, params: dict[str, str], status: int, field: str | None, words: str
) -> None:
    response = await world.client.get("/api/v1/invoices/preview", params=params, headers=AUTH)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert words in body["detail"]
    if field is not None:
        assert body["field"] == field


async def test_preview_needs_the_admin_token(world: World) -> None:
    response = await world.client.get("/api/v1/invoices/preview", params={"customer": "acme"})
    assert response.status_code == 401


# -- the CLI ------------------------------------------------------------------------------------------------


async def cli_world(url: str) -> None:
    from tollway.settings import Settings
    from tollway.wiring.services import build_services

    services = build_services(Settings(database_url=url), FrozenClock(at(15, 4)))
    await services.open()
    await services.metering.sync_meters([])
    catalog = services.catalog
    await catalog.features.create_feature(
        key="output-tokens", name="output tokens", meter_slug="llm_tokens", filters={"type": ["output"]}
    )
    graduated = TieredPrice("graduated", (Tier(D(1000), D("0.01")), Tier(None, D("0.005"))))
    plan = await catalog.plans.create_plan(
        key="pro",
        name="Pro",
        currency="USD",
        billing_cadence="P1M",
        phases=(
            Phase(
                key="default",
                name="Default",
                rate_cards=(
                    RateCard(key="platform-fee", name="Platform fee", flat=FlatPrice(D(49)), billing_cadence="P1M"),
                    RateCard(
                        key="output-tokens",
                        name="Output tokens",
                        feature_key="output-tokens",
                        usage=UsageTerms(graduated),
                        billing_cadence="P1M",
                    ),
                ),
            ),
        ),
    )
    await catalog.plans.publish_plan(plan.id)
    await catalog.customers.create_customer(key="acme", name="Acme", subjects=["acme-corp"])
    await catalog.subscriptions.create_subscription(
        customer="acme", plan_key="pro", active_from=at(1), billing_anchor=at(1)
    )
    await services.metering.ingest([tokens(1500, 12, "output", "gpt-4o")])
    await services.close()


def test_cli_prints_the_preview_as_a_table(tmp_path: Path) -> None:
    """In process (typer's runner), with the environment a user would set."""
    import asyncio

    from typer.testing import CliRunner

    from tollway.cli.main import app

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    asyncio.run(cli_world(url))
    runner = CliRunner(env={"TOLLWAY_DATABASE_URL": url, "COLUMNS": "160"})

    shown = runner.invoke(app, ["invoices", "preview", "acme", "--at", "2026-03-20T12:00:00Z"])
    assert shown.exit_code == 0, shown.output
    text = shown.stdout
    # 1000 x 0.01 = 10 + 500 x 0.005 = 2.5 -> $12.50; April's fee $49; total $61.50
    assert "1,500 output tokens (graduated tiers)" in text
    assert "tier 1 (up to 1,000)" in text
    assert "tier 2 (above)" in text
    assert "$12.50" in text
    assert "$49.00" in text
    assert "$61.50" in text
    assert "2026-03-01 to 2026-04-01" in " ".join(text.split())

    as_json = runner.invoke(app, ["invoices", "preview", "acme", "--at", "2026-03-20T12:00:00Z", "--json"])
    assert as_json.exit_code == 0, as_json.output
    assert '"totalMinor": 6150' in as_json.stdout

    missing = runner.invoke(app, ["invoices", "preview", "nobody"])
    assert missing.exit_code == 2
    assert "nobody" in missing.stderr
    early = runner.invoke(app, ["invoices", "preview", "acme", "--at", "2026-02-01T00:00:00Z"])
    assert early.exit_code == 2
    assert "no subscription active" in early.stderr

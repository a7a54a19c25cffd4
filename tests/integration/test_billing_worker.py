"""The billing worker as the composition root wires it (build_services + build_billing_worker): SQL catalog,
SQL events and SQL invoices on one database (SQLite and PostgreSQL); a worker's round creates the invoices
that are due, the background task does the same on its interval, a failing round does not stop it, and a
clean stop hands back its claims so that a restart closes a due period in its first round."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from tests.support.databases import database_url
from tests.support.meter_events import token_event
from tollway.adapters.sql.invoices import SqlInvoiceStore
from tollway.billing.invoicing.close import CloseSettings, PeriodCloser
from tollway.billing.invoicing.model import Invoice
from tollway.billing.invoicing.usage import MeteringUsageReader
from tollway.billing.invoicing.worker import BillingWorker
from tollway.billing.plans import Phase, RateCard
from tollway.billing.pricing.model import FlatPrice, UnitPrice, UsageTerms
from tollway.clock import FrozenClock
from tollway.settings import Settings
from tollway.wiring.billing import build_billing_worker
from tollway.wiring.services import Services, build_services

OCT = datetime(2026, 10, 1, tzinfo=UTC)
NOV = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
async def services(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Services]:
    url = database_url(request, tmp_path, "w.db")
    settings = Settings(database_url=url, invoice_grace_s=600, invoice_due_days=10, billing_interval_s=0.05)
    built = build_services(settings, FrozenClock(datetime(2026, 9, 30, tzinfo=UTC)))
    await built.open()
    await built.metering.sync_meters([])
    catalog = built.catalog
    await catalog.features.create_feature(key="output-tokens", meter_slug="llm_tokens", filters={"type": ["output"]})
    cards = (
        RateCard(key="platform", name="Platform fee", flat=FlatPrice(Decimal("19.99")), billing_cadence="P1M"),
        RateCard(
            key="output",
            name="Output tokens",
            feature_key="output-tokens",
            usage=UsageTerms(UnitPrice(Decimal("0.000015"))),
            billing_cadence="P1M",
        ),
    )
    plan = await catalog.plans.create_plan(
        key="basic", name="Basic", currency="USD", billing_cadence="P1M", phases=(Phase("d", "D", cards),)
    )
    await catalog.plans.publish_plan(plan.id)
    await catalog.customers.create_customer(key="acme", name="Acme", subjects=["acme-app"])
    await catalog.subscriptions.create_subscription(customer="acme", plan_key="basic", active_from=OCT)
    await built.metering.insert([token_event("e1", "acme-app", OCT + timedelta(days=3), 333_333)])
    yield built
    await built.close()


async def test_a_round_creates_what_is_due(services: Services) -> None:
    assert isinstance(services.clock, FrozenClock)
    services.clock.set(NOV + timedelta(seconds=599))
    worker = build_billing_worker(services)
    report = await worker.run_once()
    assert report is not None
    assert [i.metadata["kind"] for i in report.created] == ["opening"]  # October not closed within the grace
    services.clock.set(NOV + timedelta(seconds=600))
    report = await worker.run_once()
    assert report is not None
    (october,) = report.created
    # 333,333 x 0.000015 = 4.999995 -> 5.00; November's fee in advance 19.99
    assert [(line.kind, line.amount_minor) for line in october.lines] == [("usage", 500), ("flat", 1999)]
    assert (october.number, october.total_minor) == ("TW-2026-000002", 2499)
    assert october.due_at == NOV + timedelta(seconds=600) + timedelta(days=10)
    listed = await services.invoices.list(customer="acme", status="issued")
    assert [i.metadata["kind"] for i in listed] == ["opening", "closing"]
    assert listed[1].id == october.id
    assert worker.invoices_created_total == 2


async def test_background_task_runs_rounds_and_survives_a_failing_sync(services: Services) -> None:
    assert isinstance(services.clock, FrozenClock)
    services.clock.set(NOV + timedelta(hours=1))
    calls: list[int] = []

    async def failing_sync() -> None:
        calls.append(1)
        raise RuntimeError("stripe down")

    worker = build_billing_worker(services, sync=failing_sync)
    worker.start()
    try:
        for _ in range(200):
            if len(calls) >= 2:
                break
            await asyncio.sleep(0.05)
    finally:
        await worker.stop()
    assert len(calls) >= 2  # kept going after the sync failed
    assert len(await services.invoices.list(customer="acme")) == 2  # period close unaffected, nothing twice


class HangingStore(SqlInvoiceStore):
    """The round hangs where a stop finds it: just after its claim committed (before the claim returns), or
    while it closes the claimed customer."""

    def __init__(self, engine: Engine, clock: FrozenClock, where: str) -> None:
        super().__init__(engine, clock)
        self.where = where
        self.reached = asyncio.Event()

    async def _hang(self, here: str) -> None:
        if self.where == here:
            self.reached.set()
            await asyncio.Event().wait()

    async def claim_billing_keys(self, keys: Sequence[str], *, owner: str, now: datetime, lease_s: float) -> list[str]:
        claimed = await super().claim_billing_keys(keys, owner=owner, now=now, lease_s=lease_s)
        await self._hang("claim")
        return claimed

    async def list_invoices(self, **filters: Any) -> list[Invoice]:
        await self._hang("close")
        return await super().list_invoices(**filters)


@pytest.mark.parametrize("where", ["claim", "close"])
async def test_a_clean_stop_hands_back_its_claims_and_a_restart_closes_the_period_at_once(
    services: Services, where: str
) -> None:
    assert isinstance(services.clock, FrozenClock)
    services.clock.set(NOV + timedelta(hours=1))  # October is due
    hanging = HangingStore(services.store.engine, services.clock, where)
    closer = PeriodCloser(
        store=hanging,
        catalog=services.catalog.store,
        reader=MeteringUsageReader(services.metering),
        clock=services.clock,
        settings=CloseSettings(grace=timedelta(seconds=600), due=timedelta(days=10)),
    )
    stopping = BillingWorker(closer, interval_s=0.05)
    stopping.start()
    await asyncio.wait_for(hanging.reached.wait(), 10)
    await stopping.stop()

    restarted = build_billing_worker(services)
    report = await restarted.run_once()  # its first round, at the same instant: well inside the 5-minute lease
    assert report is not None
    assert report.skipped == 0
    assert [i.metadata["kind"] for i in report.created] == ["opening", "closing"]

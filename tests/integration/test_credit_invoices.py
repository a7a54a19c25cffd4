"""Money credits through the period close, on the memory fake and SQLite: the walkthrough of docs/credits.md
(Starter plan, $20 of credits, the agent spends $27: $20 credits applied, $7 due), expiry at the period end and
one microsecond before it (with the expired ledger rows), the live balance, the preview, idempotency keys.
Amounts are worked out by hand in the comments: output tokens at $0.00001 each."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.support.meter_events import token_event
from tollway.adapters.memory.catalog import MemoryCatalogStore
from tollway.adapters.memory.credits import MemoryCreditStore
from tollway.adapters.memory.invoices import MemoryInvoiceStore
from tollway.adapters.memory.store import MemoryEventStore
from tollway.adapters.memory.unit_grants import MemoryUnitGrantStore
from tollway.adapters.sql.credits import SqlCreditStore
from tollway.adapters.sql.engine import create_sql_engine
from tollway.adapters.sql.invoices import SqlInvoiceStore
from tollway.adapters.sql.migrate import upgrade
from tollway.billing.credit_accounts.service import CreditService, NewGrant
from tollway.billing.credits.ports import CreditStore
from tollway.billing.invoicing.close import CloseSettings, PeriodCloser
from tollway.billing.invoicing.ports import InvoiceStore
from tollway.billing.invoicing.preview import InvoicePreview
from tollway.billing.invoicing.service import InvoiceService
from tollway.billing.invoicing.usage import MeteringUsageReader
from tollway.billing.plans import Phase, RateCard
from tollway.billing.pricing.model import UnitPrice, UsageTerms
from tollway.clock import FrozenClock
from tollway.config.schema import TollwayConfig
from tollway.config.sync import apply_config_credits, apply_config_unit_grants
from tollway.errors import ConflictError, ValidationError
from tollway.metering.service import MeteringService
from tollway.wiring.catalog import build_catalog, build_unit_grants

DEC_1 = datetime(2026, 12, 1, tzinfo=UTC)
JAN_1 = datetime(2027, 1, 1, tzinfo=UTC)
GRACE = timedelta(hours=1)
US = timedelta(microseconds=1)
STARTER = (
    Phase(
        key="default",
        name="Default",
        rate_cards=(
            RateCard(
                key="output",
                name="Output tokens",
                feature_key="output-tokens",
                usage=UsageTerms(UnitPrice(Decimal("0.00001"))),
                billing_cadence="P1M",
            ),
        ),
    ),
)


class World:
    def __init__(self, invoices: InvoiceStore, credit_store: CreditStore) -> None:
        self.clock = FrozenClock(DEC_1)
        self.events = MemoryEventStore(self.clock)
        self.metering = MeteringService(self.events, self.clock)
        self.catalog_store = MemoryCatalogStore()
        self.catalog = build_catalog(self.catalog_store, self.metering, self.clock)
        self.invoices = invoices
        reader = MeteringUsageReader(self.metering)
        self.preview = InvoicePreview(self.catalog.contexts, reader, self.clock, credits=credit_store)
        self.credits = CreditService(credit_store, self.catalog_store, self.clock, preview=self.preview)
        self.closer = PeriodCloser(
            store=invoices,
            catalog=self.catalog_store,
            reader=reader,
            clock=self.clock,
            settings=CloseSettings(grace=GRACE),
            credits=credit_store,
        )
        self.n = 0

    async def tokens(self, at: datetime, count: int) -> None:
        self.n += 1
        assert await self.metering.insert([token_event(f"e{self.n}", "acme-agent", at, count)]) == 1
        await self.events.roll_up()


@pytest.fixture(params=["memory", "sqlite"])
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[World]:
    engine: Any = None
    if request.param == "memory":
        credit_store: CreditStore = MemoryCreditStore()
        assert isinstance(credit_store, MemoryCreditStore)
        invoices: InvoiceStore = MemoryInvoiceStore(FrozenClock(DEC_1), credits=credit_store)
    else:
        engine = create_sql_engine(f"sqlite:///{tmp_path / 'credits.db'}")
        await asyncio.to_thread(upgrade, engine)
        credit_store = SqlCreditStore(engine)
        invoices = SqlInvoiceStore(engine, FrozenClock(DEC_1))
    w = World(invoices, credit_store)
    await w.metering.sync_meters([])
    await w.catalog.features.create_feature(key="output-tokens", meter_slug="llm_tokens", filters={"type": ["output"]})
    plan = await w.catalog.plans.create_plan(
        key="starter", name="Starter", currency="USD", billing_cadence="P1M", phases=STARTER
    )
    await w.catalog.plans.publish_plan(plan.id)
    await w.catalog.customers.create_customer(key="acme", name="Acme", subjects=["acme-agent"])
    await w.catalog.subscriptions.create_subscription(
        customer="acme", plan_key="starter", active_from=DEC_1, billing_anchor=DEC_1
    )
    yield w
    if engine is not None:
        engine.dispose()


async def close_december(w: World) -> Any:
    w.clock.set(JAN_1 + GRACE)
    report = await w.closer.run_once()
    (invoice,) = report.created
    return invoice, report


async def test_walkthrough_twenty_dollars_of_credits_and_twenty_seven_spent(world: World) -> None:
    grant, created = await world.credits.create(
        "acme", NewGrant(name="December credits", amount=Decimal("20"), expires_after="P1M", key="dec-2026")
    )
    assert created
    assert grant.amount_minor == 2000
    assert grant.expires_at == JAN_1
    await world.tokens(datetime(2026, 12, 10, tzinfo=UTC), 1_200_000)  # $12
    world.clock.set(datetime(2026, 12, 15, tzinfo=UTC))
    balance = await world.credits.balance("acme")
    assert (balance.settled_minor, balance.live_minor, balance.pending_minor) == (2000, 800, 0)  # $20 - $12
    world.clock.set(datetime(2026, 12, 21, tzinfo=UTC))
    await world.tokens(datetime(2026, 12, 20, tzinfo=UTC), 1_500_000)  # $15: $27 in all
    preview = await world.preview.preview("acme", datetime(2026, 12, 31, tzinfo=UTC))
    assert [(line.kind, line.amount_minor) for line in preview.lines] == [("usage", 2700), ("credit", -2000)]
    invoice, _ = await close_december(world)
    assert [(line.kind, line.description, line.amount_minor) for line in invoice.lines] == [
        ("usage", invoice.lines[0].description, 2700),
        ("credit", "Credits applied: December credits", -2000),
    ]
    assert invoice.total_minor == 700
    assert invoice.status == "issued"
    ledger = await world.credits.transactions("acme")
    assert [(r.kind, r.amount_minor, r.balance_after_minor, r.invoice_line_id) for r in ledger] == [
        ("funded", 2000, 2000, None),
        ("consumed", -2000, 0, invoice.lines[0].id),
    ]
    assert (await world.credits.balance("acme")).settled_minor == 0
    again = await world.closer.run_once()
    assert again.created == []
    assert len(await world.credits.transactions("acme")) == 2


async def test_a_grant_expiring_at_the_period_end_pays_it_and_the_rest_expires(world: World) -> None:
    on_edge, _ = await world.credits.create(
        "acme", NewGrant(name="edge", amount=Decimal("50"), effective_at=DEC_1, expires_after="P1M")
    )
    await world.tokens(datetime(2026, 12, 5, tzinfo=UTC), 2_700_000)  # $27
    invoice, report = await close_december(world)
    # "edge" expires at Jan 1 00:00, the period's end: it pays $27 and $23 expires after the close
    assert [(line.kind, line.amount_minor) for line in invoice.lines] == [("usage", 2700), ("credit", -2700)]
    assert invoice.total_minor == 0
    rows = [(r.grant_id, r.kind, r.amount_minor) for r in await world.credits.transactions("acme")]
    assert (on_edge.id, "expired", -2300) in rows
    assert report.expired >= 1


async def test_a_grant_expiring_one_microsecond_before_the_period_end_pays_nothing(world: World) -> None:
    grant, _ = await world.credits.create(
        "acme", NewGrant(name="short", amount=Decimal("10"), effective_at=DEC_1 - US, expires_after="P31D")
    )
    assert grant.expires_at == JAN_1 - US
    await world.tokens(datetime(2026, 12, 5, tzinfo=UTC), 100_000)  # $1
    invoice, report = await close_december(world)
    assert [(line.kind, line.amount_minor) for line in invoice.lines] == [("usage", 100)]
    rows = [(r.kind, r.amount_minor) for r in await world.credits.transactions("acme")]
    assert rows == [("funded", 1000), ("expired", -1000)]
    assert report.expired == 1


async def test_a_voided_grant_pays_nothing_and_its_rest_is_a_ledger_row(world: World) -> None:
    grant, _ = await world.credits.create("acme", NewGrant(name="promo", amount=Decimal("15")))
    voided = await world.credits.void("acme", grant.id)
    assert voided.status == "voided"
    await world.tokens(datetime(2026, 12, 5, tzinfo=UTC), 500_000)  # $5
    invoice, _ = await close_december(world)
    assert invoice.total_minor == 500
    assert [line.kind for line in invoice.lines] == ["usage"]
    rows = [(r.kind, r.amount_minor) for r in await world.credits.transactions("acme")]
    assert rows == [("funded", 1500), ("voided", -1500)]


async def test_keys_and_amounts_are_checked(world: World) -> None:
    first, created = await world.credits.create("acme", NewGrant(name="a", amount=Decimal("5"), key="k"))
    same, created_again = await world.credits.create("acme", NewGrant(name="a", amount=Decimal("5"), key="k"))
    assert created
    assert not created_again
    assert same.id == first.id
    with pytest.raises(ConflictError) as conflict:
        await world.credits.create("acme", NewGrant(name="a", amount=Decimal("6"), key="k"))
    assert conflict.value.field == "key"
    with pytest.raises(ValidationError) as cents:
        await world.credits.create("acme", NewGrant(name="b", amount=Decimal("0.001")))
    assert cents.value.field == "amount"
    with pytest.raises(ValidationError) as priority:
        await world.credits.create("acme", NewGrant(name="b", amount=Decimal("1"), priority=256))
    assert priority.value.field == "priority"
    with pytest.raises(ValidationError) as duration:
        await world.credits.create("acme", NewGrant(name="b", amount=Decimal("1"), expires_after="P99999Y"))
    assert duration.value.field == "expiresAfter"


async def test_config_grants_are_created_once_and_a_changed_one_is_named(world: World) -> None:
    def config(amount: str) -> TollwayConfig:
        grant = {"name": "Welcome", "amount": amount, "expires_after": "P1M", "priority": 5}
        return TollwayConfig.model_validate({"customers": [{"key": "acme", "name": "Acme", "credits": [grant]}]})

    changes, problems = await apply_config_credits(world.credits, config("20"))
    assert problems == []
    assert len(changes) == 1
    assert await apply_config_credits(world.credits, config("20")) == ([], [])
    assert await apply_config_credits(world.credits, config("30")) == (
        [],
        [
            "customers.acme.credits[0]: a grant under key 'Welcome' exists with other values (a grant cannot change:"
            " void it and give the new one another key)"
        ],
    )
    (grant,) = await world.credits.grants("acme")
    assert (grant.key, grant.amount_minor, grant.priority) == ("config:Welcome", 2000, 5)


async def test_config_unit_grants_are_created_once_and_a_changed_one_is_named(world: World) -> None:
    service = build_unit_grants(world.catalog, MemoryUnitGrantStore())

    def config(amount: str) -> TollwayConfig:
        grant = {"feature": "output-tokens", "amount": amount, "effective_at": "2026-12-01T00:00:00Z", "key": "bonus"}
        return TollwayConfig.model_validate({"customers": [{"key": "acme", "name": "Acme", "grants": [grant]}]})

    changes, problems = await apply_config_unit_grants(service, config("5000000"))
    assert (len(changes), problems) == (1, [])
    assert await apply_config_unit_grants(service, config("5000000")) == ([], [])
    assert await apply_config_unit_grants(service, config("6000000")) == (
        [],
        [
            "customers.acme.grants[0]: a grant under key 'bonus' exists with other values (a grant cannot change:"
            " void it and give the new one another key)"
        ],
    )
    (grant,) = await service.list("acme", "output-tokens")
    assert (grant.amount, grant.effective_at) == (Decimal(5000000), DEC_1)


async def test_voiding_an_invoice_gives_back_the_credits_it_used(world: World) -> None:
    await world.credits.create("acme", NewGrant(name="Promo", amount=Decimal("20")))
    await world.tokens(datetime(2026, 12, 5, tzinfo=UTC), 500_000)  # $5
    invoice, _ = await close_december(world)
    assert invoice.total_minor == 0
    service = InvoiceService(world.invoices, world.catalog_store, world.clock)

    async def restore(voided: Any) -> object:
        return await world.credits.restore_invoice(voided.id)

    service.on_void = restore
    await service.void(invoice.id)
    rows = [(r.kind, r.amount_minor, r.balance_after_minor) for r in await world.credits.transactions("acme")]
    assert rows == [("funded", 2000, 2000), ("consumed", -500, 1500), ("restored", 500, 2000)]

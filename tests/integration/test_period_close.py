"""Period close end to end: catalog + usage events -> invoices, exactly once, on the memory fake, SQLite and
PostgreSQL invoice stores. Expected amounts are computed here by hand from the events and the plan terms.

Two workers at once create one invoice per period; a failure inside the invoice transaction leaves nothing
behind and the next run completes it; a dead worker's claim holds only until its lease ends; late usage
becomes an adjustment line on the next invoice; a cancellation ends with a final invoice crediting the unused
in-advance fee; a plan change splits the period with prorated fees."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, func, select

from tests.support.databases import database_url
from tests.support.meter_events import token_event
from tollway.adapters.memory.catalog import MemoryCatalogStore
from tollway.adapters.memory.invoices import MemoryInvoiceStore
from tollway.adapters.memory.store import MemoryEventStore
from tollway.adapters.sql.engine import create_sql_engine
from tollway.adapters.sql.invoices import SqlInvoiceStore
from tollway.adapters.sql.migrate import upgrade
from tollway.adapters.sql.schema import invoice_lines, invoices
from tollway.billing.credits.model import CreditTransaction
from tollway.billing.invoicing.close import CloseSettings, PeriodCloser
from tollway.billing.invoicing.model import Invoice
from tollway.billing.invoicing.ports import STRIPE_SYNC, InvoiceStore, IssueRequest
from tollway.billing.invoicing.usage import MeteringUsageReader
from tollway.billing.plans import Phase, RateCard
from tollway.billing.pricing.model import FlatPrice, Tier, TieredPrice, UnitPrice, UsageTerms
from tollway.billing.subscriptions import Subscription
from tollway.clock import FrozenClock
from tollway.metering.service import MeteringService
from tollway.wiring.catalog import build_catalog

OCT = datetime(2026, 10, 1, tzinfo=UTC)
NOV = datetime(2026, 11, 1, tzinfo=UTC)
DEC = datetime(2026, 12, 1, tzinfo=UTC)
GRACE = timedelta(hours=1)


class World:
    def __init__(self, store_factory: Callable[[FrozenClock], InvoiceStore]) -> None:
        self.clock = FrozenClock(datetime(2026, 9, 20, tzinfo=UTC))
        self.events = MemoryEventStore(self.clock)
        self.catalog_store = MemoryCatalogStore()
        self.metering = MeteringService(self.events, self.clock)
        self.catalog = build_catalog(self.catalog_store, self.metering, self.clock)
        self.factory = store_factory
        self.store = store_factory(self.clock)
        self.n = 0

    def closer(self, store: InvoiceStore | None = None, *, owner: str | None = None, **settings: Any) -> PeriodCloser:
        return PeriodCloser(
            store=store or self.store,
            catalog=self.catalog_store,
            reader=MeteringUsageReader(self.metering),
            clock=self.clock,
            settings=CloseSettings(grace=GRACE, **settings),
            owner=owner,
        )

    async def tokens(self, subject: str, at: datetime, tokens: int, *, kind: str = "output") -> None:
        self.n += 1
        assert await self.metering.insert([token_event(f"e{self.n}", subject, at, tokens, kind=kind)]) == 1

    async def customer(self, key: str, plan: str = "basic", *, start: datetime, anchor: datetime) -> Subscription:
        await self.catalog.customers.create_customer(key=key, name=key.title(), subjects=[f"{key}-app"])
        return await self.catalog.subscriptions.create_subscription(
            customer=key, plan_key=plan, active_from=start, billing_anchor=anchor
        )


def phases(*cards: RateCard) -> tuple[Phase, ...]:
    return (Phase(key="default", name="Default", rate_cards=cards),)


BASIC = phases(
    RateCard(key="platform", name="Platform fee", flat=FlatPrice(Decimal("30")), billing_cadence="P1M"),
    RateCard(
        key="output",
        name="Output tokens",
        feature_key="output-tokens",
        usage=UsageTerms(UnitPrice(Decimal("0.00001"))),
        billing_cadence="P1M",
    ),
)
VOLUME = phases(
    RateCard(
        key="output",
        name="Output tokens",
        feature_key="output-tokens",
        usage=UsageTerms(
            TieredPrice("volume", (Tier(Decimal(1_000_000), Decimal("0.00002")), Tier(None, Decimal("0.00001"))))
        ),
        billing_cadence="P1M",
    ),
)
PRO = phases(RateCard(key="platform", name="Pro platform fee", flat=FlatPrice(Decimal("60")), billing_cadence="P1M"))


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[World]:
    engines: list[Any] = []
    if request.param == "memory":
        shared: dict[str, MemoryInvoiceStore] = {}

        def factory(clock: FrozenClock) -> InvoiceStore:
            return shared.setdefault("store", MemoryInvoiceStore(clock))

    else:
        url = database_url(request, tmp_path, "close.db")
        engines.append(create_sql_engine(url))
        await asyncio.to_thread(upgrade, engines[0])
        handles: list[InvoiceStore] = []

        def factory(clock: FrozenClock) -> InvoiceStore:
            if handles:  # every further handle: its own engine, as another worker process would have
                engines.append(create_sql_engine(url))
            handles.append(SqlInvoiceStore(engines[-1], clock))
            return handles[-1]

    w = World(factory)
    await w.metering.sync_meters([])
    await w.catalog.features.create_feature(key="output-tokens", meter_slug="llm_tokens", filters={"type": ["output"]})
    for key, cards in (("basic", BASIC), ("volume", VOLUME), ("pro", PRO)):
        plan = await w.catalog.plans.create_plan(
            key=key, name=key.title(), currency="USD", billing_cadence="P1M", phases=cards
        )
        await w.catalog.plans.publish_plan(plan.id)
    yield w
    for engine in engines:
        engine.dispose()


def summary(invoice: Invoice) -> list[tuple[str, str, int]]:
    return [(line.kind, line.rate_card_key, line.amount_minor) for line in invoice.lines]


async def test_opening_and_closing_invoices_of_a_mid_period_start(world: World) -> None:
    sub = await world.customer("acme", start=datetime(2026, 10, 15, tzinfo=UTC), anchor=OCT)
    await world.tokens("acme-app", datetime(2026, 10, 10, tzinfo=UTC), 50_000)  # before the start: not billed
    await world.tokens("acme-app", datetime(2026, 10, 20, tzinfo=UTC), 600_000)
    await world.tokens("acme-app", datetime(2026, 10, 31, 23, 59, tzinfo=UTC), 400_000)
    await world.tokens("acme-app", datetime(2026, 11, 1, 0, 30, tzinfo=UTC), 7_000)  # next period
    world.clock.set(datetime(2026, 10, 15, 0, 5, tzinfo=UTC))
    report = await world.closer().run_once()
    assert [i.billing_key for i in report.created] == [f"{sub.id}:open"]
    opening = report.created[0]
    # 30 USD for 17 of October's 31 days: 30 * 17 / 31 = 16.4516... -> 16.45
    assert summary(opening) == [("flat", "platform", 1645)]
    assert (opening.status, opening.number, opening.total_minor) == ("issued", "TW-2026-000001", 1645)
    assert (opening.period_start, opening.period_end) == (datetime(2026, 10, 15, tzinfo=UTC), NOV)

    world.clock.set(NOV + GRACE - timedelta(seconds=1))
    assert (await world.closer().run_once()).created == []  # within the grace period
    world.clock.set(NOV + GRACE)
    report = await world.closer().run_once()
    assert len(report.created) == 1
    closing = report.created[0]
    assert closing.billing_key == f"{sub.id}:{int(datetime(2026, 10, 15, tzinfo=UTC).timestamp()) * 1_000_000}"
    # 1,000,000 output tokens x 0.00001 = 10.00; November's fee in advance: 30.00
    assert summary(closing) == [("usage", "output", 1000), ("flat", "platform", 3000)]
    assert (closing.number, closing.total_minor, closing.due_at) == (
        "TW-2026-000002",
        4000,
        NOV + GRACE + timedelta(days=30),
    )
    assert closing.lines[0].charge is not None
    assert closing.lines[0].charge.quantity == Decimal(1_000_000)
    assert (await world.closer().run_once()).created == []  # nothing twice
    assert len(await world.store.list_invoices()) == 2


async def test_two_workers_at_once_create_one_invoice_per_period(world: World) -> None:
    subs = [await world.customer(f"c{n}", start=OCT, anchor=OCT) for n in range(12)]
    for n in range(12):
        await world.tokens(f"c{n}-app", datetime(2026, 10, 5, tzinfo=UTC), 100_000 * (n + 1))
    world.clock.set(DEC + GRACE)  # October and November both due
    a = world.closer(world.factory(world.clock), owner="worker-a", stripe=True, batch=3)
    b = world.closer(world.factory(world.clock), owner="worker-b", stripe=True, batch=3)
    first, second = await asyncio.gather(a.run_once(), b.run_once())
    created = first.created + second.created
    assert len(created) == 12 * 3  # opening, October, November per subscription
    stored = await world.store.list_invoices()
    assert sorted(i.billing_key or "" for i in stored) == sorted(
        key
        for sub in subs
        for key in (
            f"{sub.id}:open",
            f"{sub.id}:{int(OCT.timestamp()) * 10**6}",
            f"{sub.id}:{int(NOV.timestamp()) * 10**6}",
        )
    )
    assert sorted(i.number or "" for i in stored) == [f"TW-2026-{n:06d}" for n in range(1, 37)]
    for invoice in stored:
        assert [o.kind for o in await world.store.get_outbox(invoice.id)] == [STRIPE_SYNC]
    october = {i.customer_id: i for i in stored if i.period_start == OCT and i.metadata["kind"] == "closing"}
    customers = {c.id: c.key for c in await world.catalog.customers.customers()}
    for customer_id, invoice in october.items():
        n = int(customers[customer_id][1:])
        assert summary(invoice) == [("usage", "output", (n + 1) * 100), ("flat", "platform", 3000)]
    assert (await asyncio.gather(a.run_once(), b.run_once()))[0].created == []


class FailingInside(SqlInvoiceStore):
    """Raises inside the invoice transaction, after the invoice and its lines were written."""

    def _issue_in(self, connection: Connection, invoice: Invoice, issue: IssueRequest) -> Invoice:
        raise RuntimeError("power cut")


class FailingMemory(MemoryInvoiceStore):
    async def create_invoice(
        self, invoice: Invoice, *, issue: IssueRequest | None = None, ledger: Sequence[CreditTransaction] = ()
    ) -> Invoice | None:
        raise RuntimeError("power cut")


async def test_failure_inside_the_transaction_leaves_nothing_and_the_next_run_completes(world: World) -> None:
    sub = await world.customer("acme", start=OCT, anchor=OCT)
    await world.tokens("acme-app", datetime(2026, 10, 5, tzinfo=UTC), 250_000)
    world.clock.set(NOV + GRACE)
    healthy = world.store
    if isinstance(healthy, SqlInvoiceStore):
        broken: InvoiceStore = FailingInside(healthy.engine, world.clock)
    else:
        broken = FailingMemory(world.clock)
    report = await world.closer(broken, owner="w1").run_once()
    assert (report.created, report.failed) == ([], 1)  # the opening invoice failed; the customer waits
    assert await healthy.list_invoices() == []
    if isinstance(healthy, SqlInvoiceStore):
        with healthy.engine.connect() as connection:
            assert connection.execute(select(func.count()).select_from(invoice_lines)).scalar_one() == 0
            assert connection.execute(select(func.count()).select_from(invoices)).scalar_one() == 0
    report = await world.closer(healthy, owner="w2").run_once()  # the claim was released: no lease wait
    assert [i.billing_key for i in report.created] == [f"{sub.id}:open", f"{sub.id}:{int(OCT.timestamp()) * 10**6}"]
    assert [i.number for i in report.created] == ["TW-2026-000001", "TW-2026-000002"]  # no number lost
    assert summary(report.created[1]) == [("usage", "output", 250), ("flat", "platform", 3000)]


async def test_a_dead_workers_claim_holds_until_its_lease_ends(world: World) -> None:
    await world.customer("acme", start=OCT, anchor=OCT)
    world.clock.set(NOV + GRACE)
    customer = await world.catalog.customers.customer("acme")
    claimed = await world.store.claim_billing_keys(
        [f"customer:{customer.id}"], owner="dead", now=world.clock.now(), lease_s=300
    )
    assert claimed == [f"customer:{customer.id}"]
    report = await world.closer(owner="alive", lease_s=300).run_once()
    assert (report.created, report.skipped) == ([], 2)
    world.clock.advance(timedelta(seconds=301))
    report = await world.closer(owner="alive", lease_s=300).run_once()
    assert len(report.created) == 2


async def test_late_usage_becomes_an_adjustment_on_the_next_invoice(world: World) -> None:
    await world.customer("acme", "volume", start=OCT, anchor=OCT)
    await world.tokens("acme-app", datetime(2026, 10, 10, tzinfo=UTC), 900_000)
    world.clock.set(NOV + GRACE)
    (october,) = (await world.closer().run_once()).created
    # volume: 900,000 x 0.00002 = 18.00
    assert summary(october) == [("usage", "output", 1800)]
    await world.tokens("acme-app", datetime(2026, 10, 30, tzinfo=UTC), 200_000)  # arrives after the issue
    await world.tokens("acme-app", datetime(2026, 11, 3, tzinfo=UTC), 100_000)
    world.clock.set(DEC + GRACE)
    (november,) = (await world.closer().run_once()).created
    # October re-rated: 1,100,000 x 0.00001 = 11.00, invoiced 18.00 -> -7.00; November: 100,000 x 0.00002 = 2.00
    assert summary(november) == [("usage", "output", 200), ("adjustment", "adjustment", -700)]
    adjustment = november.lines[1]
    assert (adjustment.adjusts_invoice_id, adjustment.period_start, adjustment.period_end) == (october.id, OCT, NOV)
    assert november.total_minor == -500
    assert await world.store.get_invoice(october.id) == october  # the issued invoice never changes
    # no further late usage: the next invoice carries no adjustment for October again
    world.clock.set(datetime(2027, 1, 1, tzinfo=UTC) + GRACE)
    (december,) = (await world.closer().run_once()).created
    assert summary(december) == [("usage", "output", 0)]


async def test_cancellation_ends_with_a_final_invoice_crediting_unused_time(world: World) -> None:
    sub = await world.customer("acme", start=OCT, anchor=OCT)
    world.clock.set(NOV + GRACE)
    await world.closer().run_once()  # opening + October (with November's 30.00 in advance)
    await world.tokens("acme-app", datetime(2026, 11, 10, tzinfo=UTC), 300_000)
    world.clock.set(datetime(2026, 11, 16, tzinfo=UTC))
    await world.catalog.subscriptions.cancel_subscription(sub.id, "immediate")
    world.clock.set(datetime(2026, 11, 16, 1, tzinfo=UTC))
    (final,) = (await world.closer().run_once()).created
    assert (final.period_start, final.period_end) == (NOV, datetime(2026, 11, 16, tzinfo=UTC))
    # 300,000 x 0.00001 = 3.00; 15 of November's 30 days unused: -30 * 15/30 = -15.00
    assert summary(final) == [("usage", "output", 300), ("flat", "platform", -1500)]
    world.clock.set(DEC + GRACE)
    assert (await world.closer().run_once()).created == []  # nothing after the end


async def test_plan_change_mid_period_splits_with_prorated_fees(world: World) -> None:
    sub = await world.customer("acme", start=OCT, anchor=OCT)
    world.clock.set(NOV + GRACE)
    await world.closer().run_once()
    await world.tokens("acme-app", datetime(2026, 11, 5, tzinfo=UTC), 100_000)
    world.clock.set(datetime(2026, 11, 11, tzinfo=UTC))  # 10 of 30 days into November
    _, following = await world.catalog.subscriptions.change_subscription(sub.id, plan_key="pro")
    report = await world.closer().run_once()
    assert [i.billing_key for i in report.created] == [f"{following.id}:open"]
    # the new plan starts its own cadence at the change: a whole period, 60.00 in advance
    assert summary(report.created[0]) == [("flat", "platform", 6000)]
    world.clock.set(datetime(2026, 11, 11, 1, tzinfo=UTC))
    (final,) = (await world.closer().run_once()).created
    # old plan, [Nov 1, Nov 11): usage 100,000 x 0.00001 = 1.00; 20 of 30 days unused: -30 * 20/30 = -20.00
    assert final.subscription_id == sub.id
    assert summary(final) == [("usage", "output", 100), ("flat", "platform", -2000)]


async def test_amounts_past_64_bits_are_invoiced_exactly(world: World) -> None:
    """Issue 19, finding 4: a flat fee of 10^17 or more (prices are accepted up to 10^18) or usage summing to
    1e30 made the invoice's minor units overflow SQLite's and PostgreSQL's 64-bit integers, and the billing
    worker failed on that customer every round. They are stored exactly now (migration 0010)."""
    most = Decimal(10) ** 18  # the largest price parse_decimal accepts
    cards = phases(
        RateCard(key="platform", name="Platform fee", flat=FlatPrice(most), billing_cadence="P1M"),
        RateCard(
            key="output",
            name="Output tokens",
            feature_key="output-tokens",
            usage=UsageTerms(UnitPrice(most)),
            billing_cadence="P1M",
        ),
    )
    plan = await world.catalog.plans.create_plan(
        key="huge", name="Huge", currency="USD", billing_cadence="P1M", phases=cards
    )
    await world.catalog.plans.publish_plan(plan.id)
    sub = await world.customer("acme", "huge", start=OCT, anchor=OCT)
    await world.tokens("acme-app", datetime(2026, 10, 20, tzinfo=UTC), 10**30)
    world.clock.set(NOV + GRACE)
    for _ in range(2):  # the first round opens October's invoice, the second closes it (nothing fails)
        await world.closer().run_once()
    stored = {i.billing_key: i for i in await world.store.list_invoices()}
    opening = stored[f"{sub.id}:open"]
    assert summary(opening) == [("flat", "platform", 10**20)]  # 10^18 USD in cents
    closing = next(i for key, i in stored.items() if key != f"{sub.id}:open")
    usage = 10**30 * 10**18 * 100  # tokens x price, in cents
    assert summary(closing) == [("usage", "output", usage), ("flat", "platform", 10**20)]
    assert closing.total_minor == usage + 10**20
    again = await world.store.get_invoice(closing.id)
    assert again is not None
    assert (again.total_minor, [line.amount_minor for line in again.lines]) == (usage + 10**20, [usage, 10**20])

"""Top-ups and auto-recharge of money credits, on the memory fake, SQLite and PostgreSQL (two service stacks on
their own engines: two processes): a bought grant ("pay $18 for $20") gets an issued invoice for its price and
becomes active when that invoice is paid (mark-paid), or at once for a customer who receives credits before
payment; a burst of 20 concurrent balance checks per process below the threshold makes one top-up invoice,
never a second until the balance went back above it. Amounts worked out by hand."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from tollway.adapters.memory.catalog import MemoryCatalogStore
from tollway.adapters.memory.credits import MemoryCreditStore
from tollway.adapters.memory.invoices import MemoryInvoiceStore
from tollway.adapters.memory.store import MemoryEventStore
from tollway.adapters.sql.credits import SqlCreditStore
from tollway.adapters.sql.engine import create_sql_engine
from tollway.adapters.sql.invoices import SqlInvoiceStore
from tollway.adapters.sql.migrate import upgrade
from tollway.adapters.stripe.webhooks import StripeWebhooks
from tollway.billing.credit_accounts.service import CreditService, NewGrant
from tollway.billing.credit_accounts.topups import TopUps
from tollway.billing.invoicing.credit_burndown import apply_credits
from tollway.billing.invoicing.model import Invoice, InvoiceLine
from tollway.billing.invoicing.ports import STRIPE_SYNC, InvoiceStore, IssueRequest
from tollway.billing.invoicing.service import InvoiceService
from tollway.clock import FrozenClock
from tollway.metering.service import MeteringService
from tollway.wiring.catalog import build_catalog

NOW = datetime(2026, 12, 10, tzinfo=UTC)


@dataclass
class Stack:
    credits: CreditService
    invoices: InvoiceService


@dataclass
class World:
    one: Stack
    two: Stack
    store: InvoiceStore


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[World]:
    clock = FrozenClock(NOW)
    metering = MeteringService(MemoryEventStore(clock), clock)
    catalog_store = MemoryCatalogStore()
    catalog = build_catalog(catalog_store, metering, clock)
    await catalog.customers.create_customer(key="acme", name="Acme", subjects=["acme-agent"], currency="USD")
    await catalog.customers.create_customer(
        key="trusted", name="Trusted", subjects=["t"], currency="USD", metadata={"credits_before_payment": "true"}
    )
    engines: list[Any] = []
    stacks: list[Stack] = []
    memory_credits = MemoryCreditStore()
    memory_invoices = MemoryInvoiceStore(clock, credits=memory_credits)
    url = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'topups.db'}"
    elif request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
    for n in range(2):
        if url is None:
            credit_store: Any = memory_credits
            invoice_store: InvoiceStore = memory_invoices
        else:
            engines.append(create_sql_engine(url))
            if n == 0:
                await asyncio.to_thread(upgrade, engines[0])
            credit_store = SqlCreditStore(engines[-1])
            invoice_store = SqlInvoiceStore(engines[-1], clock)
        topups = TopUps(credit_store, invoice_store, clock, enqueue=(STRIPE_SYNC,))
        credits = CreditService(credit_store, catalog_store, clock, topups=topups)
        invoices = InvoiceService(invoice_store, catalog_store, clock, stripe=True)

        async def paid(_: object, credits: CreditService = credits) -> object:
            return await credits.settle_topups()

        invoices.on_paid = paid
        stacks.append(Stack(credits, invoices))
    yield World(stacks[0], stacks[1], stacks[0].invoices.store)
    for engine in engines:
        engine.dispose()


async def test_a_bought_grant_is_invoiced_at_its_price_and_active_once_paid(world: World) -> None:
    credits = world.one.credits
    grant, _ = await credits.create(
        "acme", NewGrant(name="Starter pack", amount=Decimal("20"), funding_method="invoice", price=Decimal("18"))
    )
    assert grant.status == "pending"
    assert grant.invoice_id is not None
    invoice = await world.store.get_invoice(grant.invoice_id)
    assert invoice is not None
    assert (invoice.status, invoice.total_minor, invoice.metadata["kind"]) == ("issued", 1800, "topup")
    assert invoice.lines[0].description == "Credits top-up: Starter pack ($20.00 of credits)"
    assert [item.kind for item in await world.store.get_outbox(invoice.id)] == [STRIPE_SYNC]
    balance = await credits.balance("acme")
    assert (balance.settled_minor, balance.pending_minor) == (0, 2000)
    await world.two.invoices.mark_paid(invoice.id)  # the other process marks it paid
    assert (await credits.get("acme", grant.id)).status == "active"
    balance = await credits.balance("acme")
    assert (balance.settled_minor, balance.live_minor, balance.pending_minor) == (2000, 2000, 0)
    ledger = await credits.transactions("acme")
    assert [(r.kind, r.amount_minor) for r in ledger] == [("funded", 2000)]
    again, created = await credits.create(
        "acme", NewGrant(name="x", amount=Decimal("5"), funding_method="invoice", key="k")
    )
    assert created
    await credits.create("acme", NewGrant(name="x", amount=Decimal("5"), funding_method="invoice", key="k"))
    topups = [
        i for i in await world.store.list_invoices(customer_id=again.customer_id) if i.metadata.get("kind") == "topup"
    ]
    assert len(topups) == 2  # the repeated key made no second invoice


async def test_a_customer_trusted_before_payment_gets_the_credits_at_once(world: World) -> None:
    grant, _ = await world.one.credits.create(
        "trusted", NewGrant(name="Pack", amount=Decimal("50"), funding_method="invoice")
    )
    assert grant.status == "active"
    assert grant.invoice_id is not None
    invoice = await world.store.get_invoice(grant.invoice_id)
    assert invoice is not None
    assert (invoice.status, invoice.total_minor) == ("issued", 5000)
    assert (await world.one.credits.balance("trusted")).settled_minor == 5000


async def test_auto_recharge_once_per_crossing_under_a_burst(world: World) -> None:
    one, two = world.one.credits, world.two.credits
    rule = await one.set_recharge("acme", threshold=Decimal("10"), recharge_to=Decimal("50"), amount=None)
    assert (rule.threshold_minor, rule.recharge_to_minor, rule.armed) == (1000, 5000, True)
    start, _ = await one.create("acme", NewGrant(name="Promo", amount=Decimal("4")))  # $4 < $10: below
    made = await asyncio.gather(*(c.check_recharge("acme") for _ in range(20) for c in (one, two)))
    topups = [g for g in made if g is not None]
    assert len(topups) == 1
    (topup,) = topups
    assert (topup.amount_minor, topup.key, topup.status) == (4600, "auto-recharge:1", "pending")  # up to $50
    invoices = [i for i in await world.store.list_invoices() if i.metadata.get("kind") == "topup"]
    assert [i.total_minor for i in invoices] == [4600]
    # still below (the top-up is not paid): nothing more
    assert await two.check_recharge("acme") is None
    assert topup.invoice_id is not None
    await world.one.invoices.mark_paid(topup.invoice_id)  # $50 now: above, armed again
    assert await one.check_recharge("acme") is None
    assert (await one.recharge_rule("acme")).armed is True  # type: ignore[union-attr]
    await one.void("acme", topup.id)  # $4 again: the second crossing
    second = await asyncio.gather(*(c.check_recharge("acme") for _ in range(10) for c in (one, two)))
    assert [g.key for g in second if g is not None] == ["auto-recharge:2"]
    assert start.status == "active"


async def test_stripes_invoice_paid_webhook_activates_the_bought_grant_at_once(world: World) -> None:
    credits = world.one.credits
    grant, _ = await credits.create("acme", NewGrant(name="Pack", amount=Decimal("20"), funding_method="invoice"))
    assert grant.invoice_id is not None
    secret = "whsec_topup_0123456789"
    webhooks = StripeWebhooks(secret=secret, store=world.store, clock=FrozenClock(NOW))

    async def topup_paid(_: str) -> object:
        return await credits.settle_topups()

    webhooks.on_paid = topup_paid
    obj = {"id": "in_1", "object": "invoice", "status": "paid", "metadata": {"tollway_invoice_id": grant.invoice_id}}
    payload = orjson.dumps({"id": "evt_1", "type": "invoice.paid", "data": {"object": obj}})
    stamp = int(NOW.timestamp())
    signature = hmac.new(secret.encode(), f"{stamp}.".encode() + payload, hashlib.sha256).hexdigest()
    outcome = await webhooks.receive(payload, f"t={stamp},v1={signature}")
    assert outcome.action == "paid"
    assert (await credits.get("acme", grant.id)).status == "active"
    assert (await credits.balance("acme")).settled_minor == 2000


async def test_an_invoice_voided_in_stripe_gives_its_credits_back(world: World) -> None:
    credits = world.one.credits
    grant, _ = await credits.create("acme", NewGrant(name="Promo", amount=Decimal("20")))
    usage = InvoiceLine("usage", "out", "usage", NOW, NOW, Decimal("5"), 500, id="inv-v-1")
    paid = apply_credits(
        [usage],
        await credits.store.balances(grant.customer_id),
        invoice_id="inv-v",
        currency="USD",
        at=NOW,
        period_start=NOW,
        period_end=NOW,
    )
    lines = (usage, *paid.lines)
    draft = Invoice("inv-v", grant.customer_id, "USD", "draft", NOW, NOW, lines, 0, billing_key="v")
    issue = IssueRequest(issued_at=NOW, due_at=NOW)
    assert await world.store.create_invoice(draft, issue=issue, ledger=paid.transactions) is not None
    secret = "whsec_void_0123456789"
    webhooks = StripeWebhooks(secret=secret, store=world.store, clock=FrozenClock(NOW))
    webhooks.on_void = credits.restore_invoice
    obj = {"id": "in_v", "object": "invoice", "status": "void", "metadata": {"tollway_invoice_id": "inv-v"}}
    payload = orjson.dumps({"id": "evt_v", "type": "invoice.voided", "data": {"object": obj}})
    stamp = int(NOW.timestamp())
    signature = hmac.new(secret.encode(), f"{stamp}.".encode() + payload, hashlib.sha256).hexdigest()
    assert (await webhooks.receive(payload, f"t={stamp},v1={signature}")).action == "void"
    rows = [(r.kind, r.amount_minor, r.balance_after_minor) for r in await credits.transactions("acme")]
    assert rows == [("funded", 2000, 2000), ("consumed", -500, 1500), ("restored", 500, 2000)]

"""One contract suite for the money credit store, with the invoice store that writes consumption in the
invoice's own transaction: memory fake, SQLite and PostgreSQL. Balances are sums of the ledger; funded,
voided and expired rows are written once; an invoice whose consumption rows start from a stale balance is
refused whole (nothing stored), so two invoices can never spend the same credit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tests.support.databases import BACKENDS, database_url
from tollway.adapters.memory.credits import MemoryCreditStore
from tollway.adapters.memory.invoices import MemoryInvoiceStore
from tollway.adapters.sql.credits import SqlCreditStore
from tollway.adapters.sql.engine import create_sql_engine
from tollway.adapters.sql.invoices import SqlInvoiceStore
from tollway.adapters.sql.migrate import upgrade
from tollway.billing.credits.model import CreditGrant, CreditTransaction
from tollway.billing.credits.ports import CreditStore
from tollway.billing.invoicing.model import Invoice, InvoiceLine
from tollway.billing.invoicing.ports import InvoiceStore, IssueRequest
from tollway.clock import FrozenClock
from tollway.errors import ConflictError

NOW = datetime(2027, 1, 1, 1, 0, tzinfo=UTC)
DEC_1 = datetime(2026, 12, 1, tzinfo=UTC)
JAN_1 = datetime(2027, 1, 1, tzinfo=UTC)


@dataclass
class Stores:
    credits: CreditStore
    invoices: InvoiceStore
    other_invoices: InvoiceStore  # a second handle (own engine) on the same database, as another process


@pytest.fixture(params=BACKENDS)
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stores]:
    clock = FrozenClock(NOW)
    if request.param == "memory":
        credits = MemoryCreditStore()
        invoices = MemoryInvoiceStore(clock, credits=credits)
        yield Stores(credits, invoices, invoices)
        return
    url = database_url(request, tmp_path, "c.db")
    engine, other = create_sql_engine(url), create_sql_engine(url)
    await asyncio.to_thread(upgrade, engine)
    yield Stores(SqlCreditStore(engine), SqlInvoiceStore(engine, clock), SqlInvoiceStore(other, clock))
    engine.dispose()
    other.dispose()


def new_grant(gid: str, minor: int, *, key: str | None = None, status: str = "active") -> CreditGrant:
    return CreditGrant(
        id=gid,
        customer_id="cust",
        name=f"grant {gid}",
        amount_minor=minor,
        currency="USD",
        funding_method="invoice" if status == "pending" else "none",
        priority=1,
        effective_at=DEC_1,
        status="pending" if status == "pending" else "active",
        created_at=DEC_1,
        key=key,
        features=("output-tokens",),
        metadata={"source": "test"},
    )


def invoice(key: str, minor: int, consumed: int) -> Invoice:
    usage = InvoiceLine("usage", "out", "usage", DEC_1, JAN_1, Decimal(minor) / 100, minor, id=f"{key}-1")
    credit = InvoiceLine("credit", "credits", "Credits applied", DEC_1, JAN_1, Decimal(-consumed) / 100, -consumed)
    lines = (usage, replace(credit, id=f"{key}-2"))
    return Invoice(key, "cust", "USD", "draft", DEC_1, JAN_1, lines, minor - consumed, billing_key=key)


def consumption(key: str, grant_id: str, before: int, take: int) -> CreditTransaction:
    return CreditTransaction(
        f"{key}-row", grant_id, "cust", "consumed", -take, "USD", before, before - take, NOW, key, f"{key}-1"
    )


async def balance(store: CreditStore, grant_id: str) -> int:
    return {b.grant.id: b.balance_minor for b in await store.balances("cust")}[grant_id]


async def test_grants_round_trip_and_keys_are_idempotent(stores: Stores) -> None:
    grant = new_grant("g1", 2000, key="k1")
    assert await stores.credits.create_grant(grant) == (grant, True)
    again, created = await stores.credits.create_grant(replace(grant, id="g2", amount_minor=5))
    assert (again, created) == (grant, False)
    assert await stores.credits.get_grant("g1") == grant
    assert await stores.credits.list_grants("cust") == [grant]
    (row,) = await stores.credits.list_transactions("cust")
    assert (row.kind, row.amount_minor, row.balance_before_minor, row.balance_after_minor) == ("funded", 2000, 0, 2000)
    assert await balance(stores.credits, "g1") == 2000


async def test_pending_grants_are_funded_once_when_activated(stores: Stores) -> None:
    await stores.credits.create_grant(new_grant("p", 1500, status="pending"))
    assert await balance(stores.credits, "p") == 0
    first = await stores.credits.activate("p", at=NOW)
    again = await stores.credits.activate("p", at=NOW)
    assert first.status == again.status == "active"
    assert [(r.kind, r.amount_minor) for r in await stores.credits.list_transactions("cust")] == [("funded", 1500)]


async def test_void_and_expiry_write_what_was_left_once(stores: Stores) -> None:
    await stores.credits.create_grant(new_grant("v", 1000))
    await stores.credits.create_grant(new_grant("e", 700))
    voided = await stores.credits.end("v", "voided", at=NOW)
    await stores.credits.end("v", "voided", at=NOW)  # a repeat: no second row
    assert voided.status == "voided"
    assert voided.voided_at == NOW
    with pytest.raises(ConflictError):
        await stores.credits.end("v", "expired", at=NOW)
    await stores.credits.end("e", "expired", at=NOW)
    kinds = [(r.grant_id, r.kind, r.amount_minor) for r in await stores.credits.list_transactions("cust")]
    assert kinds == [("v", "funded", 1000), ("e", "funded", 700), ("v", "voided", -1000), ("e", "expired", -700)]
    assert await balance(stores.credits, "v") == 0
    assert [g.id for g in await stores.credits.expiring(NOW)] == []


async def test_consumption_is_stored_with_its_invoice_or_not_at_all(stores: Stores) -> None:
    await stores.credits.create_grant(new_grant("g", 2000))
    issue = IssueRequest(issued_at=NOW, due_at=NOW + timedelta(days=30))
    stored = await stores.invoices.create_invoice(
        invoice("i1", 2700, 2000), issue=issue, ledger=[consumption("i1", "g", 2000, 2000)]
    )
    assert stored is not None
    assert stored.total_minor == 700
    assert stored.status == "issued"
    assert await balance(stores.credits, "g") == 0
    # a second invoice computed from the old balance: refused whole, nothing of it stored
    with pytest.raises(ConflictError):
        await stores.invoices.create_invoice(invoice("i2", 500, 500), ledger=[consumption("i2", "g", 2000, 500)])
    assert await stores.invoices.get_invoice_by_key("i2") is None
    assert [r.invoice_line_id for r in await stores.credits.list_transactions("cust") if r.kind == "consumed"] == [
        "i1-1"
    ]


async def test_a_voided_grant_cannot_be_consumed(stores: Stores) -> None:
    await stores.credits.create_grant(new_grant("g", 900))
    await stores.credits.end("g", "voided", at=NOW)
    with pytest.raises(ConflictError):
        await stores.invoices.create_invoice(invoice("i1", 900, 900), ledger=[consumption("i1", "g", 900, 900)])
    assert await stores.invoices.get_invoice_by_key("i1") is None


async def test_two_processes_spending_the_same_balance_one_wins(stores: Stores) -> None:
    await stores.credits.create_grant(new_grant("g", 1000))
    results = await asyncio.gather(
        stores.invoices.create_invoice(invoice("a", 800, 800), ledger=[consumption("a", "g", 1000, 800)]),
        stores.other_invoices.create_invoice(invoice("b", 800, 800), ledger=[consumption("b", "g", 1000, 800)]),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["ConflictError", "Invoice"]
    assert await balance(stores.credits, "g") == 200


async def test_a_voided_invoice_gives_its_credits_back_once(stores: Stores) -> None:
    await stores.credits.create_grant(new_grant("g", 2000))
    await stores.credits.create_grant(new_grant("gone", 500))
    rows = [consumption("i1", "g", 2000, 1500), consumption("i1", "gone", 500, 500)]
    rows[1] = CreditTransaction("i1-row2", "gone", "cust", "consumed", -500, "USD", 500, 0, NOW, "i1", "i1-1")
    assert await stores.invoices.create_invoice(invoice("i1", 2000, 2000), ledger=rows) is not None
    await stores.credits.end("gone", "voided", at=NOW)  # a grant voided since keeps nothing back
    back = await stores.credits.restore("i1", at=NOW)
    assert [(r.grant_id, r.kind, r.amount_minor, r.balance_before_minor, r.balance_after_minor) for r in back] == [
        ("g", "restored", 1500, 500, 2000)
    ]
    assert await stores.credits.restore("i1", at=NOW) == []  # once
    assert await balance(stores.credits, "g") == 2000

"""The credit ledger equals the invoices' "credits applied" lines to the minor unit, over random invoices and
grants (random amounts, priorities, expiries, feature filters, negative lines, currencies with 0, 2 and 3
decimals), stored one after another through the memory stores: each credit line is minus the sum of its
grant's consumed rows on that invoice, no grant goes below zero, no line is paid beyond its amount, and no
total due is below zero (nor below the subtotal minus the credits available)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tollway.adapters.memory.credits import MemoryCreditStore
from tollway.adapters.memory.invoices import MemoryInvoiceStore
from tollway.billing.credits.model import CreditGrant
from tollway.billing.invoicing.credit_burndown import apply_credits
from tollway.billing.invoicing.model import Invoice, InvoiceLine
from tollway.clock import FrozenClock

START = datetime(2026, 1, 1, tzinfo=UTC)
FEATURES = ("a", "b", None)

grant_st = st.tuples(
    st.integers(1, 50_000),  # amount, minor units
    st.integers(1, 4),  # priority
    st.one_of(st.none(), st.integers(0, 12)),  # expiry: months after START (None: never)
    st.one_of(st.none(), st.sampled_from([("a",), ("b",), ("a", "b")])),  # features
)
line_st = st.tuples(st.integers(-3_000, 40_000), st.sampled_from(FEATURES))
invoice_st = st.lists(line_st, min_size=1, max_size=5)


def month(n: int) -> datetime:
    return datetime(2026 + n // 12, n % 12 + 1, 1, tzinfo=UTC)


# 250 examples of 4 to 8 invoices each: at least 1,000 random invoices a run.
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    currency=st.sampled_from(["USD", "JPY", "KWD"]),
    grants=st.lists(grant_st, min_size=1, max_size=5),
    invoices=st.lists(invoice_st, min_size=4, max_size=8),
)
def test_the_ledger_equals_the_credit_lines(
    currency: str,
    grants: list[tuple[int, int, int | None, tuple[str, ...] | None]],
    invoices: list[list[tuple[int, str | None]]],
) -> None:
    asyncio.run(_check(currency, grants, invoices))


async def _check(
    currency: str,
    grants: list[tuple[int, int, int | None, tuple[str, ...] | None]],
    invoices: list[list[tuple[int, str | None]]],
) -> None:
    clock = FrozenClock(START)
    credits = MemoryCreditStore()
    store = MemoryInvoiceStore(clock, credits=credits)
    for n, (minor, priority, expiry, features) in enumerate(grants):
        await credits.create_grant(
            CreditGrant(
                id=f"g{n}",
                customer_id="c",
                name=f"g{n}",
                amount_minor=minor,
                currency=currency,
                funding_method="none",
                priority=priority,
                effective_at=START,
                status="active",
                created_at=START + timedelta(seconds=n),
                expires_at=None if expiry is None else month(expiry),
                features=features,
            )
        )
    funded = sum(g[0] for g in grants)
    for i, raw_lines in enumerate(invoices):
        period_start, period_end = month(i), month(i + 1)
        invoice_id = f"inv{i}"
        lines = [
            InvoiceLine(
                "usage", "rc", "x", period_start, period_end, Decimal(m), m, feature_key=f, id=f"{invoice_id}-{k}"
            )
            for k, (m, f) in enumerate(raw_lines, start=1)
        ]
        available = sum(b.balance_minor for b in await credits.balances("c"))
        paid = apply_credits(
            lines,
            await credits.balances("c"),
            invoice_id=invoice_id,
            currency=currency,
            at=period_end,
            period_start=period_start,
            period_end=period_end,
        )
        every = [*lines, *paid.lines]
        subtotal = sum(m for m, _ in raw_lines)
        invoice = Invoice(
            invoice_id,
            "c",
            currency,
            "draft",
            period_start,
            period_end,
            tuple(every),
            sum(x.amount_minor for x in every),
            billing_key=invoice_id,
        )
        stored = await store.create_invoice(invoice, ledger=paid.transactions)
        assert stored is not None
        assert stored.total_minor >= min(0, subtotal)
        assert stored.total_minor >= subtotal - available
        consumed = [
            r for r in await credits.list_transactions("c") if r.kind == "consumed" and r.invoice_id == invoice_id
        ]
        for credit_line in (x for x in stored.lines if x.kind == "credit"):
            grant_id = credit_line.metadata["grant_id"]
            assert -credit_line.amount_minor == -sum(r.amount_minor for r in consumed if r.grant_id == grant_id)
            assert credit_line.amount_minor < 0
        assert -sum(x.amount_minor for x in stored.lines if x.kind == "credit") == -sum(
            r.amount_minor for r in consumed
        )
        for line in lines:
            assert -sum(r.amount_minor for r in consumed if r.invoice_line_id == line.id) <= max(0, line.amount_minor)
    balances = await credits.balances("c")
    assert all(b.balance_minor >= 0 for b in balances)
    rows = await credits.list_transactions("c")
    assert sum(b.balance_minor for b in balances) == funded + sum(r.amount_minor for r in rows if r.kind == "consumed")

"""Stripe idempotency keys are derived from Tollway's ids alone, so a retry after a crash sends the very key the
first attempt sent and Stripe answers with the object it already made. A recording fake stands in for the
Stripe client (no HTTP); the expected keys are literals."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import cast

import pytest

from tests.support.stripe_invoices import CrashingStore, Customers
from tollway.adapters.memory.invoices import MemoryInvoiceStore
from tollway.adapters.stripe.client import (
    StripeApi,
    StripeCustomerParams,
    StripeInvoiceParams,
    StripeInvoiceState,
    StripeItem,
    StripeItemParams,
    idempotency_key,
)
from tollway.adapters.stripe.sync import StripeSync
from tollway.billing.customers import Customer
from tollway.billing.invoicing.model import Invoice, InvoiceLine
from tollway.billing.invoicing.ports import IssueRequest
from tollway.clock import FrozenClock

NOW = datetime(2026, 3, 1, 1, 0, tzinfo=UTC)


def test_the_key_is_the_parts_joined() -> None:
    assert idempotency_key("invoice", "inv01") == "tollway:invoice:inv01"
    assert idempotency_key("item", "inv01", "inv01-2") == "tollway:item:inv01:inv01-2"
    assert idempotency_key("invoice", "inv01") == idempotency_key("invoice", "inv01")


@dataclass
class RecordingStripe:
    """The StripeApi calls the sync makes; each creating call is answered once per idempotency key, as Stripe does
    (a repeated key gets the first answer back)."""

    calls: list[tuple[str, str]] = field(default_factory=list)  # (call, idempotency key)
    answers: dict[str, str] = field(default_factory=dict)  # key -> id of what it created
    items: dict[str, list[StripeItem]] = field(default_factory=dict)

    def _create(self, call: str, key: str, prefix: str) -> str:
        self.calls.append((call, key))
        return self.answers.setdefault(key, f"{prefix}_{len(self.answers) + 1}")

    async def create_customer(self, params: StripeCustomerParams, *, idempotency_key: str) -> str:
        return self._create("create_customer", idempotency_key, "cus")

    async def create_invoice(self, params: StripeInvoiceParams, *, idempotency_key: str) -> StripeInvoiceState:
        return StripeInvoiceState(self._create("create_invoice", idempotency_key, "in"), "draft")

    async def retrieve_invoice(self, invoice_id: str) -> StripeInvoiceState:
        return StripeInvoiceState(invoice_id, "draft")

    async def invoice_items(self, invoice_id: str) -> list[StripeItem]:
        return list(self.items.get(invoice_id, []))

    async def create_item(self, params: StripeItemParams, *, idempotency_key: str) -> str:
        item_id = self._create("create_item", idempotency_key, "ii")
        self.items.setdefault(params.invoice, []).append(StripeItem(item_id, params.amount, dict(params.metadata)))
        return item_id

    async def finalize_invoice(self, invoice_id: str, *, idempotency_key: str) -> StripeInvoiceState:
        self.calls.append(("finalize_invoice", idempotency_key))
        return StripeInvoiceState(invoice_id, "open", number="TW-2026-000001")


async def issued_invoice(store: MemoryInvoiceStore) -> Invoice:
    line = InvoiceLine(
        kind="flat",
        rate_card_key="platform-fee",
        description="Platform fee",
        period_start=NOW - timedelta(days=28),
        period_end=NOW,
        amount=Decimal(49),
        amount_minor=4900,
    )
    draft = Invoice(
        id="inv01",
        customer_id="cus01",
        currency="USD",
        status="draft",
        period_start=NOW - timedelta(days=28),
        period_end=NOW,
        lines=(line,),
        total_minor=4900,
        billing_key="sub01:open",
    )
    issued = await store.create_invoice(draft, issue=IssueRequest(issued_at=NOW, due_at=NOW + timedelta(days=30)))
    assert issued is not None
    return issued


async def test_a_retry_after_a_crash_sends_the_same_keys() -> None:
    clock = FrozenClock(NOW)
    store = CrashingStore(clock)
    store.crash_on = 1  # Tollway dies after Stripe created the invoice, before its id was stored
    invoice = await issued_invoice(store)
    (line,) = invoice.lines
    stripe = RecordingStripe()
    customers = Customers(Customer(id="cus01", key="acme", name="Acme"))
    sync = StripeSync(store=store, customers=customers, api=cast(StripeApi, stripe), clock=clock)

    with pytest.raises(RuntimeError, match="crash"):
        await sync.reconcile("inv01")
    assert stripe.calls == [("create_customer", "tollway:customer:cus01"), ("create_invoice", "tollway:invoice:inv01")]

    clock.advance(timedelta(minutes=5))  # the retry comes later, from another process: the keys do not change
    synced = await sync.reconcile("inv01")
    assert stripe.calls[2:] == [
        ("create_invoice", "tollway:invoice:inv01"),
        ("create_item", f"tollway:item:inv01:{line.id}"),
        ("finalize_invoice", "tollway:finalize:inv01"),
    ]
    # the repeated key got Stripe's first answer: one Stripe invoice, and it is the one recorded
    assert stripe.answers["tollway:invoice:inv01"] == "in_2"
    assert synced.stripe_invoice_id == "in_2"
    assert synced.stripe_status == "open"

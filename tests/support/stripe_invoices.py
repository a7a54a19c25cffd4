"""Invoices for the Stripe sync tests: a customer catalog over a dict, an invoice store that crashes at a chosen
step, the customer Acme, and an issued invoice with a usage, a flat and an adjustment line (its Stripe outbox
step enqueued)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tollway.adapters.memory.invoices import MemoryInvoiceStore
from tollway.billing.customers import Address, Customer
from tollway.billing.invoicing.model import Invoice, InvoiceLine
from tollway.billing.invoicing.ports import STRIPE_SYNC, InvoiceStore, IssueRequest
from tollway.clock import FrozenClock
from tollway.errors import NotFoundError

JAN = datetime(2026, 1, 1, tzinfo=UTC)
FEB = datetime(2026, 2, 1, tzinfo=UTC)
MAR = datetime(2026, 3, 1, tzinfo=UTC)


class Customers:
    """The two catalog calls the sync makes, over a dict."""

    def __init__(self, *customers: Customer) -> None:
        self.by_id = {c.id: c for c in customers}
        self.updates = 0

    async def customer(self, id_or_key: str) -> Customer:
        found = self.by_id.get(id_or_key)
        if found is None:
            raise NotFoundError(f"customer {id_or_key} not found", field="customer")
        return found

    async def update_customer(self, customer: Customer) -> Customer:
        self.updates += 1
        self.by_id[customer.id] = customer
        return customer


class CrashingStore(MemoryInvoiceStore):
    """Raises once, on the n-th record_stripe_ids call: Tollway dies after Stripe did the step."""

    crash_on: int | None = None
    recorded = 0

    async def record_stripe_ids(
        self,
        invoice_id: str,
        *,
        stripe_invoice_id: str | None = None,
        stripe_status: str | None = None,
        line_item_ids: Mapping[str, str] | None = None,
    ) -> Invoice:
        self.recorded += 1
        if self.recorded == self.crash_on:
            raise RuntimeError("crash before the step was recorded")
        return await super().record_stripe_ids(
            invoice_id, stripe_invoice_id=stripe_invoice_id, stripe_status=stripe_status, line_item_ids=line_item_ids
        )


ACME = Customer(
    id="cus01",
    key="acme",
    name="Acme Corp",
    subjects=("acme-corp",),
    email="billing@acme.test",
    billing_address=Address(country="DE", city="Berlin", line1="Alexanderplatz 1", postal_code="10178"),
)


def lines() -> tuple[InvoiceLine, ...]:
    return (
        InvoiceLine(
            kind="usage",
            rate_card_key="output-tokens",
            description="1,234,567 output tokens x $0.00001",
            period_start=JAN,
            period_end=FEB,
            amount=Decimal("12.34567"),
            amount_minor=1235,
            feature_key="output-tokens",
        ),
        InvoiceLine(
            kind="flat",
            rate_card_key="platform-fee",
            description="Platform fee",
            period_start=FEB,
            period_end=MAR,
            amount=Decimal(49),
            amount_minor=4900,
        ),
        InvoiceLine(
            kind="adjustment",
            rate_card_key="output-tokens",
            description="late usage re-rated",
            period_start=JAN - timedelta(days=31),
            period_end=JAN,
            amount=Decimal("-1.5"),
            amount_minor=-150,
            adjusts_invoice_id="inv00",
        ),
    )


async def issued_invoice(store: InvoiceStore, clock: FrozenClock, invoice_id: str = "inv01") -> Invoice:
    draft = Invoice(
        id=invoice_id,
        customer_id=ACME.id,
        currency="USD",
        status="draft",
        period_start=JAN,
        period_end=FEB,
        lines=lines(),
        total_minor=1235 + 4900 - 150,
        subscription_id="sub01",
        billing_key=f"sub01:{invoice_id}",
    )
    issue = IssueRequest(issued_at=clock.now(), due_at=clock.now() + timedelta(days=14), enqueue=(STRIPE_SYNC,))
    stored = await store.create_invoice(draft, issue=issue)
    assert stored is not None
    return stored

"""InvoiceService: the invoice use cases behind the API and the CLI — list, get, issue, void, mark
uncollectible, mark paid. Every method validates its input and raises a DomainError with a kind and the
offending field; an issued invoice never changes except its status (and its Stripe ids)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from tollway.billing.invoicing.lifecycle import STATUSES
from tollway.billing.invoicing.model import Invoice, InvoiceStatus
from tollway.billing.invoicing.ports import (
    NOTIFY_CREATED,
    STATUS_OUTBOX,
    STRIPE_SYNC,
    InvoiceStore,
    IssueRequest,
    notify_kinds,
)
from tollway.billing.ports import CatalogStore
from tollway.clock import Clock
from tollway.errors import NotFoundError, ValidationError


class InvoiceService:
    def __init__(
        self,
        store: InvoiceStore,
        catalog: CatalogStore,
        clock: Clock,
        *,
        due: timedelta = timedelta(days=30),
        stripe: bool = False,
        notify: bool = False,
    ) -> None:
        self._store = store
        self._catalog = catalog
        self._clock = clock
        self._due = due
        self._stripe = stripe
        self._notify = notify  # issuing and status changes enqueue notification rows (tollway.notifications)
        self.on_paid: Callable[[Invoice], Awaitable[object]] | None = None  # e.g. bought credits become active
        self.on_void: Callable[[Invoice], Awaitable[object]] | None = None  # e.g. consumed credits come back

    @property
    def store(self) -> InvoiceStore:
        return self._store

    async def list(self, *, customer: str | None = None, status: str | None = None) -> list[Invoice]:
        """Oldest first. `customer`: an id or a key; `status`: draft, issued, paid, void or uncollectible."""
        wanted: InvoiceStatus | None = None
        if status is not None and status != "":
            if status not in STATUSES:
                raise ValidationError(f"status must be one of {', '.join(STATUSES)}, got {status!r}", field="status")
            wanted = status
        customer_id = None
        if customer is not None and customer != "":
            found = await self._catalog.get_customer(customer)
            if found is None:
                raise NotFoundError(f"customer {customer!r} not found", field="customer")
            customer_id = found.id
        return await self._store.list_invoices(customer_id=customer_id, status=wanted)

    async def get(self, invoice_id: str) -> Invoice:
        invoice = await self._store.get_invoice(invoice_id)
        if invoice is None:
            raise NotFoundError(f"invoice {invoice_id!r} not found", field="id")
        return invoice

    async def issue(self, invoice_id: str) -> Invoice:
        """Draft -> issued: the next number of the year's series, due in the configured days, and (when Stripe
        is configured) a Stripe sync enqueued in the same transaction."""
        await self.get(invoice_id)
        now = self._clock.now()
        enqueue = ((STRIPE_SYNC,) if self._stripe else ()) + ((NOTIFY_CREATED,) if self._notify else ())
        return await self._store.issue_invoice(
            invoice_id, IssueRequest(issued_at=now, due_at=now + self._due, enqueue=enqueue)
        )

    async def void(self, invoice_id: str, *, sync_stripe: bool = True) -> Invoice:
        """Draft or issued (or uncollectible) -> void; the record and its number stay. An issued invoice voided
        here is voided in Stripe too (`sync_stripe=False` when the change comes from Stripe)."""
        voided = await self._change(invoice_id, "void", self._clock.now(), sync_stripe=sync_stripe)
        if self.on_void is not None:
            await self.on_void(voided)
        return voided

    async def mark_uncollectible(self, invoice_id: str) -> Invoice:
        """Issued -> uncollectible; Stripe (when on) stops collecting it."""
        return await self._change(invoice_id, "uncollectible", self._clock.now(), sync_stripe=True)

    async def mark_paid(self, invoice_id: str, *, at: datetime | None = None, sync_stripe: bool = True) -> Invoice:
        """Issued or uncollectible -> paid (collected outside Stripe). When Stripe is on, its copy is settled
        so that Stripe never charges it too: a draft deleted, an open invoice paid out of band."""
        paid = await self._change(invoice_id, "paid", at or self._clock.now(), sync_stripe=sync_stripe)
        if self.on_paid is not None:
            await self.on_paid(paid)
        return paid

    async def _change(self, invoice_id: str, status: InvoiceStatus, at: datetime, *, sync_stripe: bool) -> Invoice:
        """The status change with, in the same transaction, the outbox row that brings Stripe in line (a draft
        never reached Stripe: none)."""
        invoice = await self.get(invoice_id)
        stripe = self._stripe and sync_stripe and invoice.status != "draft"
        enqueue = ((STATUS_OUTBOX[status],) if stripe else ()) + (notify_kinds(status) if self._notify else ())
        return await self._store.set_status(invoice_id, status, at=at, enqueue=enqueue)

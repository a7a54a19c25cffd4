"""StripeSync: push issued invoices to Stripe from the invoice outbox, one persisted step at a time.

For an outbox row `stripe.sync`:
1. the Stripe customer: the one stored on the Tollway customer, else created (idempotency key from the
   customer id) and stored on the customer at once;
2. the Stripe invoice: a draft with `pending_invoice_items_behavior=exclude` (so nothing else of the customer
   lands on it), created once (idempotency key from the invoice id), its id recorded at once;
3. one invoice item per line, attached to that draft (idempotency key from the line id), each item id recorded
   as it is created; on a retry the items already on the Stripe invoice (found by their `tollway_line_id`
   metadata) are reused, so even an expired idempotency key cannot add a second item for a line;
4. finalize (Stripe then collects it), unless the Stripe invoice is already past draft.
A crash or an error between any two steps leaves what was done recorded; the next attempt resumes there.
Failures are retried with capped exponential backoff; they never block period close (a separate step).

For `stripe.void` (a voided Tollway invoice): a Stripe draft is deleted, an open or uncollectible invoice voided.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Protocol

from tollway.adapters.stripe.client import StripeApi, StripeInvoiceState, idempotency_key
from tollway.adapters.stripe.mapping import customer_params, invoice_params, item_params, line_key
from tollway.billing.customers import Customer
from tollway.billing.invoicing.model import Invoice
from tollway.billing.invoicing.ports import STRIPE_SYNC, STRIPE_VOID, OutboxItem
from tollway.clock import Clock
from tollway.errors import DomainError, NotFoundError

log = logging.getLogger("tollway.stripe")
SYNCED_STATUSES = frozenset({"issued", "paid", "uncollectible"})


class SyncStore(Protocol):
    """The part of the InvoiceStore port the sync uses."""

    async def get_invoice(self, invoice_id: str) -> Invoice | None: ...

    async def record_stripe_ids(
        self,
        invoice_id: str,
        *,
        stripe_invoice_id: str | None = None,
        stripe_status: str | None = None,
        line_item_ids: Mapping[str, str] | None = None,
    ) -> Invoice: ...

    async def claim_outbox(
        self, *, now: datetime, limit: int = 10, lease_s: float = 300.0, kinds: Sequence[str] | None = None
    ) -> list[OutboxItem]: ...

    async def complete_outbox(self, item_id: str, *, at: datetime) -> None: ...

    async def fail_outbox(self, item_id: str, *, error: str, next_attempt_at: datetime) -> None: ...


class CustomerDirectory(Protocol):
    """The catalog calls the sync needs (CatalogService has them)."""

    async def customer(self, id_or_key: str) -> Customer: ...

    async def update_customer(self, customer: Customer) -> Customer: ...


class StripeSync:
    def __init__(
        self,
        *,
        store: SyncStore,
        customers: CustomerDirectory,
        api: StripeApi,
        clock: Clock,
        batch_size: int = 10,
        lease_s: float = 300.0,
        first_retry_s: float = 30.0,
        max_retry_s: float = 3600.0,
    ) -> None:
        self._store = store
        self._customers = customers
        self._api = api
        self._clock = clock
        self._batch_size = batch_size
        self._lease_s = lease_s
        self._first_retry_s = first_retry_s
        self._max_retry_s = max_retry_s

    @property
    def api(self) -> StripeApi:
        """The Stripe client this sync sends through (its owner closes it on shutdown)."""
        return self._api

    async def run_once(self) -> int:
        """Process the due outbox rows (one batch); returns how many completed. Errors are recorded on the
        rows (with the next attempt time), never raised, except the store's own."""
        items = await self._store.claim_outbox(
            now=self._clock.now(), limit=self._batch_size, lease_s=self._lease_s, kinds=(STRIPE_SYNC, STRIPE_VOID)
        )
        completed = 0
        for item in items:
            try:
                if item.kind == STRIPE_VOID:
                    await self.void_invoice(item.invoice_id)
                else:
                    await self.sync_invoice(item.invoice_id)
            except Exception as exc:  # any failure: record it on the row and retry later
                await self._store.fail_outbox(item.id, error=_describe(exc), next_attempt_at=self._next_attempt(item))
                log.warning(
                    "stripe %s of invoice %s failed (attempt %d): %s",
                    item.kind,
                    item.invoice_id,
                    item.attempts,
                    _describe(exc),
                )
                continue
            await self._store.complete_outbox(item.id, at=self._clock.now())
            completed += 1
        return completed

    def retry_delay_s(self, attempts: int) -> float:
        """Delay before the next attempt after `attempts` failed ones: doubling from `first_retry_s`, capped."""
        return float(min(self._max_retry_s, self._first_retry_s * 2 ** max(0, min(attempts - 1, 30))))

    def _next_attempt(self, item: OutboxItem) -> datetime:
        return self._clock.now() + timedelta(seconds=self.retry_delay_s(item.attempts))

    async def sync_invoice(self, invoice_id: str) -> Invoice:
        invoice = await self._invoice(invoice_id)
        if invoice.status not in SYNCED_STATUSES:
            log.info("stripe sync of invoice %s skipped: it is %s", invoice_id, invoice.status)
            return invoice
        stripe_customer = await self._stripe_customer(invoice.customer_id)
        resumed = invoice.stripe_invoice_id is not None
        if invoice.stripe_invoice_id is None:
            state = await self._api.create_invoice(
                invoice_params(invoice, stripe_customer), idempotency_key=idempotency_key("invoice", invoice.id)
            )
            invoice = await self._store.record_stripe_ids(
                invoice.id, stripe_invoice_id=state.id, stripe_status=state.status
            )
        else:
            state = await self._api.retrieve_invoice(invoice.stripe_invoice_id)
        if state.status == "draft":
            invoice = await self._add_items(invoice, state, stripe_customer, look_up=resumed)
            state = await self._api.finalize_invoice(state.id, idempotency_key=idempotency_key("finalize", invoice.id))
        if state.status != invoice.stripe_status:
            invoice = await self._store.record_stripe_ids(invoice.id, stripe_status=state.status)
        return invoice

    async def void_invoice(self, invoice_id: str) -> Invoice:
        invoice = await self._invoice(invoice_id)
        if invoice.stripe_invoice_id is None:
            return invoice  # never reached Stripe (a sync still pending skips a void invoice)
        state = await self._api.retrieve_invoice(invoice.stripe_invoice_id)
        if state.status == "draft":
            await self._api.delete_draft(state.id)
            status = "deleted"
        elif state.status in ("open", "uncollectible"):
            voided = await self._api.void_invoice(state.id, idempotency_key=idempotency_key("void", invoice.id))
            status = voided.status
        else:
            status = state.status  # paid or void already: nothing to undo here
        return await self._store.record_stripe_ids(invoice.id, stripe_status=status)

    async def _invoice(self, invoice_id: str) -> Invoice:
        invoice = await self._store.get_invoice(invoice_id)
        if invoice is None:
            raise NotFoundError(f"invoice {invoice_id} does not exist", field="invoice_id")
        return invoice

    async def _stripe_customer(self, customer_id: str) -> str:
        customer = await self._customers.customer(customer_id)
        if customer.stripe_customer_id:
            return customer.stripe_customer_id
        created = await self._api.create_customer(
            customer_params(customer), idempotency_key=idempotency_key("customer", customer.id)
        )
        await self._customers.update_customer(replace(customer, stripe_customer_id=created))
        return created

    async def _add_items(
        self, invoice: Invoice, state: StripeInvoiceState, stripe_customer: str, *, look_up: bool
    ) -> Invoice:
        known = {line_key(invoice, i): line.stripe_invoice_item_id for i, line in enumerate(invoice.lines)}
        if look_up:
            found = {
                item.metadata["tollway_line_id"]: item.id
                for item in await self._api.invoice_items(state.id)
                if item.metadata.get("tollway_invoice_id") == invoice.id and "tollway_line_id" in item.metadata
            }
            unrecorded = {key: item_id for key, item_id in found.items() if known.get(key) != item_id}
            if unrecorded:
                invoice = await self._store.record_stripe_ids(invoice.id, line_item_ids=unrecorded)
            known.update(found)
        for index in _missing(invoice, known):
            key = line_key(invoice, index)
            item_id = await self._api.create_item(
                item_params(invoice, index, stripe_customer=stripe_customer, stripe_invoice=state.id),
                idempotency_key=idempotency_key("item", invoice.id, key),
            )
            invoice = await self._store.record_stripe_ids(invoice.id, line_item_ids={key: item_id})
            known[key] = item_id
        return invoice


def _missing(invoice: Invoice, known: dict[str, str | None]) -> Sequence[int]:
    return [i for i in range(len(invoice.lines)) if not known.get(line_key(invoice, i))]


def _describe(exc: Exception) -> str:
    if isinstance(exc, DomainError):
        return f"{exc.kind.value}: {exc.message}"
    return f"{exc.__class__.__name__}: {exc}"

"""StripeSync: keep each invoice's Stripe copy in line with the invoice's status, from the invoice outbox.

Every outbox row of an invoice (`stripe.sync` when it is issued; `stripe.paid`, `stripe.void`,
`stripe.uncollectible` when Tollway itself changes its status) runs the same `reconcile`, which reads
the invoice again before every Stripe write and acts on what it finds, never on what an earlier step
read. So the outbox, `mark-paid` / `void` / `mark-uncollectible` and the Stripe webhook agree in
whatever order they run.

While the invoice is **issued**, it is pushed, one persisted step at a time:
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

Once the invoice is **paid, void or uncollectible** (whoever changed it), nothing more is pushed and what
Stripe holds is brought in line (`settle_action`): a Stripe draft is deleted (the customer was never asked);
an open Stripe invoice is paid out of band when Tollway has it paid (collected outside Stripe: Stripe must
not charge it), voided when void, marked uncollectible when uncollectible. An invoice never created in
Stripe needs no Stripe call at all. A status change that commits while a finalize is already on its way to
Stripe is applied by the change's own outbox row, which runs after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Protocol

from tollway.adapters.stripe.client import StripeApi, StripeInvoiceState, idempotency_key
from tollway.adapters.stripe.mapping import customer_params, invoice_params, item_params, line_key
from tollway.billing.customers import Customer
from tollway.billing.invoicing.model import Invoice, InvoiceStatus
from tollway.billing.invoicing.ports import STRIPE_KINDS, OutboxItem
from tollway.clock import Clock
from tollway.errors import DomainError, NotFoundError

log = logging.getLogger("tollway.stripe")
STRIPE_FINAL = frozenset({"paid", "void", "deleted"})  # a Stripe invoice (or draft) past any change


def settle_action(status: InvoiceStatus, stripe_status: str) -> str | None:
    """What Stripe must be asked so that an invoice Tollway has paid, void or uncollectible is never charged
    by Stripe: "delete" a draft, "pay_out_of_band", "void" or "mark_uncollectible" an open (or uncollectible)
    one; None when Stripe's copy already agrees or can no longer change (paid or void in Stripe)."""
    if stripe_status == "draft":
        return "delete"
    if stripe_status not in ("open", "uncollectible"):
        return None
    if status == "paid":
        return "pay_out_of_band"
    if status == "void":
        return "void"
    if status == "uncollectible" and stripe_status == "open":
        return "mark_uncollectible"
    return None


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

    async def release_outbox(self, item_ids: Sequence[str], *, at: datetime) -> None: ...

    async def fail_outbox(self, item_id: str, *, error: str, next_attempt_at: datetime) -> None: ...


class CustomerDirectory(Protocol):
    """The catalog calls the sync needs (CustomerService has them)."""

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
        self._claiming: asyncio.Future[list[OutboxItem]] | None = None
        self._held: set[str] = set()  # outbox rows claimed and not yet completed or failed

    @property
    def api(self) -> StripeApi:
        """The Stripe client this sync sends through (its owner closes it on shutdown)."""
        return self._api

    async def run_once(self) -> int:
        """Process the due outbox rows (one batch); returns how many completed. Errors are recorded on the
        rows (with the next attempt time), never raised, except the store's own."""
        claim = asyncio.ensure_future(
            self._store.claim_outbox(
                now=self._clock.now(), limit=self._batch_size, lease_s=self._lease_s, kinds=STRIPE_KINDS
            )
        )
        self._claiming = claim  # cancelled meanwhile: `release` still learns what it claimed
        items = await asyncio.shield(claim)
        self._claiming = None
        self._held.update(item.id for item in items)
        completed = 0
        for item in items:
            try:
                await self.reconcile(item.invoice_id)
            except Exception as exc:  # any failure: record it on the row and retry later
                await self._store.fail_outbox(item.id, error=_describe(exc), next_attempt_at=self._next_attempt(item))
                self._held.discard(item.id)
                log.warning(
                    "stripe %s of invoice %s failed (attempt %d): %s",
                    item.kind,
                    item.invoice_id,
                    item.attempts,
                    _describe(exc),
                )
                continue
            await self._store.complete_outbox(item.id, at=self._clock.now())
            self._held.discard(item.id)
            completed += 1
        return completed

    async def release(self) -> None:
        """Hand back the rows claimed and not finished (a clean stop cancelled the round): due again now,
        not after their lease."""
        if self._claiming is not None:
            with contextlib.suppress(Exception):
                self._held.update(item.id for item in await self._claiming)
            self._claiming = None
        if self._held:
            await self._store.release_outbox(sorted(self._held), at=self._clock.now())
            self._held.clear()

    def retry_delay_s(self, attempts: int) -> float:
        """Delay before the next attempt after `attempts` failed ones: doubling from `first_retry_s`, capped."""
        return float(min(self._max_retry_s, self._first_retry_s * 2 ** max(0, min(attempts - 1, 30))))

    def _next_attempt(self, item: OutboxItem) -> datetime:
        return self._clock.now() + timedelta(seconds=self.retry_delay_s(item.attempts))

    async def reconcile(self, invoice_id: str) -> Invoice:
        """Push an issued invoice to Stripe, or bring Stripe's copy in line with a paid, void or
        uncollectible one. Reads the invoice again before every Stripe write."""
        invoice = await self._invoice(invoice_id)
        if invoice.status == "draft":
            return invoice  # not issued yet (a sync row is only written when it is)
        state: StripeInvoiceState | None = None
        if invoice.status == "issued":
            invoice, state = await self._push(invoice)
        if invoice.status == "issued":
            return invoice
        return await self._settle(invoice, state)

    async def _push(self, invoice: Invoice) -> tuple[Invoice, StripeInvoiceState | None]:
        """Steps 1-4 while the invoice stays issued; returns as soon as a re-read finds it is not."""
        stripe_customer = await self._stripe_customer(invoice.customer_id)
        invoice = await self._invoice(invoice.id)
        if invoice.status != "issued":
            return invoice, None
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
        if state.status == "draft" and invoice.status == "issued":
            invoice = await self._add_items(invoice, state, stripe_customer, look_up=resumed)
            if invoice.status != "issued":
                return invoice, state
            invoice = await self._invoice(invoice.id)  # the last look before Stripe starts collecting
            if invoice.status != "issued":
                return invoice, state
            state = await self._api.finalize_invoice(state.id, idempotency_key=idempotency_key("finalize", invoice.id))
        if state.status != invoice.stripe_status:
            invoice = await self._store.record_stripe_ids(invoice.id, stripe_status=state.status)
        return invoice, state

    async def _settle(self, invoice: Invoice, state: StripeInvoiceState | None) -> Invoice:
        """A paid, void or uncollectible invoice: make sure Stripe never charges it (see `settle_action`)."""
        if invoice.stripe_invoice_id is None:
            # Never recorded as created in Stripe: nothing there can charge (a create whose reply was lost
            # left at most an empty draft, as items are only added to a recorded invoice).
            return invoice
        if state is None:
            if invoice.stripe_status in STRIPE_FINAL:
                return invoice  # paid (the webhook said so), void or deleted in Stripe: nothing can change
            state = await self._api.retrieve_invoice(invoice.stripe_invoice_id)
        action = settle_action(invoice.status, state.status)
        status = state.status
        if action == "delete":
            await self._api.delete_draft(state.id)
            status = "deleted"
        elif action == "pay_out_of_band":
            paid = await self._api.pay_out_of_band(state.id, idempotency_key=idempotency_key("paid", invoice.id))
            status = paid.status
        elif action == "void":
            voided = await self._api.void_invoice(state.id, idempotency_key=idempotency_key("void", invoice.id))
            status = voided.status
        elif action == "mark_uncollectible":
            marked = await self._api.mark_uncollectible(
                state.id, idempotency_key=idempotency_key("uncollectible", invoice.id)
            )
            status = marked.status
        elif invoice.status == "void" and state.status == "paid":
            log.warning("invoice %s is void but Stripe collected it (%s): refund it in Stripe", invoice.id, state.id)
        if status == invoice.stripe_status:
            return invoice
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
        # Read it again: written back as read before Stripe answered, an edit made meanwhile (an apply, the
        # API) would be undone.
        current = await self._customers.customer(customer.id)
        if current.stripe_customer_id:
            return current.stripe_customer_id  # linked meanwhile (the config file names one)
        await self._customers.update_customer(replace(current, stripe_customer_id=created))
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
            invoice = await self._invoice(invoice.id)  # re-read before every item: stop once it is not issued
            if invoice.status != "issued":
                return invoice
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

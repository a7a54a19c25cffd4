"""What the payment provider that collects an invoice reports about it, applied to Tollway's invoice.

The provider's adapter (tollway.adapters.stripe.webhooks) authenticates and reads its events; this module decides
what each one does to the invoice it names: paid, void and uncollectible move the invoice along its lifecycle (at
the time the provider says it happened, else now), a failed payment only records the provider's status (the
provider retries; a failed attempt is not final). Applying an event is idempotent (a transition to the status an
invoice has is a no-op). An event that names no Tollway invoice, names another provider invoice than the one
Tollway's is, or asks for a transition the lifecycle refuses is ignored, with the reason as its action.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from tollway.billing.invoicing.model import Invoice, InvoiceStatus
from tollway.billing.invoicing.ports import notify_kinds
from tollway.errors import ConflictError

log = logging.getLogger("tollway.stripe")

PaymentEventKind = Literal["paid", "void", "uncollectible", "payment_failed"]


class CollectionStore(Protocol):
    """The part of the InvoiceStore port the events use."""

    async def get_invoice(self, invoice_id: str) -> Invoice | None: ...

    async def set_status(
        self, invoice_id: str, status: InvoiceStatus, *, at: datetime, enqueue: Sequence[str] = ()
    ) -> Invoice: ...

    async def record_stripe_ids(
        self,
        invoice_id: str,
        *,
        stripe_invoice_id: str | None = None,
        stripe_status: str | None = None,
        line_item_ids: Mapping[str, str] | None = None,
    ) -> Invoice: ...


@dataclass(frozen=True)
class PaymentEvent:
    """One event of the payment provider, as its adapter read it.

    `type` is the provider's name for it; `about_invoice` whether it is about an invoice at all; `kind` what it
    means for the invoice (None: nothing Tollway handles); `invoice_id` the Tollway invoice it names (None: none);
    `provider_invoice_id` and `provider_status` the provider's own id and status of its invoice; `at` when the
    provider says the transition happened (None: not said)."""

    id: str
    type: str
    about_invoice: bool
    kind: PaymentEventKind | None
    invoice_id: str | None
    provider_invoice_id: object = None
    provider_status: str | None = None
    at: datetime | None = None


@dataclass(frozen=True)
class WebhookOutcome:
    """What receiving one event did: `action` is "paid", "void", "uncollectible", "recorded" or "ignored: <why>";
    `duplicate` an event id already received (nothing applied twice)."""

    event_id: str
    type: str
    duplicate: bool
    action: str
    invoice_id: str | None = None


class PaymentWebhooks(Protocol):
    """A payment provider's webhook receiver, as the management API calls it: verify, apply, record. Raises
    ValidationError (nothing applied) for a bad signature or body."""

    async def receive(self, payload: bytes, signature: str | None) -> WebhookOutcome: ...


PaymentFailed = Callable[[Invoice, str], Awaitable[object]]  # (the invoice, the provider's event id)


class InvoiceCollection:
    """Applies payment events to invoices."""

    def __init__(
        self, store: CollectionStore, *, notify: bool = False, payment_failed: PaymentFailed | None = None
    ) -> None:
        self._store = store
        self._notify = notify  # status changes enqueue their notification rows (invoice.updated, invoice.paid)
        self._payment_failed = payment_failed  # notifies invoice.payment_failed (deduplicated on the event id)
        self.on_paid: Callable[[str], Awaitable[object]] | None = None  # e.g. a bought credit grant becomes active
        self.on_void: Callable[[str], Awaitable[object]] | None = None  # e.g. the credits it consumed come back

    async def apply(self, event: PaymentEvent, now: datetime) -> tuple[str, str | None]:
        """(action, the Tollway invoice named)."""
        if not event.about_invoice:
            return f"ignored: {event.type} is not handled", None
        invoice_id = event.invoice_id
        if invoice_id is None:
            return "ignored: not a Tollway invoice (no tollway_invoice_id metadata)", None
        invoice = await self._store.get_invoice(invoice_id)
        if invoice is None:
            return f"ignored: invoice {invoice_id} does not exist", invoice_id
        if invoice.stripe_invoice_id is not None and event.provider_invoice_id != invoice.stripe_invoice_id:
            return f"ignored: invoice {invoice_id} is Stripe invoice {invoice.stripe_invoice_id}", invoice_id
        if event.kind == "payment_failed":
            if event.provider_status is not None:
                invoice = await self._store.record_stripe_ids(invoice_id, stripe_status=event.provider_status)
            if self._payment_failed is not None:
                await self._payment_failed(invoice, event.id)
            return "recorded", invoice_id
        if event.kind is None:
            return f"ignored: {event.type} is not handled", invoice_id
        status: InvoiceStatus = event.kind
        try:
            enqueue = notify_kinds(status) if self._notify else ()
            await self._store.set_status(invoice_id, status, at=event.at or now, enqueue=enqueue)
        except ConflictError as exc:
            log.warning("stripe webhook %s for invoice %s refused: %s", event.type, invoice_id, exc.message)
            return f"ignored: {exc.message}", invoice_id
        if event.provider_status is not None:
            await self._store.record_stripe_ids(invoice_id, stripe_status=event.provider_status)
        if status == "paid" and self.on_paid is not None:
            await self.on_paid(invoice_id)
        if status == "void" and self.on_void is not None:
            await self.on_void(invoice_id)
        return status, invoice_id

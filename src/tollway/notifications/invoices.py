"""Invoice events: the invoice store writes a notification row into its outbox in the same transaction as the
change it reports (issued -> `n:invoice.created`; a status change -> `n:invoice.updated:<status>`, and
`n:invoice.paid`); this step claims those rows and turns each into one event per active rule of its type,
with the invoice as the API shows it. The event's dedup key is the row's (kind, invoice), so a crash between
storing the events and completing the row, retried, stores nothing twice."""

from __future__ import annotations

import logging
from datetime import timedelta

from tollway.billing.invoicing.ports import NOTIFY_CREATED, NOTIFY_PAID, NOTIFY_UPDATED_PREFIX, InvoiceStore
from tollway.clock import Clock
from tollway.notifications.model import INVOICE_CREATED, INVOICE_PAID, INVOICE_UPDATED
from tollway.notifications.service import NotificationService
from tollway.notifications.shapes import Shapes

log = logging.getLogger("tollway.notifications")
KINDS: dict[str, str] = {
    NOTIFY_CREATED: INVOICE_CREATED,
    NOTIFY_PAID: INVOICE_PAID,
    **{NOTIFY_UPDATED_PREFIX + s: INVOICE_UPDATED for s in ("issued", "paid", "void", "uncollectible")},
}
RETRY = timedelta(seconds=30)


class InvoiceEvents:
    def __init__(
        self, invoices: InvoiceStore, service: NotificationService, shapes: Shapes, clock: Clock, *, batch: int = 50
    ) -> None:
        self._invoices = invoices
        self._service = service
        self._shapes = shapes
        self._clock = clock
        self._batch = batch

    async def run_once(self) -> int:
        """Fan out the due notification rows; returns how many rows were done."""
        items = await self._invoices.claim_outbox(
            now=self._clock.now(), limit=self._batch, lease_s=60.0, kinds=tuple(KINDS)
        )
        done = 0
        for item in items:
            try:
                invoice = await self._invoices.get_invoice(item.invoice_id)
                if invoice is not None:
                    await self._service.emit(
                        KINDS[item.kind],
                        self._shapes.invoice(invoice),
                        dedup_key=f"{item.kind}:{invoice.id}",
                        subject_key=invoice.customer_id,
                    )
                await self._invoices.complete_outbox(item.id, at=self._clock.now())
                done += 1
            except Exception as exc:
                log.warning("invoice notification %s for %s not stored: %s", item.kind, item.invoice_id, exc)
                await self._invoices.fail_outbox(
                    item.id, error=str(exc)[:500], next_attempt_at=self._clock.now() + RETRY
                )
        return done

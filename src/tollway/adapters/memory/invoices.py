"""MemoryInvoiceStore: the InvoiceStore port in memory, held to the same rules as the SQL adapter by the
contract suite (tests/contract/test_invoice_store.py). Each method completes without awaiting, so calls
on one event loop are atomic."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from tollway.adapters.memory.credits import MemoryCreditStore
from tollway.billing.credits.model import CreditTransaction
from tollway.billing.invoicing.lifecycle import check_transition, invoice_number, number_series
from tollway.billing.invoicing.model import Invoice, InvoiceStatus
from tollway.billing.invoicing.ports import IssueRequest, OutboxItem
from tollway.clock import Clock, SystemClock
from tollway.errors import ConflictError, NotFoundError, UnavailableError, ValidationError
from tollway.ids import new_id


def with_line_ids(invoice: Invoice) -> Invoice:
    """Lines without an id get `{invoice id}-{position}` (1-based), stable for idempotency keys."""
    if all(line.id for line in invoice.lines):
        return invoice
    lines = tuple(
        line if line.id else replace(line, id=f"{invoice.id}-{n}") for n, line in enumerate(invoice.lines, start=1)
    )
    return replace(invoice, lines=lines)


def check_new(invoice: Invoice) -> None:
    if not invoice.billing_key:
        raise ValidationError("an invoice is stored with its billing key", field="billing_key")
    if invoice.status != "draft":
        raise ValidationError("an invoice is stored as a draft (then issued)", field="status")
    if invoice.total_minor != sum(line.amount_minor for line in invoice.lines):
        raise ValidationError("total_minor must be the sum of the lines' amount_minor", field="total_minor")


class MemoryInvoiceStore:
    def __init__(self, clock: Clock | None = None, *, credits: MemoryCreditStore | None = None) -> None:
        self._clock = clock or SystemClock()
        self._credits = credits
        self._invoices: dict[str, Invoice] = {}
        self._keys: dict[str, str] = {}
        self._series: dict[str, int] = {}
        self._claims: dict[str, tuple[str, datetime]] = {}
        self._outbox: dict[str, OutboxItem] = {}
        self._webhook_events: dict[str, datetime] = {}
        self.available = True

    def _check(self) -> None:
        if not self.available:
            raise UnavailableError("memory invoice store set unavailable")

    def _get(self, invoice_id: str) -> Invoice:
        invoice = self._invoices.get(invoice_id)
        if invoice is None:
            raise NotFoundError(f"invoice {invoice_id!r} not found", field="id")
        return invoice

    # -- invoices -----------------------------------------------------------------------------

    async def create_invoice(
        self, invoice: Invoice, *, issue: IssueRequest | None = None, ledger: Sequence[CreditTransaction] = ()
    ) -> Invoice | None:
        self._check()
        check_new(invoice)
        assert invoice.billing_key is not None
        if invoice.billing_key in self._keys:
            return None
        if invoice.id in self._invoices:
            raise ConflictError(f"invoice {invoice.id!r} already exists", field="id")
        now = self._clock.now()
        stored = with_line_ids(replace(invoice, created_at=invoice.created_at or now, updated_at=now))
        if ledger:
            if self._credits is None:
                raise ValidationError("this invoice store has no credit store for the ledger", field="credits")
            self._credits.write_consumption(ledger)  # raises before anything is stored; no await: atomic
        if issue is not None:
            stored = self._issued(stored, issue)
        self._invoices[stored.id] = stored
        self._keys[invoice.billing_key] = stored.id
        self._claims.pop(invoice.billing_key, None)
        return stored

    def _issued(self, invoice: Invoice, issue: IssueRequest) -> Invoice:
        check_transition(invoice.id, invoice.status, "issued")
        series = number_series(issue.issued_at)
        n = self._series.get(series, 0) + 1
        self._series[series] = n
        for kind in issue.enqueue:
            self._enqueue(invoice.id, kind, issue.issued_at)
        return replace(
            invoice,
            status="issued",
            number=invoice_number(series, n),
            issued_at=issue.issued_at,
            due_at=issue.due_at,
            updated_at=issue.issued_at,
        )

    async def get_invoice(self, invoice_id: str) -> Invoice | None:
        self._check()
        return self._invoices.get(invoice_id)

    async def get_invoice_by_key(self, billing_key: str) -> Invoice | None:
        self._check()
        invoice_id = self._keys.get(billing_key)
        return self._invoices[invoice_id] if invoice_id is not None else None

    async def list_invoices(
        self,
        *,
        customer_id: str | None = None,
        status: InvoiceStatus | None = None,
        subscription_id: str | None = None,
        period_end_from: datetime | None = None,
    ) -> list[Invoice]:
        self._check()
        found = [
            invoice
            for invoice in self._invoices.values()
            if (customer_id is None or invoice.customer_id == customer_id)
            and (status is None or invoice.status == status)
            and (subscription_id is None or invoice.subscription_id == subscription_id)
            and (period_end_from is None or invoice.period_end >= period_end_from)
        ]
        return sorted(found, key=lambda i: (i.created_at or datetime.min, i.id))

    async def existing_billing_keys(self, keys: Sequence[str]) -> set[str]:
        self._check()
        return {key for key in keys if key in self._keys}

    async def issue_invoice(self, invoice_id: str, issue: IssueRequest) -> Invoice:
        self._check()
        invoice = self._get(invoice_id)
        if invoice.status != "draft":
            raise ConflictError(f"invoice {invoice_id} is {invoice.status}: only a draft is issued", field="status")
        issued = self._issued(invoice, issue)
        self._invoices[invoice_id] = issued
        return issued

    async def set_status(
        self, invoice_id: str, status: InvoiceStatus, *, at: datetime, enqueue: Sequence[str] = ()
    ) -> Invoice:
        self._check()
        invoice = self._get(invoice_id)
        if status in ("draft", "issued"):
            raise ValidationError(f"set_status cannot make an invoice {status}", field="status")
        if not check_transition(invoice_id, invoice.status, status):
            return invoice
        changed = replace(invoice, status=status, updated_at=at)
        if status == "paid":
            changed = replace(changed, paid_at=at)
        elif status == "void":
            changed = replace(changed, voided_at=at)
        else:
            changed = replace(changed, uncollectible_at=at)
        self._invoices[invoice_id] = changed
        for kind in enqueue:
            self._enqueue(invoice_id, kind, at)
        return changed

    async def record_stripe_ids(
        self,
        invoice_id: str,
        *,
        stripe_invoice_id: str | None = None,
        stripe_status: str | None = None,
        line_item_ids: Mapping[str, str] | None = None,
    ) -> Invoice:
        self._check()
        invoice = self._get(invoice_id)
        items = dict(line_item_ids or {})
        unknown = set(items) - {line.id for line in invoice.lines}
        if unknown:
            raise NotFoundError(f"invoice {invoice_id} has no line {sorted(unknown)[0]!r}", field="line_item_ids")
        lines = tuple(
            replace(line, stripe_invoice_item_id=items[line.id]) if line.id in items else line for line in invoice.lines
        )
        changed = replace(
            invoice,
            lines=lines,
            stripe_invoice_id=stripe_invoice_id if stripe_invoice_id is not None else invoice.stripe_invoice_id,
            stripe_status=stripe_status if stripe_status is not None else invoice.stripe_status,
        )
        self._invoices[invoice_id] = changed
        return changed

    # -- claims ---------------------------------------------------------------------------------

    async def claim_billing_keys(self, keys: Sequence[str], *, owner: str, now: datetime, lease_s: float) -> list[str]:
        self._check()
        claimed: list[str] = []
        for key in dict.fromkeys(keys):
            if key in self._keys:
                continue
            held = self._claims.get(key)
            if held is not None and held[0] != owner and held[1] > now:
                continue
            self._claims[key] = (owner, now + timedelta(seconds=lease_s))
            claimed.append(key)
        return claimed

    async def release_billing_claims(self, keys: Sequence[str], *, owner: str) -> None:
        self._check()
        for key in keys:
            held = self._claims.get(key)
            if held is not None and held[0] == owner:
                del self._claims[key]

    async def release_claims_of(self, owner: str) -> None:
        self._check()
        for key in [key for key, held in self._claims.items() if held[0] == owner]:
            del self._claims[key]

    # -- outbox ---------------------------------------------------------------------------------

    def _enqueue(self, invoice_id: str, kind: str, at: datetime) -> bool:
        if any(item.invoice_id == invoice_id and item.kind == kind for item in self._outbox.values()):
            return False
        item = OutboxItem(
            id=new_id(at), invoice_id=invoice_id, kind=kind, attempts=0, next_attempt_at=at, created_at=at
        )
        self._outbox[item.id] = item
        return True

    async def enqueue(self, invoice_id: str, kind: str, *, at: datetime) -> bool:
        self._check()
        self._get(invoice_id)
        return self._enqueue(invoice_id, kind, at)

    async def claim_outbox(
        self, *, now: datetime, limit: int = 10, lease_s: float = 300.0, kinds: Sequence[str] | None = None
    ) -> list[OutboxItem]:
        self._check()
        due = sorted(
            (
                item
                for item in self._outbox.values()
                if item.done_at is None and item.next_attempt_at <= now and (kinds is None or item.kind in kinds)
            ),
            key=lambda item: (item.next_attempt_at, item.created_at, item.id),
        )[:limit]
        claimed = []
        for item in due:
            taken = replace(item, attempts=item.attempts + 1, next_attempt_at=now + timedelta(seconds=lease_s))
            self._outbox[item.id] = taken
            claimed.append(taken)
        return claimed

    def _item(self, item_id: str) -> OutboxItem:
        item = self._outbox.get(item_id)
        if item is None:
            raise NotFoundError(f"outbox item {item_id!r} not found", field="id")
        return item

    async def complete_outbox(self, item_id: str, *, at: datetime) -> None:
        self._check()
        self._outbox[item_id] = replace(self._item(item_id), done_at=at, last_error=None)

    async def release_outbox(self, item_ids: Sequence[str], *, at: datetime) -> None:
        self._check()
        for item_id in item_ids:
            item = self._outbox.get(item_id)
            if item is not None and item.done_at is None:
                self._outbox[item_id] = replace(item, next_attempt_at=at)

    async def fail_outbox(self, item_id: str, *, error: str, next_attempt_at: datetime) -> None:
        self._check()
        self._outbox[item_id] = replace(self._item(item_id), last_error=error, next_attempt_at=next_attempt_at)

    async def get_outbox(self, invoice_id: str) -> list[OutboxItem]:
        self._check()
        return sorted(
            (item for item in self._outbox.values() if item.invoice_id == invoice_id),
            key=lambda item: (item.created_at, item.id),
        )

    # -- webhooks -------------------------------------------------------------------------------

    async def record_webhook_event(self, event_id: str, *, received_at: datetime) -> bool:
        self._check()
        if event_id in self._webhook_events:
            return False
        self._webhook_events[event_id] = received_at
        return True

    async def close(self) -> None:
        return None

"""InvoiceStore: the storage port of invoicing. Adapters: tollway.adapters.sql.invoices (SQLite, PostgreSQL)
and tollway.adapters.memory.invoices (the fake the contract suite holds to the same rules).

Invariants the store enforces, so that two workers (or a crash) cannot break them:
- an invoice and its lines are written in one transaction, under a unique billing key: a second
  `create_invoice` with the same key stores nothing and returns None;
- issuing assigns the next number of the invoice's series (TW-YYYY-nnnnnn) in the same transaction that
  changes the status (and enqueues the outbox rows asked for), so numbers have no gaps and no repeats;
- status changes follow tollway.billing.invoicing.lifecycle (ConflictError otherwise);
- an outbox row is claimed by one caller at a time (FOR UPDATE SKIP LOCKED on PostgreSQL) and comes back
  due after `lease_s` if its claimer dies without completing or failing it;
- a webhook event id is recorded once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from tollway.billing.credits.model import CreditTransaction
from tollway.billing.invoicing.model import Invoice, InvoiceStatus

STRIPE_SYNC = "stripe.sync"  # outbox kind: push an issued invoice to Stripe
STRIPE_VOID = "stripe.void"  # outbox kind: Tollway voided it: void (or delete) its Stripe copy
STRIPE_PAID = "stripe.paid"  # outbox kind: Tollway marked it paid: Stripe must not charge it
STRIPE_UNCOLLECTIBLE = "stripe.uncollectible"  # outbox kind: Tollway marked it uncollectible
STRIPE_KINDS = (STRIPE_SYNC, STRIPE_VOID, STRIPE_PAID, STRIPE_UNCOLLECTIBLE)  # each one reconciles the Stripe copy
# Outbox kinds that become notification events (tollway.notifications.invoices fans them out to the rules of
# their type): written in the transaction of the change they report, so an issued invoice notifies exactly once.
NOTIFY_CREATED = "n:invoice.created"
NOTIFY_PAID = "n:invoice.paid"
NOTIFY_UPDATED_PREFIX = "n:invoice.updated:"  # + the new status (each one is reached at most once)


def notify_kinds(status: InvoiceStatus) -> tuple[str, ...]:
    """The notification outbox rows of a status change: invoice.updated, and invoice.paid when paid."""
    kinds = [NOTIFY_UPDATED_PREFIX + status]
    if status == "paid":
        kinds.append(NOTIFY_PAID)
    return tuple(kinds)


STATUS_OUTBOX: dict[InvoiceStatus, str] = {
    "paid": STRIPE_PAID,
    "void": STRIPE_VOID,
    "uncollectible": STRIPE_UNCOLLECTIBLE,
}
"""The row a status change made in Tollway (not reported by Stripe) enqueues when Stripe is on: each status is
entered at most once, so each row is written once, in the transaction that changes the status."""


@dataclass(frozen=True)
class IssueRequest:
    """Issue an invoice: the time, the due date, and the outbox rows to enqueue in the same transaction."""

    issued_at: datetime
    due_at: datetime
    enqueue: tuple[str, ...] = ()


@dataclass(frozen=True)
class OutboxItem:
    id: str
    invoice_id: str
    kind: str  # one of STRIPE_KINDS
    attempts: int  # claims so far, this one included
    next_attempt_at: datetime
    created_at: datetime
    last_error: str | None = None
    done_at: datetime | None = None


class InvoiceStore(Protocol):
    # -- invoices -----------------------------------------------------------------------------
    async def create_invoice(
        self, invoice: Invoice, *, issue: IssueRequest | None = None, ledger: Sequence[CreditTransaction] = ()
    ) -> Invoice | None:
        """Store the invoice and its lines under `invoice.billing_key` (required) in one transaction, and
        issue it in that same transaction when `issue` is given, with the credit consumption rows `ledger`
        (checked against the grants' balances: ConflictError and nothing stored when one moved). None
        (nothing stored) if the key exists. Releases any billing claim on the key."""
        ...

    async def get_invoice(self, invoice_id: str) -> Invoice | None: ...

    async def get_invoice_by_key(self, billing_key: str) -> Invoice | None: ...

    async def list_invoices(
        self,
        *,
        customer_id: str | None = None,
        status: InvoiceStatus | None = None,
        subscription_id: str | None = None,
        period_end_from: datetime | None = None,
    ) -> list[Invoice]:
        """Oldest first (by creation time, then id), with their lines."""
        ...

    async def existing_billing_keys(self, keys: Sequence[str]) -> set[str]:
        """The keys among `keys` that an invoice already holds."""
        ...

    async def issue_invoice(self, invoice_id: str, issue: IssueRequest) -> Invoice:
        """Draft -> issued with the next number of its series. ConflictError if it is not a draft,
        NotFoundError if it does not exist."""
        ...

    async def set_status(
        self, invoice_id: str, status: InvoiceStatus, *, at: datetime, enqueue: Sequence[str] = ()
    ) -> Invoice:
        """Paid / void / uncollectible (the matching *_at set to `at`), with outbox rows enqueued in the same
        transaction. A no-op when the invoice already has `status`; ConflictError when illegal."""
        ...

    async def record_stripe_ids(
        self,
        invoice_id: str,
        *,
        stripe_invoice_id: str | None = None,
        stripe_status: str | None = None,
        line_item_ids: Mapping[str, str] | None = None,
    ) -> Invoice:
        """Record what the Stripe sync created (the invoice, its status, line id -> invoice item id). Only the
        given values change; issued content stays as it is."""
        ...

    # -- period-close claims: which worker computes which billing key ----------------------------
    async def claim_billing_keys(self, keys: Sequence[str], *, owner: str, now: datetime, lease_s: float) -> list[str]:
        """Claim the keys nobody else holds (or whose lease ran out) and that no invoice holds yet.
        A claim ends with `create_invoice` for the key, `release_billing_claims`, or the lease."""
        ...

    async def release_billing_claims(self, keys: Sequence[str], *, owner: str) -> None: ...

    async def release_claims_of(self, owner: str) -> None:
        """Every billing claim `owner` holds (a process that stops cleanly hands back what it holds; only a
        crashed one leaves its claims to their lease)."""
        ...

    # -- outbox ---------------------------------------------------------------------------------
    async def enqueue(self, invoice_id: str, kind: str, *, at: datetime) -> bool:
        """Add an outbox row (at most one per invoice and kind): False when one exists."""
        ...

    async def claim_outbox(
        self, *, now: datetime, limit: int = 10, lease_s: float = 300.0, kinds: Sequence[str] | None = None
    ) -> list[OutboxItem]:
        """Due rows (not done, next attempt <= now), oldest first; each one's next attempt moves to
        now + lease_s and its attempts count goes up by one."""
        ...

    async def complete_outbox(self, item_id: str, *, at: datetime) -> None: ...

    async def release_outbox(self, item_ids: Sequence[str], *, at: datetime) -> None:
        """Claimed rows handed back unfinished (a clean stop): those not done are due again at `at`."""
        ...

    async def fail_outbox(self, item_id: str, *, error: str, next_attempt_at: datetime) -> None: ...

    async def get_outbox(self, invoice_id: str) -> list[OutboxItem]: ...

    # -- webhooks -------------------------------------------------------------------------------
    async def record_webhook_event(self, event_id: str, *, received_at: datetime) -> bool:
        """True the first time an event id is seen, False for a replay."""
        ...

    async def close(self) -> None: ...

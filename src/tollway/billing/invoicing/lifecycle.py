"""Invoice lifecycle rules (pure): draft -> issued -> paid / void / uncollectible.

- A draft is issued (number assigned) or voided (discarded, the record kept).
- An issued invoice is paid, voided or marked uncollectible; it never changes otherwise.
- An uncollectible invoice may still be paid (a late payment) or voided.
- Paid and void are final.
A transition to the status an invoice already has is a no-op (webhooks and retries repeat themselves).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from tollway.billing.invoicing.model import InvoiceStatus
from tollway.errors import ConflictError

ALLOWED: Final[dict[InvoiceStatus, frozenset[InvoiceStatus]]] = {
    "draft": frozenset({"issued", "void"}),
    "issued": frozenset({"paid", "void", "uncollectible"}),
    "uncollectible": frozenset({"paid", "void"}),
    "paid": frozenset(),
    "void": frozenset(),
}
STATUSES: Final[tuple[InvoiceStatus, ...]] = ("draft", "issued", "paid", "void", "uncollectible")
SERIES_PREFIX: Final = "TW"


def can_transition(current: InvoiceStatus, target: InvoiceStatus) -> bool:
    return target in ALLOWED[current]


def check_transition(invoice_id: str, current: InvoiceStatus, target: InvoiceStatus) -> bool:
    """True when the invoice must change, False when it already has `target`; ConflictError when illegal."""
    if current == target:
        return False
    if not can_transition(current, target):
        raise ConflictError(f"invoice {invoice_id} is {current}: it cannot become {target}", field="status")
    return True


def number_series(issued_at: datetime) -> str:
    """The numbering series an invoice issued at `issued_at` belongs to: one per calendar year (UTC)."""
    return f"{SERIES_PREFIX}-{issued_at.astimezone(UTC).year:04d}"


def invoice_number(series: str, n: int) -> str:
    """TW-2026-000123: the series, then the sequence number within it (from 1, without gaps)."""
    return f"{series}-{n:06d}"


def opening_key(subscription_id: str) -> str:
    return f"{subscription_id}:open"


def closing_key(subscription_id: str, period_start_us: int) -> str:
    return f"{subscription_id}:{period_start_us}"

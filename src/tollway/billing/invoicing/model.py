"""Invoices and their lines. Amounts: exact Decimal beside integer minor units of the currency; each line
rounds once (half away from zero) and the total is the sum of the rounded lines."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from tollway.billing.pricing.model import UsageCharge

InvoiceStatus = Literal["draft", "issued", "paid", "void", "uncollectible"]
LineKind = Literal["usage", "flat", "adjustment", "credit"]  # credit: "credits applied" (negative)


@dataclass(frozen=True)
class UsageSlice:
    """Part of a usage line's quantity by the meter's dimensions (e.g. model gpt-4o, type output)."""

    group_by: dict[str, str | None]
    quantity: Decimal


@dataclass(frozen=True)
class InvoiceLine:
    kind: LineKind
    rate_card_key: str
    description: str  # "1,234,567 output tokens x $0.00001"
    period_start: datetime  # the service period the line charges for
    period_end: datetime
    amount: Decimal  # exact
    amount_minor: int  # rounded once, to the currency's minor unit
    feature_key: str | None = None
    subscription_id: str | None = None
    charge: UsageCharge | None = None  # usage lines: quantity, free quantity, tiers, discount, cap, top-up
    slices: tuple[UsageSlice, ...] = ()  # usage lines: quantity by the meter's dimensions
    proration: Decimal | None = None  # flat lines cut short: the fraction of the period charged
    adjusts_invoice_id: str | None = None  # adjustment lines: the issued invoice whose period is re-rated
    id: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    stripe_invoice_item_id: str | None = None  # set by the Stripe sync once the line's invoice item exists


@dataclass(frozen=True)
class Invoice:
    id: str
    customer_id: str
    currency: str
    status: InvoiceStatus
    period_start: datetime  # the billing period the invoice closes (or previews)
    period_end: datetime
    lines: tuple[InvoiceLine, ...]
    total_minor: int  # sum of the lines' amount_minor
    subscription_id: str | None = None
    number: str | None = None  # assigned when issued: TW-2026-000123, gap-free per series
    issued_at: datetime | None = None
    due_at: datetime | None = None
    paid_at: datetime | None = None
    voided_at: datetime | None = None
    uncollectible_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    stripe_invoice_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    # "{subscription_id}:open" (opening invoice) or "{subscription_id}:{period_start UTC micros}" (closing);
    # unique among stored invoices, so a period is never invoiced twice. None on previews.
    billing_key: str | None = None
    stripe_status: str | None = None  # the Stripe invoice's status as last recorded by the sync (draft, open, ...)

    @property
    def subtotal_minor(self) -> int:
        return sum(line.amount_minor for line in self.lines)

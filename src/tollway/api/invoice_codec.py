"""Invoices on the wire: camelCase, money and quantities as decimal strings, times as RFC 3339 UTC.

Close to OpenMeter's invoice shape (period {from, to}, lines with type usage_based / flat_fee, totals);
amounts are given rounded (`amount`, the currency's minor unit) and exact (`exactAmount`) beside the
integer minor units (`amountMinor`).
"""

from __future__ import annotations

from typing import Any

from tollway.api.wire import optional_time
from tollway.billing.invoicing.model import Invoice, InvoiceLine
from tollway.billing.pricing.model import TierCharge, UsageCharge
from tollway.metering.events import format_time
from tollway.money import decimal_text, from_minor_units

LINE_TYPES = {"usage": "usage_based", "flat": "flat_fee", "adjustment": "adjustment", "credit": "credits_applied"}


def _money(minor: int, currency: str) -> str:
    return decimal_text(from_minor_units(minor, currency))


def tier_json(tier: TierCharge) -> dict[str, Any]:
    return {
        "tier": tier.tier,
        "upToAmount": decimal_text(tier.up_to) if tier.up_to is not None else None,
        "quantity": decimal_text(tier.quantity),
        "unitPrice": decimal_text(tier.unit_price),
        "flatPrice": decimal_text(tier.flat_price),
        "amount": decimal_text(tier.amount),
    }


def charge_json(charge: UsageCharge) -> dict[str, Any]:
    return {
        "quantity": decimal_text(charge.quantity),
        "freeQuantity": decimal_text(charge.free_quantity),
        "billableQuantity": decimal_text(charge.billable_quantity),
        "pricedAmount": decimal_text(charge.priced_amount),
        "discountAmount": decimal_text(charge.discount_amount),
        "maximumCut": decimal_text(charge.maximum_cut),
        "minimumTopUp": decimal_text(charge.minimum_top_up),
        "unitPrice": decimal_text(charge.unit_price) if charge.unit_price is not None else None,
        "packages": decimal_text(charge.packages) if charge.packages is not None else None,
        "tiers": [tier_json(tier) for tier in charge.tiers],
    }


def line_json(line: InvoiceLine, currency: str) -> dict[str, Any]:
    return {
        "id": line.id or None,
        "type": LINE_TYPES[line.kind],
        "name": line.description,
        "description": line.description,
        "rateCardKey": line.rate_card_key,
        "featureKey": line.feature_key,
        "subscriptionId": line.subscription_id,
        "period": {"from": format_time(line.period_start), "to": format_time(line.period_end)},
        "quantity": decimal_text(line.charge.quantity) if line.charge is not None else None,
        "charge": charge_json(line.charge) if line.charge is not None else None,
        "slices": [{"groupBy": s.group_by, "quantity": decimal_text(s.quantity)} for s in line.slices],
        "proration": decimal_text(line.proration) if line.proration is not None else None,
        "adjustsInvoiceId": line.adjusts_invoice_id,
        "amount": _money(line.amount_minor, currency),
        "exactAmount": decimal_text(line.amount),
        "amountMinor": line.amount_minor,
        "totals": {"amount": _money(line.amount_minor, currency), "total": _money(line.amount_minor, currency)},
        "metadata": line.metadata,
    }


def invoice_json(invoice: Invoice) -> dict[str, Any]:
    total = _money(invoice.total_minor, invoice.currency)
    credits = _money(-sum(line.amount_minor for line in invoice.lines if line.kind == "credit"), invoice.currency)
    return {
        "id": invoice.id or None,
        "number": invoice.number,
        "status": invoice.status,
        "customerId": invoice.customer_id,
        "subscriptionId": invoice.subscription_id,
        "currency": invoice.currency,
        "period": {"from": format_time(invoice.period_start), "to": format_time(invoice.period_end)},
        "lines": [line_json(line, invoice.currency) for line in invoice.lines],
        "totals": {"amount": total, "total": total, "totalMinor": invoice.total_minor, "creditsTotal": credits},
        "total": total,
        "totalMinor": invoice.total_minor,
        "createdAt": optional_time(invoice.created_at),
        "updatedAt": optional_time(invoice.updated_at),
        "issuedAt": optional_time(invoice.issued_at),
        "dueAt": optional_time(invoice.due_at),
        "paidAt": optional_time(invoice.paid_at),
        "voidedAt": optional_time(invoice.voided_at),
        "uncollectibleAt": optional_time(invoice.uncollectible_at),
        "stripeInvoiceId": invoice.stripe_invoice_id,
        "stripeStatus": invoice.stripe_status,  # the Stripe invoice's status as last seen (draft, open, paid, ...)
        "metadata": invoice.metadata,
    }

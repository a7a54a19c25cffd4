"""Tollway invoices -> Stripe parameters: one invoice item per line, amounts in minor units, Tollway's ids in
the metadata of every object (tollway_invoice_id, tollway_line_id, tollway_customer_id)."""

from __future__ import annotations

from datetime import datetime

from tollway.adapters.stripe.client import (
    StripeCustomerParams,
    StripeInvoiceParams,
    StripeItemParams,
    stripe_metadata,
)
from tollway.billing.customers import Customer
from tollway.billing.invoicing.model import Invoice, InvoiceLine

ADDRESS_FIELDS = ("line1", "line2", "city", "state", "postal_code", "country")


def customer_params(customer: Customer) -> StripeCustomerParams:
    address: dict[str, str] = {}
    if customer.billing_address is not None:
        for name in ADDRESS_FIELDS:
            value = getattr(customer.billing_address, name)
            if value:
                address[name] = value
    return StripeCustomerParams(
        name=customer.name,
        email=customer.email,
        address=address,
        metadata=stripe_metadata({"tollway_customer_id": customer.id, "tollway_customer_key": customer.key}),
    )


def invoice_params(invoice: Invoice, stripe_customer: str) -> StripeInvoiceParams:
    period = f"{invoice.period_start:%Y-%m-%d} to {invoice.period_end:%Y-%m-%d}"
    return StripeInvoiceParams(
        customer=stripe_customer,
        currency=invoice.currency.lower(),
        description=f"Tollway invoice {invoice.number or invoice.id}, {period}",
        number=invoice.number,
        metadata=stripe_metadata(
            {
                "tollway_invoice_id": invoice.id,
                "tollway_invoice_number": invoice.number,
                "tollway_customer_id": invoice.customer_id,
                "tollway_subscription_id": invoice.subscription_id,
            }
        ),
    )


def line_key(invoice: Invoice, index: int) -> str:
    """A line's id (its position when the store gave it none): the item's idempotency key and metadata."""
    line = invoice.lines[index]
    return line.id or f"{invoice.id}-{index + 1}"


def item_params(invoice: Invoice, index: int, *, stripe_customer: str, stripe_invoice: str) -> StripeItemParams:
    line = invoice.lines[index]
    return StripeItemParams(
        customer=stripe_customer,
        invoice=stripe_invoice,
        amount=line.amount_minor,
        currency=invoice.currency.lower(),
        description=line_description(line),
        period_start=unix(line.period_start),
        period_end=unix(line.period_end),
        metadata=stripe_metadata(
            {
                "tollway_invoice_id": invoice.id,
                "tollway_line_id": line_key(invoice, index),
                "tollway_customer_id": invoice.customer_id,
                "tollway_rate_card": line.rate_card_key,
                "tollway_adjusts_invoice_id": line.adjusts_invoice_id,
            }
        ),
    )


def line_description(line: InvoiceLine) -> str:
    """The line's own text ("1,234,567 output tokens x $0.00001"); adjustments say which period they re-rate."""
    text = line.description or line.rate_card_key
    if line.kind == "adjustment" and not text.lower().startswith("adjustment"):
        text = f"Adjustment {line.period_start:%Y-%m-%d} to {line.period_end:%Y-%m-%d}: {text}"
    return text


def unix(at: datetime) -> int:
    return int(at.timestamp())

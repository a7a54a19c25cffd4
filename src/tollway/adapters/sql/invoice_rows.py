"""Invoice and line rows <-> domain values: decimals as exact text, times as UTC micros, JSON for the
priced steps of a usage line (tiers included) and its slices."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import Row

from tollway.billing.invoicing.model import Invoice, InvoiceLine, UsageSlice
from tollway.billing.pricing.model import TierCharge, UsageCharge
from tollway.metering.events import from_micros, to_micros

INT64_MAX = 2**63 - 1


def minor_columns(name: str, minor: int) -> dict[str, Any]:
    """Minor units as stored: the 64-bit column (saturated at +/-(2^63 - 1)) and its exact text twin, set only
    when the value does not fit (migration 0010): any amount an invoice can reach is stored exactly."""
    if -INT64_MAX <= minor <= INT64_MAX:
        return {name: minor, f"{name}_exact": None}
    return {name: INT64_MAX if minor > 0 else -INT64_MAX, f"{name}_exact": str(minor)}


def minor_of(saturated: Any, exact: str | None) -> int:
    return int(exact) if exact is not None else int(saturated)


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _undec(text: Any) -> Decimal | None:
    return None if text is None else Decimal(text)


def charge_json(charge: UsageCharge) -> dict[str, Any]:
    return {
        "quantity": str(charge.quantity),
        "free_quantity": str(charge.free_quantity),
        "billable_quantity": str(charge.billable_quantity),
        "priced_amount": str(charge.priced_amount),
        "discount_amount": str(charge.discount_amount),
        "maximum_cut": str(charge.maximum_cut),
        "minimum_top_up": str(charge.minimum_top_up),
        "amount": str(charge.amount),
        "unit_price": _dec(charge.unit_price),
        "packages": _dec(charge.packages),
        "tiers": [
            {
                "tier": t.tier,
                "up_to": _dec(t.up_to),
                "quantity": str(t.quantity),
                "unit_price": str(t.unit_price),
                "flat_price": str(t.flat_price),
                "amount": str(t.amount),
            }
            for t in charge.tiers
        ],
    }


def charge_from_json(raw: dict[str, Any]) -> UsageCharge:
    return UsageCharge(
        quantity=Decimal(raw["quantity"]),
        free_quantity=Decimal(raw["free_quantity"]),
        billable_quantity=Decimal(raw["billable_quantity"]),
        priced_amount=Decimal(raw["priced_amount"]),
        discount_amount=Decimal(raw["discount_amount"]),
        maximum_cut=Decimal(raw["maximum_cut"]),
        minimum_top_up=Decimal(raw["minimum_top_up"]),
        amount=Decimal(raw["amount"]),
        unit_price=_undec(raw.get("unit_price")),
        packages=_undec(raw.get("packages")),
        tiers=tuple(
            TierCharge(
                tier=int(t["tier"]),
                up_to=_undec(t["up_to"]),
                quantity=Decimal(t["quantity"]),
                unit_price=Decimal(t["unit_price"]),
                flat_price=Decimal(t["flat_price"]),
                amount=Decimal(t["amount"]),
            )
            for t in raw.get("tiers", [])
        ),
    )


def invoice_values(invoice: Invoice) -> dict[str, Any]:
    def us(moment: Any) -> int | None:
        return None if moment is None else to_micros(moment)

    assert invoice.created_at is not None
    assert invoice.updated_at is not None
    return {
        "id": invoice.id,
        "billing_key": invoice.billing_key,
        "customer_id": invoice.customer_id,
        "subscription_id": invoice.subscription_id,
        "currency": invoice.currency,
        "status": invoice.status,
        "number": invoice.number,
        "period_start_us": to_micros(invoice.period_start),
        "period_end_us": to_micros(invoice.period_end),
        **minor_columns("total_minor", invoice.total_minor),
        "issued_us": us(invoice.issued_at),
        "due_us": us(invoice.due_at),
        "paid_us": us(invoice.paid_at),
        "voided_us": us(invoice.voided_at),
        "uncollectible_us": us(invoice.uncollectible_at),
        "created_us": to_micros(invoice.created_at),
        "updated_us": to_micros(invoice.updated_at),
        "stripe_invoice_id": invoice.stripe_invoice_id,
        "stripe_status": invoice.stripe_status,
        "metadata": orjson.dumps(invoice.metadata).decode(),
    }


def line_values(invoice_id: str, position: int, line: InvoiceLine) -> dict[str, Any]:
    return {
        "invoice_id": invoice_id,
        "position": position,
        "id": line.id,
        "kind": line.kind,
        "rate_card_key": line.rate_card_key,
        "description": line.description,
        "period_start_us": to_micros(line.period_start),
        "period_end_us": to_micros(line.period_end),
        "amount": str(line.amount),
        **minor_columns("amount_minor", line.amount_minor),
        "feature_key": line.feature_key,
        "subscription_id": line.subscription_id,
        "charge": orjson.dumps(charge_json(line.charge)).decode() if line.charge is not None else None,
        "slices": orjson.dumps([{"group_by": s.group_by, "quantity": str(s.quantity)} for s in line.slices]).decode(),
        "proration": _dec(line.proration),
        "adjusts_invoice_id": line.adjusts_invoice_id,
        "metadata": orjson.dumps(line.metadata).decode(),
        "stripe_invoice_item_id": line.stripe_invoice_item_id,
    }


def line_from_row(row: Row[Any]) -> InvoiceLine:
    return InvoiceLine(
        id=row.id,
        kind=row.kind,
        rate_card_key=row.rate_card_key,
        description=row.description,
        period_start=from_micros(row.period_start_us),
        period_end=from_micros(row.period_end_us),
        amount=Decimal(row.amount),
        amount_minor=minor_of(row.amount_minor, row.amount_minor_exact),
        feature_key=row.feature_key,
        subscription_id=row.subscription_id,
        charge=charge_from_json(orjson.loads(row.charge)) if row.charge is not None else None,
        slices=tuple(
            UsageSlice(group_by=dict(s["group_by"]), quantity=Decimal(s["quantity"])) for s in orjson.loads(row.slices)
        ),
        proration=_undec(row.proration),
        adjusts_invoice_id=row.adjusts_invoice_id,
        metadata=orjson.loads(row.metadata),
        stripe_invoice_item_id=row.stripe_invoice_item_id,
    )


def invoice_from_row(row: Row[Any], lines: tuple[InvoiceLine, ...]) -> Invoice:
    def at(micros: int | None) -> Any:
        return None if micros is None else from_micros(micros)

    return Invoice(
        id=row.id,
        customer_id=row.customer_id,
        currency=row.currency,
        status=row.status,
        period_start=from_micros(row.period_start_us),
        period_end=from_micros(row.period_end_us),
        lines=lines,
        total_minor=minor_of(row.total_minor, row.total_minor_exact),
        subscription_id=row.subscription_id,
        number=row.number,
        issued_at=at(row.issued_us),
        due_at=at(row.due_us),
        paid_at=at(row.paid_us),
        voided_at=at(row.voided_us),
        uncollectible_at=at(row.uncollectible_us),
        created_at=at(row.created_us),
        updated_at=at(row.updated_us),
        stripe_invoice_id=row.stripe_invoice_id,
        metadata=orjson.loads(row.metadata),
        billing_key=row.billing_key,
        stripe_status=row.stripe_status,
    )

"""What an invoice document shows a customer (pure): the view model that the HTML and PDF renderers
(`tollway.adapters.invoice_documents`) both set, so the two always say the same.

The document shows the seller and the customer, the number (or "Draft"), the billing period, issue and due
dates, and for each line: what it charges, its service period, quantity, rate and amount, with the usage
breakdown (model/type slices, free quantity, tiers, discount, maximum cap, minimum top-up) and proration.
Amounts per line are the rounded minor units the invoice holds; breakdowns are exact.

Text that comes from users (names, addresses, descriptions, group-by values) is shown without Unicode bidi
controls (embeddings, overrides, isolates and direction marks): they could reorder what an invoice seems to
say (an amount or an IBAN read backwards). Right-to-left text itself is kept and shown in its direction.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal

from tollway.billing.customers import Customer
from tollway.billing.invoicing.model import Invoice, InvoiceLine
from tollway.money import format_money, format_quantity, percent, price_text


@dataclass(frozen=True)
class Seller:
    name: str = "Tollway"
    address: str = ""  # may span lines ("\n" or ", ")
    email: str = ""


@dataclass(frozen=True)
class Detail:
    text: str
    amount: str = ""


@dataclass(frozen=True)
class LineView:
    title: str
    description: str
    period: str
    quantity: str
    rate: str
    amount: str
    details: tuple[Detail, ...] = ()


@dataclass(frozen=True)
class PartyView:
    name: str
    key: str
    lines: tuple[str, ...] = ()


@dataclass(frozen=True)
class InvoiceView:
    number: str
    status: str
    currency: str
    seller: Seller
    customer: PartyView
    period: str
    issued: str
    due: str
    lines: tuple[LineView, ...]
    subtotal: str
    total: str
    amount_due: str  # nothing is due on a paid or void invoice


# U+202A-U+202E (embeddings, overrides), U+2066-U+2069 (isolates), U+200E/U+200F/U+061C (direction marks)
BIDI_CONTROLS = dict.fromkeys([*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C])


def plain(text: str) -> str:
    """`text` without Unicode bidi controls."""
    return text.translate(BIDI_CONTROLS)


def view(invoice: Invoice, customer: Customer, seller: Seller) -> InvoiceView:
    money = _Money(invoice.currency)
    return InvoiceView(
        number=invoice.number or "Draft",
        status=invoice.status,
        currency=invoice.currency,
        seller=replace(seller, name=plain(seller.name), address=plain(seller.address), email=plain(seller.email)),
        customer=_party(customer),
        period=period_text(invoice.period_start, invoice.period_end),
        issued=_date(invoice.issued_at),
        due=_date(invoice.due_at),
        lines=tuple(_line(line, money) for line in invoice.lines),
        subtotal=money.minor(invoice.subtotal_minor),
        total=money.minor(invoice.total_minor),
        amount_due=money.minor(0 if invoice.status in ("paid", "void") else invoice.total_minor),
    )


def period_text(start: datetime, end: datetime) -> str:
    """ "1 Jan 2026 – 1 Feb 2026" (the end is exclusive, as Stripe shows periods); times only when not midnight."""
    return f"{_instant(start)} – {_instant(end)}"


# -- helpers -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Money:
    currency: str

    def minor(self, amount_minor: int) -> str:
        return format_money(amount_minor, self.currency)

    def exact(self, amount: Decimal) -> str:
        return price_text(amount, self.currency)


def _line(line: InvoiceLine, money: _Money) -> LineView:
    title = line.feature_key or line.rate_card_key
    if line.kind == "adjustment":
        title = f"Adjustment: {title}"
    quantity, rate = "", ""
    details: list[Detail] = []
    charge = line.charge
    if charge is not None:
        quantity = format_quantity(charge.quantity)
        if charge.unit_price is not None:
            rate = money.exact(charge.unit_price)
        for part in line.slices:
            dims = ", ".join(f"{k}={v if v is not None else '(none)'}" for k, v in sorted(part.group_by.items()))
            details.append(Detail(f"{dims}: {format_quantity(part.quantity)}"))
        if charge.free_quantity:
            details.append(Detail(f"Free quantity: {format_quantity(charge.free_quantity)}"))
        if charge.packages is not None:
            details.append(Detail(f"Packages started: {format_quantity(charge.packages)}"))
        for tier in charge.tiers:
            bound = f"up to {format_quantity(tier.up_to)}" if tier.up_to is not None else "above"
            text = f"Tier {tier.tier} ({bound}): {format_quantity(tier.quantity)} x {money.exact(tier.unit_price)}"
            if tier.flat_price:
                text += f" + {money.exact(tier.flat_price)} flat"
            details.append(Detail(text, money.exact(tier.amount)))
        if charge.discount_amount:
            details.append(Detail("Discount", money.exact(-charge.discount_amount)))
        if charge.maximum_cut:
            details.append(Detail("Maximum spend cap", money.exact(-charge.maximum_cut)))
        if charge.minimum_top_up:
            details.append(Detail("Minimum spend top-up", money.exact(charge.minimum_top_up)))
    if line.proration is not None and line.proration != 1:
        details.append(Detail(f"Prorated: {format_quantity(percent(line.proration))}% of the period"))
    if line.adjusts_invoice_id:
        details.append(Detail(f"Re-rates invoice {line.adjusts_invoice_id}"))
    return LineView(
        title=plain(title),
        description=plain(line.description),
        period=period_text(line.period_start, line.period_end),
        quantity=quantity,
        rate=rate,
        amount=money.minor(line.amount_minor),
        details=tuple(Detail(plain(d.text), d.amount) for d in details),
    )


def _party(customer: Customer) -> PartyView:
    rows: list[str] = []
    address = customer.billing_address
    if address is not None:
        rows.extend(x for x in (address.line1, address.line2) if x)
        city = " ".join(x for x in (address.postal_code, address.city) if x)
        rows.extend(x for x in (city, address.state, address.country) if x)
    if customer.email:
        rows.append(customer.email)
    return PartyView(name=plain(customer.name), key=plain(customer.key), lines=tuple(plain(row) for row in rows))


def _instant(at: datetime) -> str:
    at = at.astimezone(UTC)
    text = f"{at.day} {at:%b %Y}"
    if (at.hour, at.minute, at.second, at.microsecond) != (0, 0, 0, 0):
        text += f" {at:%H:%M} UTC"
    return text


def _date(at: datetime | None) -> str:
    return _instant(at) if at is not None else "—"

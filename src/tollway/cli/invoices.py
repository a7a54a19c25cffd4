"""`tollway invoices ...`: preview (and, appended by the invoice service, list / show / issue / void / pdf)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import orjson
import typer
from rich.console import Console
from rich.table import Table

from tollway.billing.invoicing.model import Invoice, InvoiceLine
from tollway.billing.invoicing.service import InvoiceService
from tollway.cli.commands import Commands
from tollway.cli.common import err, fail
from tollway.cli.services import run_services
from tollway.money import decimal_text, format_money, format_quantity, price_text

if TYPE_CHECKING:
    from tollway.wiring.services import Services

invoices_app = Commands(help="Invoices: preview the current period, list, show, issue, void.")


def _day(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if (moment.hour, moment.minute) != (0, 0) else f"{moment:%Y-%m-%d}"


def _exact(amount: Decimal, currency: str) -> str:
    """Exact (tier breakdowns and details are shown unrounded)."""
    return price_text(amount, currency)


def _line_rows(
    line: InvoiceLine, currency: str, period: tuple[datetime, datetime] | None = None
) -> list[tuple[str, str, str, str]]:
    """The line itself (with its own period when it differs from the invoice's `period`), then its details
    (slices, tiers, free quantity, discount, cap, minimum) indented."""
    rate = ""
    quantity = ""
    charge = line.charge
    label = line.description
    if period is not None and (line.period_start, line.period_end) != period:
        label = f"{label}, {_day(line.period_start)} to {_day(line.period_end)}"
    if charge is not None:
        quantity = format_quantity(charge.quantity)
        if charge.unit_price is not None:
            rate = price_text(charge.unit_price, currency)
    elif line.proration is not None:
        quantity = f"{decimal_text(round(line.proration * 100, 2))}%"
    rows = [(label, quantity, rate, format_money(line.amount_minor, currency))]
    for piece in line.slices:
        dims = ", ".join(f"{k}={v}" for k, v in piece.group_by.items())
        rows.append((f"  {dims}", format_quantity(piece.quantity), "", ""))
    if charge is None:
        return rows
    if charge.free_quantity:
        rows.append(("  free quantity", f"-{format_quantity(charge.free_quantity)}", "", ""))
    for tier in charge.tiers:
        bound = f"up to {format_quantity(tier.up_to)}" if tier.up_to is not None else "above"
        flat = f" + {_exact(tier.flat_price, currency)}" if tier.flat_price else ""
        rows.append(
            (
                f"  tier {tier.tier} ({bound})",
                format_quantity(tier.quantity),
                f"{price_text(tier.unit_price, currency)}{flat}",
                _exact(tier.amount, currency),
            )
        )
    for label, value, sign in (
        ("discount", charge.discount_amount, -1),
        ("maximum spend cut", charge.maximum_cut, -1),
        ("minimum spend top-up", charge.minimum_top_up, 1),
    ):
        if value:
            rows.append((f"  {label}", "", "", _exact(value * sign, currency)))
    return rows


def preview_table(invoice: Invoice, customer: str) -> Table:
    """A readable table of an invoice: line, quantity, rate, amount; tiers and details; the total."""
    currency = invoice.currency
    table = Table(
        title=f"Invoice preview: {customer} ({invoice.status})",
        caption=f"period {_day(invoice.period_start)} to {_day(invoice.period_end)}, amounts in {currency}",
    )
    table.add_column("line")
    table.add_column("quantity", justify="right")
    table.add_column("rate", justify="right")
    table.add_column("amount", justify="right")
    for line in invoice.lines:
        for row in _line_rows(line, currency, (invoice.period_start, invoice.period_end)):
            table.add_row(*row)
    table.add_section()
    table.add_row("Total", "", "", format_money(invoice.total_minor, currency), style="bold")
    return table


@invoices_app.command("preview")
def preview(
    customer: Annotated[str, typer.Argument(help="Customer id or key.")],
    at: Annotated[
        datetime | None, typer.Option("--at", help="Moment to preview (ISO 8601 with offset); default now.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the invoice as the API returns it.")] = False,
) -> None:
    """Preview the invoice closing the current period: usage so far, fees, totals in the plan's currency.

    Example: tollway invoices preview acme --at 2026-12-15T00:00:00Z
    """
    from tollway.api.invoice_codec import invoice_json

    if at is not None and at.tzinfo is None:
        fail(["--at: give a UTC offset, e.g. 2026-11-01T00:00:00Z"])
    invoice = run_services(lambda services: services.invoice_preview.preview(customer, at))
    if as_json:
        typer.echo(orjson.dumps(invoice_json(invoice), option=orjson.OPT_INDENT_2).decode())
        return
    Console().print(preview_table(invoice, customer))
    if invoice.total_minor == 0 and not invoice.lines:
        err.print("no lines: the plan has no rate cards for this period")


# -- list / show / issue / void (the invoice service) ----------------------------------------------------------

T = TypeVar("T")


def _run_invoices(work: Callable[[InvoiceService], Awaitable[T]]) -> T:
    """Run one use case of the invoice service over the configured database."""
    return run_services(lambda services: work(services.invoices))


def invoice_table(invoice: Invoice) -> Table:
    """An invoice as a table: number and status in the title, lines with their details, the total."""
    currency = invoice.currency
    title = f"Invoice {invoice.number or invoice.id} ({invoice.status})"
    dates = [f"period {_day(invoice.period_start)} to {_day(invoice.period_end)}"]
    if invoice.issued_at is not None:
        dates.append(f"issued {_day(invoice.issued_at)}")
    if invoice.due_at is not None:
        dates.append(f"due {_day(invoice.due_at)}")
    table = Table(title=title, caption=f"{', '.join(dates)}; amounts in {currency}")
    table.add_column("line")
    table.add_column("quantity", justify="right")
    table.add_column("rate", justify="right")
    table.add_column("amount", justify="right")
    for line in invoice.lines:
        for row in _line_rows(line, currency):
            table.add_row(*row)
    table.add_section()
    table.add_row("Total", "", "", format_money(invoice.total_minor, currency), style="bold")
    return table


def _print(invoice: Invoice, as_json: bool) -> None:
    from tollway.api.invoice_codec import invoice_json

    if as_json:
        typer.echo(orjson.dumps(invoice_json(invoice), option=orjson.OPT_INDENT_2).decode())
    else:
        Console().print(invoice_table(invoice))


JsonOption = Annotated[bool, typer.Option("--json", help="Print as the API returns it.")]


@invoices_app.command("list")
def list_invoices(
    customer: Annotated[str | None, typer.Option("--customer", help="Customer id or key.")] = None,
    status: Annotated[str | None, typer.Option("--status", help="draft, issued, paid, void or uncollectible.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List invoices, oldest first.

    Example: tollway invoices list --customer acme --status issued
    """
    found = _run_invoices(lambda service: service.list(customer=customer, status=status))
    if as_json:
        from tollway.api.invoice_codec import invoice_json

        typer.echo(orjson.dumps([invoice_json(i) for i in found], option=orjson.OPT_INDENT_2).decode())
        return
    table = Table(title=f"{len(found)} invoices")
    for column in ("id", "number", "status", "customer", "period", "total"):
        if column == "id":  # whole, on one line: show, issue and void take it
            table.add_column(column, no_wrap=True, min_width=26)
        else:
            table.add_column(column, justify="right" if column == "total" else "left", overflow="fold")
    for invoice in found:
        table.add_row(
            invoice.id,
            invoice.number or "",
            invoice.status,
            invoice.customer_id,
            f"{_day(invoice.period_start)} to {_day(invoice.period_end)}",
            format_money(invoice.total_minor, invoice.currency),
        )
    Console().print(table)


@invoices_app.command("show")
def show_invoice(
    invoice_id: Annotated[str, typer.Argument(help="Invoice id.")],
    as_json: JsonOption = False,
) -> None:
    """Show one invoice with its lines.

    Example: tollway invoices show 01JE...
    """
    _print(_run_invoices(lambda service: service.get(invoice_id)), as_json)


@invoices_app.command("issue")
def issue_invoice(
    invoice_id: Annotated[str, typer.Argument(help="Id of a draft invoice.")],
    as_json: JsonOption = False,
) -> None:
    """Issue a draft: assigns the next number of the year's series (TW-YYYY-nnnnnn) and the due date.

    Example: tollway invoices issue 01JE...
    """
    _print(_run_invoices(lambda service: service.issue(invoice_id)), as_json)


@invoices_app.command("void")
def void_invoice(
    invoice_id: Annotated[str, typer.Argument(help="Invoice id.")],
    as_json: JsonOption = False,
) -> None:
    """Void an invoice; the record and its number are kept.

    Example: tollway invoices void 01JE...
    """
    _print(_run_invoices(lambda service: service.void(invoice_id)), as_json)


@invoices_app.command("mark-paid")
def mark_paid(
    invoice_id: Annotated[str, typer.Argument(help="Invoice id.")],
    as_json: JsonOption = False,
) -> None:
    """Record an issued invoice as paid (collected outside Stripe); with Stripe on, Stripe never charges it.

    Example: tollway invoices mark-paid 01JE...
    """
    _print(_run_invoices(lambda service: service.mark_paid(invoice_id)), as_json)


@invoices_app.command("mark-uncollectible")
def mark_uncollectible(
    invoice_id: Annotated[str, typer.Argument(help="Invoice id.")],
    as_json: JsonOption = False,
) -> None:
    """Record an issued invoice as uncollectible.

    Example: tollway invoices mark-uncollectible 01JE...
    """
    _print(_run_invoices(lambda service: service.mark_uncollectible(invoice_id)), as_json)


@invoices_app.command("pdf")
def invoice_pdf(
    invoice_id: Annotated[str, typer.Argument(help="Invoice id.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write; default invoice-NUMBER.pdf here.")
    ] = None,
) -> None:
    """Write an invoice as a PDF for the customer (seller block from TOLLWAY_SELLER_NAME/_ADDRESS/_EMAIL).

    Example: tollway invoices pdf 01JE... --output invoice.pdf
    """
    from tollway.adapters.invoice_documents.pdf import render_pdf
    from tollway.wiring.billing import invoice_documents

    async def render(services: Services) -> tuple[str, bytes]:
        document = await invoice_documents(services).view(invoice_id)
        return document.number, render_pdf(document)

    number, pdf = run_services(render)
    target = output or Path(f"invoice-{number if number != 'Draft' else invoice_id}.pdf")
    target.write_bytes(pdf)
    typer.echo(f"{target} ({len(pdf)} bytes)")


__all__ = ["invoice_table", "invoices_app", "preview_table"]

"""`tollway credits grants|grant|void|balance|transactions`: a customer's money credits from the command line,
each one request to the management API made in-process (`cli/local_api.py`) over TOLLWAY_DATABASE_URL."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from tollway.cli.api_commands import JsonOption, fields_table, grid, request, show
from tollway.cli.commands import Commands

credits_app = Commands(
    help="Prepaid money credits (grants, grant, void, balance, transactions) and unit grants on metered"
    " entitlements (unit-grants, unit-grant, unit-void)."
)
Customer = Annotated[str, typer.Argument(help="Customer key or id.")]


def _base(customer: str) -> str:
    return f"/api/v1/customers/{customer}/credits"


@credits_app.command("grants")
def credits_grants(customer: Customer, as_json: JsonOption = False) -> None:
    """List a customer's credit grants, oldest first.

    Example: tollway credits grants acme
    """
    show(
        request("GET", f"{_base(customer)}/grants"),
        as_json,
        lambda a: grid(
            "credit grants",
            [
                ("id", lambda g: g["id"]),
                ("name", lambda g: g["name"]),
                ("amount", lambda g: f"{g['amount']} {g['currency']}"),
                ("priority", lambda g: str(g["priority"])),
                ("status", lambda g: g["status"]),
                ("expires", lambda g: g.get("expiresAt") or "never"),
            ],
            a,
        ),
    )


@credits_app.command("grant")
def credits_grant(
    customer: Customer,
    amount: Annotated[str, typer.Option(help="Decimal in the currency, exact to its minor unit (20, 9.99).")],
    name: Annotated[str, typer.Option(help="What the invoice's credit line says.")] = "Credits",
    currency: Annotated[str | None, typer.Option(help="ISO 4217; default the customer's.")] = None,
    funding: Annotated[str, typer.Option(help="none (promotional), invoice (bought) or external.")] = "none",
    price: Annotated[str | None, typer.Option(help="funding invoice: what the top-up invoice charges.")] = None,
    priority: Annotated[int, typer.Option(help="1-255, lower pays first.")] = 1,
    expires_after: Annotated[str | None, typer.Option(help="ISO-8601 duration (P1M).")] = None,
    feature: Annotated[list[str] | None, typer.Option(help="Only lines of this feature (repeatable).")] = None,
    key: Annotated[str | None, typer.Option(help="Idempotency key: a repeat creates nothing.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Grant money credits to a customer.

    Example: tollway credits grant acme --amount 20 --name "December credits" --expires-after P1M
    """
    body: dict[str, Any] = {"name": name, "amount": amount, "fundingMethod": funding, "priority": priority}
    for wire, value in (("currency", currency), ("price", price), ("expiresAfter", expires_after), ("key", key)):
        if value is not None:
            body[wire] = value
    if feature:
        body["filters"] = {"features": feature}
    answer = request("POST", f"{_base(customer)}/grants", body)
    show(answer, as_json, lambda a: fields_table(f"credit grant {a['id']}", a))


@credits_app.command("void")
def credits_void(
    customer: Customer, grant: Annotated[str, typer.Argument(help="Grant id.")], as_json: JsonOption = False
) -> None:
    """Void a grant (what is left of it leaves the balance).

    Example: tollway credits void acme 01JX...
    """
    answer = request("POST", f"{_base(customer)}/grants/{grant}/void")
    show(answer, as_json, lambda a: fields_table(f"credit grant {a['id']} voided", a))


@credits_app.command("balance")
def credits_balance(customer: Customer, as_json: JsonOption = False) -> None:
    """The live (after the open period's usage so far), settled and pending balance.

    Example: tollway credits balance acme
    """
    answer = request("GET", f"{_base(customer)}/balance")
    show(
        answer,
        as_json,
        lambda a: fields_table(
            f"credits of {customer} ({a['currency']})", {k: a[k] for k in ("live", "settled", "pending")}
        ),
    )


@credits_app.command("transactions")
def credits_transactions(customer: Customer, as_json: JsonOption = False) -> None:
    """The ledger: funded, consumed (with the invoice line paid), expired, voided.

    Example: tollway credits transactions acme --json
    """
    show(
        request("GET", f"{_base(customer)}/transactions"),
        as_json,
        lambda a: grid(
            "credit ledger",
            [
                ("at", lambda r: r["at"]),
                ("grant", lambda r: r["grantId"]),
                ("type", lambda r: r["type"]),
                ("amount", lambda r: r["amount"]),
                ("after", lambda r: r["balanceAfter"]),
                ("invoice line", lambda r: r.get("invoiceLineId") or ""),
            ],
            a,
        ),
    )


@credits_app.command("unit-grants")
def credits_unit_grants(
    customer: Customer, feature: Annotated[str, typer.Argument(help="Feature key.")], as_json: JsonOption = False
) -> None:
    """List the unit grants on a customer's metered entitlement.

    Example: tollway credits unit-grants acme output-tokens
    """
    show(
        request("GET", f"/api/v1/customers/{customer}/entitlements/{feature}/grants"),
        as_json,
        lambda a: grid(
            "unit grants",
            [
                ("id", lambda g: g["id"]),
                ("amount", lambda g: g["amount"]),
                ("priority", lambda g: str(g["priority"])),
                ("effective", lambda g: g["effectiveAt"]),
                ("expires", lambda g: g.get("expiresAt") or "never"),
                ("voided", lambda g: g.get("voidedAt") or ""),
            ],
            a,
        ),
    )


@credits_app.command("unit-grant")
def credits_unit_grant(
    customer: Customer,
    feature: Annotated[str, typer.Argument(help="Feature key (metered).")],
    amount: Annotated[str, typer.Option(help="Units granted (decimal).")],
    effective_at: Annotated[str, typer.Option(help="RFC 3339 time it starts.")],
    priority: Annotated[int, typer.Option(help="1-255, lower burns first.")] = 1,
    expires: Annotated[str | None, typer.Option(help="DURATION:COUNT, e.g. DAY:30.")] = None,
    recurrence: Annotated[str | None, typer.Option(help="DAY, WEEK, MONTH, YEAR or an ISO-8601 duration.")] = None,
    max_rollover: Annotated[str | None, typer.Option(help="maxRolloverAmount (default: the amount).")] = None,
    min_rollover: Annotated[str | None, typer.Option(help="minRolloverAmount (default 0).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Grant units to a customer's metered entitlement (OpenMeter's grant).

    Example: tollway credits unit-grant acme output-tokens --amount 5000000 --effective-at 2026-12-01T00:00:00Z
    """
    body: dict[str, Any] = {"amount": amount, "effectiveAt": effective_at, "priority": priority}
    if expires is not None:
        duration, _, count = expires.partition(":")
        body["expiration"] = {"duration": duration, "count": int(count) if count.isdigit() else count}
    if recurrence is not None:
        body["recurrence"] = {"interval": recurrence}
    if max_rollover is not None:
        body["maxRolloverAmount"] = max_rollover
    if min_rollover is not None:
        body["minRolloverAmount"] = min_rollover
    answer = request("POST", f"/api/v1/customers/{customer}/entitlements/{feature}/grants", body)
    show(answer, as_json, lambda a: fields_table(f"unit grant {a['id']}", a))


@credits_app.command("unit-void")
def credits_unit_void(grant: Annotated[str, typer.Argument(help="Unit grant id.")]) -> None:
    """Void a unit grant (it pays nothing from now on).

    Example: tollway credits unit-void 01JX...
    """
    request("DELETE", f"/api/v1/grants/{grant}")
    typer.echo(f"unit grant {grant} voided")

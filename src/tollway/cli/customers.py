"""`tollway customers|subscriptions ...`: who pays, and on which plan, from the command line.

Each command is one request to the management API, made in-process (`cli/api_commands.py`): the same checks,
the same problem text, and with --json the API's own JSON. Tables print ids in full (they wrap, never cut: the
next command needs them).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from tollway.cli.api_commands import (
    Column,
    FileOption,
    JsonOption,
    create_record,
    fields_table,
    grid,
    read_body,
    request,
    show,
    show_list,
    show_record,
)
from tollway.cli.commands import Commands
from tollway.cli.common import fail

customers_app = Commands(help="Customers: list, show, create, delete.")
subscriptions_app = Commands(help="Subscriptions: list, show, create, cancel, change.")


# customers ------------------------------------------------------------------------------------------------------

CUSTOMER_COLUMNS: list[Column] = [
    ("key", lambda c: c.get("key")),
    ("name", lambda c: c["name"]),
    ("subjects", lambda c: ", ".join((c.get("usageAttribution") or {}).get("subjectKeys") or ())),
    ("currency", lambda c: c.get("currency")),
    ("subscription", lambda c: c.get("currentSubscriptionId")),
    ("id", lambda c: c["id"]),
]


@customers_app.command("list")
def customers_list(as_json: JsonOption = False) -> None:
    """List the customers.

    Example: tollway customers list
    """
    show_list("/api/v1/customers", "customers", CUSTOMER_COLUMNS, as_json)


@customers_app.command("show")
def customers_show(
    customer: Annotated[str, typer.Argument(help="Customer key or id.")], as_json: JsonOption = False
) -> None:
    """Show one customer.

    Example: tollway customers show acme
    """
    show_record(f"/api/v1/customers/{customer}", f"customer {customer}", as_json)


@customers_app.command("create")
def customers_create(
    file: FileOption = None,
    key: Annotated[str | None, typer.Option(help="Customer key.")] = None,
    name: Annotated[str | None, typer.Option(help="Customer name.")] = None,
    subjects: Annotated[
        list[str] | None, typer.Option("--subject", help="A subject whose usage it pays for (repeatable).")
    ] = None,
    email: Annotated[str | None, typer.Option(help="Primary e-mail.")] = None,
    currency: Annotated[str | None, typer.Option(help="ISO 4217 currency code.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Create a customer from flags or from a file with the API's body.

    Example: tollway customers create --key globex --name Globex --subject globex
    """
    if file is not None:
        body = read_body(file)
    else:
        body = {
            "key": key,
            "name": name,
            "usageAttribution": {"subjectKeys": list(subjects or ())},
            "primaryEmail": email,
            "currency": currency,
        }
        body = {k: v for k, v in body.items() if v is not None}
    create_record("/api/v1/customers", body, as_json, lambda a: f"customer {a.get('key') or a['id']} created")


@customers_app.command("delete")
def customers_delete(customer: Annotated[str, typer.Argument(help="Customer key or id.")]) -> None:
    """Delete a customer (refused while it has an active subscription).

    Example: tollway customers delete globex
    """
    request("DELETE", f"/api/v1/customers/{customer}")
    typer.echo(f"customer {customer} deleted")


# subscriptions --------------------------------------------------------------------------------------------------

SUBSCRIPTION_COLUMNS: list[Column] = [
    ("id", lambda s: s["id"]),
    ("plan", lambda s: f"{s['plan']['key']} v{s['plan']['version']}"),
    ("status", lambda s: s.get("status")),
    ("from", lambda s: s.get("activeFrom")),
    ("to", lambda s: s.get("activeTo")),
    ("cadence", lambda s: s.get("billingCadence")),
]


@subscriptions_app.command("list")
def subscriptions_list(
    customer: Annotated[str, typer.Option("--customer", help="Customer key or id.")],
    as_json: JsonOption = False,
) -> None:
    """List a customer's subscriptions.

    Example: tollway subscriptions list --customer acme
    """
    show_list(
        f"/api/v1/customers/{customer}/subscriptions", f"subscriptions of {customer}", SUBSCRIPTION_COLUMNS, as_json
    )


@subscriptions_app.command("show")
def subscriptions_show(
    subscription_id: Annotated[str, typer.Argument(help="Subscription id.")], as_json: JsonOption = False
) -> None:
    """Show one subscription.

    Example: tollway subscriptions show 01JE...
    """
    show_record(f"/api/v1/subscriptions/{subscription_id}", f"subscription {subscription_id}", as_json)


@subscriptions_app.command("create")
def subscriptions_create(
    file: FileOption = None,
    customer: Annotated[str | None, typer.Option("--customer", help="Customer key or id.")] = None,
    plan: Annotated[str | None, typer.Option("--plan", help="Plan key (its published version).")] = None,
    version: Annotated[int | None, typer.Option("--version", help="A published plan version.")] = None,
    start: Annotated[str | None, typer.Option("--start", help="Start, ISO 8601 with offset (default now).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Subscribe a customer to a plan, from flags or from a file with the API's body.

    Example: tollway subscriptions create --customer acme --plan pro
    """
    if file is not None:
        body = read_body(file)
    else:
        if customer is None or plan is None:
            fail(["give --customer and --plan (or --file)"])
        ref: dict[str, Any] = {"key": plan}
        if version is not None:
            ref["version"] = version
        body = {"customerKey": customer, "plan": ref}
        if start is not None:
            body["activeFrom"] = start
    answer = request("POST", "/api/v1/subscriptions", body)
    show(answer, as_json, lambda a: grid("subscription created", SUBSCRIPTION_COLUMNS, [a]))


@subscriptions_app.command("cancel")
def subscriptions_cancel(
    subscription_id: Annotated[str, typer.Argument(help="Subscription id.")],
    at: Annotated[
        str | None, typer.Option("--at", help="When: 'immediate' (default), 'next_billing_cycle' or ISO 8601.")
    ] = None,
) -> None:
    """Cancel a subscription (its last period is closed and invoiced by the billing worker).

    Example: tollway subscriptions cancel 01JE... --at next_billing_cycle
    """
    answer = request("POST", f"/api/v1/subscriptions/{subscription_id}/cancel", {"timing": at or "immediate"})
    typer.echo(f"subscription {answer['id']} ends {answer.get('activeTo')}")


@subscriptions_app.command("change")
def subscriptions_change(
    subscription_id: Annotated[str, typer.Argument(help="Subscription id.")],
    plan: Annotated[str, typer.Option("--plan", help="Plan key of the new plan.")],
    version: Annotated[int | None, typer.Option("--version", help="A published plan version.")] = None,
    at: Annotated[
        str | None, typer.Option("--at", help="When: 'immediate' (default), 'next_billing_cycle' or ISO 8601.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Move a subscription to another plan (the old one ends, a new one starts: flat fees prorated).

    Example: tollway subscriptions change 01JE... --plan pro
    """
    ref: dict[str, Any] = {"key": plan}
    if version is not None:
        ref["version"] = version
    answer = request(
        "POST", f"/api/v1/subscriptions/{subscription_id}/change", {"plan": ref, "timing": at or "immediate"}
    )
    show(answer, as_json, lambda a: fields_table("subscription changed", a))

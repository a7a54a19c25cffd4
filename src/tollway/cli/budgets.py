"""`tollway budgets list|show|create|update|delete`: spend control's budgets from the command line.

Each command is one request to the management API made in-process (`cli/local_api.py`) over the database of
TOLLWAY_DATABASE_URL. `used` and `remaining` are the metered usage of the current window (a running gateway
also counts the calls in flight: ask its API, `GET /api/v1/budgets`).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from tollway.cli.api_commands import (
    JsonOption,
    NewOnRedisFailure,
    OnRedisFailure,
    fields_table,
    grid,
    items_of,
    request,
    show,
)
from tollway.cli.commands import Commands

budgets_app = Commands(help="Budgets: list, show, create, update, delete.")
Key = Annotated[str, typer.Argument(help="Budget key or id.")]


@budgets_app.command("list")
def budgets_list(as_json: JsonOption = False) -> None:
    """List the budgets with the current window's used, reserved and remaining.

    Example: tollway budgets list --json
    """
    answer = request("GET", "/api/v1/budgets")
    show(
        answer,
        as_json,
        lambda a: grid(
            "budgets",
            [
                ("key", lambda b: b["key"]),
                ("on", lambda b: f"{b['scope']} {b['target']}"),
                ("kind", lambda b: b["kind"] + (f" ({b['currency']})" if b.get("currency") else "")),
                ("limit", lambda b: b["limit"]),
                ("window", lambda b: b["window"]),
                ("hard", lambda b: "yes" if b["hard"] else "no"),
                ("used", lambda b: b["used"]),
                ("remaining", lambda b: b["remaining"]),
                ("resets at", lambda b: b.get("resetsAt") or "never"),
            ],
            items_of(a),
        ),
    )


@budgets_app.command("show")
def budgets_show(budget: Key, as_json: JsonOption = False) -> None:
    """Show one budget.

    Example: tollway budgets show acme-monthly
    """
    show(request("GET", f"/api/v1/budgets/{budget}"), as_json, lambda a: fields_table(f"budget {a['key']}", a))


@budgets_app.command("create")
def budgets_create(
    key: Annotated[str, typer.Option(help="Unique key: a-z, 0-9, '_' and '-'.")],
    limit: Annotated[
        str, typer.Option(help="Decimal: money in the customer's currency (USD without a plan), or tokens.")
    ],
    customer: Annotated[str | None, typer.Option(help="On this customer (its key).")] = None,
    consumer: Annotated[str | None, typer.Option(help="On this consumer (its username).")] = None,
    api_key: Annotated[str | None, typer.Option("--api-key", help="On this API key (its id).")] = None,
    kind: Annotated[str, typer.Option(help="money or tokens.")] = "money",
    window: Annotated[str, typer.Option(help="billing_period, month, day, hour or lifetime.")] = "billing_period",
    soft: Annotated[bool, typer.Option("--soft", help="Count only; never refuse a call.")] = False,
    name: Annotated[str | None, typer.Option(help="A display name.")] = None,
    on_redis_failure: OnRedisFailure = None,
    as_json: JsonOption = False,
) -> None:
    """Create a budget on a customer, a consumer or an API key.

    Example: tollway budgets create --key acme-monthly --customer acme --limit 50 --window month
    """
    scope, target = (
        ("customer", customer)
        if customer is not None
        else ("key", api_key)
        if api_key is not None
        else ("consumer", consumer)
    )
    body: dict[str, Any] = {
        "key": key,
        "scope": scope,
        "target": target,
        "kind": kind,
        "limit": limit,
        "window": window,
        "hard": not soft,
    }
    if name is not None:
        body["name"] = name
    if on_redis_failure is not None:
        body["onRedisFailure"] = on_redis_failure
    answer = request("POST", "/api/v1/budgets", body)
    show(answer, as_json, lambda a: fields_table(f"budget {a['key']} created", a))


@budgets_app.command("update")
def budgets_update(
    budget: Key,
    limit: Annotated[str | None, typer.Option(help="New limit (decimal).")] = None,
    window: Annotated[str | None, typer.Option(help="New window.")] = None,
    hard: Annotated[
        bool | None, typer.Option("--hard/--soft", help="Refuse calls (hard) or only count (soft).")
    ] = None,
    on_redis_failure: NewOnRedisFailure = None,
    as_json: JsonOption = False,
) -> None:
    """Change a budget's limit, window, hardness or what it does when Redis is unreachable.

    Example: tollway budgets update acme-monthly --limit 80
    """
    body: dict[str, Any] = {}
    if limit is not None:
        body["limit"] = limit
    if window is not None:
        body["window"] = window
    if hard is not None:
        body["hard"] = hard
    if on_redis_failure is not None:
        body["onRedisFailure"] = None if on_redis_failure == "default" else on_redis_failure
    answer = request("PATCH", f"/api/v1/budgets/{budget}", body)
    show(answer, as_json, lambda a: fields_table(f"budget {a['key']} updated", a))


@budgets_app.command("delete")
def budgets_delete(budget: Key) -> None:
    """Delete a budget.

    Example: tollway budgets delete acme-monthly
    """
    request("DELETE", f"/api/v1/budgets/{budget}")
    typer.echo(f"budget {budget} deleted")

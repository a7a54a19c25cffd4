"""`tollway rate-limits list|show|create|update|delete`: spend control's rate limits from the command line.

Each command is one request to the management API made in-process (`cli/local_api.py`) over the database of
TOLLWAY_DATABASE_URL; a running gateway applies a change within TOLLWAY_SPEND_REFRESH_S.
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

rate_limits_app = Commands(help="Rate limits: list, show, create, update, delete.")
Key = Annotated[str, typer.Argument(help="Rate limit key or id.")]


@rate_limits_app.command("list")
def rate_limits_list(as_json: JsonOption = False) -> None:
    """List the rate limits.

    Example: tollway rate-limits list --json
    """
    answer = request("GET", "/api/v1/rate-limits")
    show(
        answer,
        as_json,
        lambda a: grid(
            "rate limits",
            [
                ("key", lambda r: r["key"]),
                ("on", lambda r: f"{r['scope']} {r['target']}"),
                ("metric", lambda r: r["metric"]),
                ("limit", lambda r: r["limit"]),
                ("window", lambda r: r.get("window") or "in flight"),
                ("managed by", lambda r: r["managedBy"]),
            ],
            items_of(a),
        ),
    )


@rate_limits_app.command("show")
def rate_limits_show(limit: Key, as_json: JsonOption = False) -> None:
    """Show one rate limit.

    Example: tollway rate-limits show each-rpm
    """
    show(request("GET", f"/api/v1/rate-limits/{limit}"), as_json, lambda a: fields_table(f"rate limit {a['key']}", a))


@rate_limits_app.command("create")
def rate_limits_create(
    key: Annotated[str, typer.Option(help="Unique key: a-z, 0-9, '_' and '-'.")],
    metric: Annotated[str, typer.Option(help="requests, tokens, input_tokens, output_tokens, cost or in_flight.")],
    limit: Annotated[str, typer.Option(help="Decimal: a whole number, or money for cost.")],
    consumer: Annotated[str | None, typer.Option(help="On this consumer (username), or '*' for each.")] = None,
    api_key: Annotated[str | None, typer.Option("--api-key", help="On this API key (its id), or '*'.")] = None,
    customer: Annotated[str | None, typer.Option(help="On this customer (its key), or '*' for each.")] = None,
    model: Annotated[str | None, typer.Option(help="On this model (its name), or '*' for each.")] = None,
    window: Annotated[str | None, typer.Option(help="minute (default), hour or day; none for in_flight.")] = None,
    name: Annotated[str | None, typer.Option(help="A display name.")] = None,
    on_redis_failure: OnRedisFailure = None,
    as_json: JsonOption = False,
) -> None:
    """Create a rate limit on a consumer, an API key, a customer or a model.

    Example: tollway rate-limits create --key each-rpm --consumer '*' --metric requests --limit 60
    """
    targets = [("consumer", consumer), ("key", api_key), ("customer", customer), ("model", model)]
    named = [(scope, target) for scope, target in targets if target is not None]
    if len(named) != 1:
        raise typer.BadParameter("name exactly one of --consumer, --api-key, --customer or --model")
    body: dict[str, Any] = {"key": key, "scope": named[0][0], "target": named[0][1], "metric": metric, "limit": limit}
    if window is not None:
        body["window"] = window
    if name is not None:
        body["name"] = name
    if on_redis_failure is not None:
        body["onRedisFailure"] = on_redis_failure
    answer = request("POST", "/api/v1/rate-limits", body)
    show(answer, as_json, lambda a: fields_table(f"rate limit {a['key']} created", a))


@rate_limits_app.command("update")
def rate_limits_update(
    limit: Key,
    new_limit: Annotated[str | None, typer.Option("--limit", help="New limit (decimal).")] = None,
    window: Annotated[str | None, typer.Option(help="New window.")] = None,
    on_redis_failure: NewOnRedisFailure = None,
    as_json: JsonOption = False,
) -> None:
    """Change a rate limit's limit, window or what it does when Redis is unreachable.

    Example: tollway rate-limits update each-rpm --limit 120
    """
    body: dict[str, Any] = {}
    if new_limit is not None:
        body["limit"] = new_limit
    if window is not None:
        body["window"] = window
    if on_redis_failure is not None:
        body["onRedisFailure"] = None if on_redis_failure == "default" else on_redis_failure
    answer = request("PATCH", f"/api/v1/rate-limits/{limit}", body)
    show(answer, as_json, lambda a: fields_table(f"rate limit {a['key']} updated", a))


@rate_limits_app.command("delete")
def rate_limits_delete(limit: Key) -> None:
    """Delete a rate limit.

    Example: tollway rate-limits delete each-rpm
    """
    request("DELETE", f"/api/v1/rate-limits/{limit}")
    typer.echo(f"rate limit {limit} deleted")

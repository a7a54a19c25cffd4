"""`tollway meters|features|plans|customers|subscriptions ...`: the catalog from the command line.

Each command is one request to the management API, made in-process (`cli/local_api.py`) over the database of
TOLLWAY_DATABASE_URL: the same checks, the same problem text, and with --json the API's own JSON. Tables print
ids in full (they wrap, never cut: the next command needs them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
import yaml
from rich.console import Console
from rich.table import Table

from tollway.cli.commands import Commands
from tollway.cli.common import fail
from tollway.cli.local_api import LocalApi
from tollway.cli.services import run_services

JsonOption = Annotated[bool, typer.Option("--json", help="Print the API's JSON answer.")]
FileOption = Annotated[
    Path | None,
    typer.Option("--file", "-f", help="YAML or JSON file holding the API's request body (OpenMeter's shape)."),
]

meters_app = Commands(help="Meters: list, show, create, delete.")
features_app = Commands(help="Features: list, show, create, archive.")
plans_app = Commands(help="Plans: list, show, create, publish, archive.")
customers_app = Commands(help="Customers: list, show, create, delete.")
subscriptions_app = Commands(help="Subscriptions: list, show, create, cancel, change.")


def request(method: str, path: str, body: Any = None, params: list[tuple[str, str]] | None = None) -> Any:
    """One API request over the database's services; a problem ends the command (exit 2) with the API's text."""

    async def work(services: Any) -> Any:
        return await LocalApi(services).call(method, path, body, params)

    return run_services(work)


def read_body(file: Path) -> Any:
    try:
        text = file.read_text()
    except OSError as exc:
        fail([f"{file}: {exc.strerror or exc}"])
    try:
        return yaml.safe_load(text) if file.suffix in (".yaml", ".yml") else orjson.loads(text)
    except (yaml.YAMLError, orjson.JSONDecodeError) as exc:
        fail([f"{file}: not valid {'YAML' if file.suffix in ('.yaml', '.yml') else 'JSON'}: {exc}"])


def pairs(items: Sequence[str] | None, option: str) -> dict[str, str]:
    """name=value options (repeatable) as a dict."""
    out: dict[str, str] = {}
    for item in items or ():
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            fail([f"{option}: expected name=value, got {item!r}"])
        out[name] = value
    return out


def items_of(answer: Any) -> list[dict[str, Any]]:
    return list(answer["items"] if isinstance(answer, dict) and "items" in answer else answer)


def show(answer: Any, as_json: bool, table: Callable[[Any], Table]) -> None:
    if as_json:
        typer.echo(orjson.dumps(answer, option=orjson.OPT_INDENT_2).decode())
    else:
        Console().print(table(answer))


ID_COLUMNS = frozenset({"id", "subscription"})
ID_WIDTH = 26  # a ULID


Column = tuple[str, Callable[[dict[str, Any]], Any]]


def grid(title: str, columns: Sequence[Column], rows: list[dict[str, Any]]) -> Table:
    """A table whose every cell folds instead of being cut: ids stay whole at any terminal width."""
    table = Table(title=title)
    for name, _ in columns:
        if name in ID_COLUMNS:  # kept whole on one line (copied into the next command); other columns fold
            table.add_column(name, no_wrap=True, min_width=ID_WIDTH)
        else:
            table.add_column(name, overflow="fold")
    for row in rows:
        table.add_row(*("" if (v := get(row)) is None else str(v) for _, get in columns))
    if not rows:
        table.caption = "none yet"
    return table


def fields_table(title: str, record: dict[str, Any]) -> Table:
    """One record as name/value rows; nested values as compact JSON."""
    table = Table(title=title, show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for name, value in record.items():
        if value is None:
            continue
        shown = value if isinstance(value, str) else orjson.dumps(value).decode()
        table.add_row(name, shown)
    return table


# meters ---------------------------------------------------------------------------------------------------------


@meters_app.command("list")
def meters_list(as_json: JsonOption = False) -> None:
    """List the meters (built-in, from the config file, from the API).

    Example: tollway meters list --json
    """
    answer = request("GET", "/api/v1/meters")
    show(
        answer,
        as_json,
        lambda a: grid(
            "meters",
            [
                ("slug", lambda m: m["slug"]),
                ("event type", lambda m: m["eventType"]),
                ("aggregation", lambda m: m["aggregation"]),
                ("value", lambda m: m.get("valueProperty")),
                ("group by", lambda m: ", ".join(m.get("groupBy") or {})),
                ("managed by", lambda m: m.get("managedBy")),
            ],
            items_of(a),
        ),
    )


@meters_app.command("show")
def meters_show(slug: Annotated[str, typer.Argument(help="Meter slug or id.")], as_json: JsonOption = False) -> None:
    """Show one meter.

    Example: tollway meters show llm_tokens
    """
    show(request("GET", f"/api/v1/meters/{slug}"), as_json, lambda a: fields_table(f"meter {slug}", a))


@meters_app.command("create")
def meters_create(
    file: FileOption = None,
    slug: Annotated[str | None, typer.Option(help="Meter slug.")] = None,
    event_type: Annotated[str | None, typer.Option("--event-type", help="CloudEvents type it counts.")] = None,
    aggregation: Annotated[str | None, typer.Option(help="SUM, COUNT, AVG, MIN, MAX, UNIQUE_COUNT or LATEST.")] = None,
    value_property: Annotated[
        str | None, typer.Option("--value-property", help="JSONPath of the value, e.g. $.tokens.")
    ] = None,
    group_by: Annotated[
        list[str] | None, typer.Option("--group-by", help="name=$.path of a dimension (repeatable).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Create a meter from flags or from a file with the API's body.

    Example: tollway meters create --slug api_calls --event-type api.call --aggregation COUNT --group-by route=$.route
    """
    if file is not None:
        body = read_body(file)
    else:
        body = {"slug": slug, "eventType": event_type, "aggregation": aggregation}
        if value_property is not None:
            body["valueProperty"] = value_property
        if group_by:
            body["groupBy"] = pairs(group_by, "--group-by")
    answer = request("POST", "/api/v1/meters", body)
    show(answer, as_json, lambda a: fields_table(f"meter {a['slug']} created", a))


@meters_app.command("delete")
def meters_delete(slug: Annotated[str, typer.Argument(help="Meter slug or id.")]) -> None:
    """Delete a meter made through the API (its rollups go with it; events stay).

    Example: tollway meters delete api_calls
    """
    request("DELETE", f"/api/v1/meters/{slug}")
    typer.echo(f"meter {slug} deleted")


# features -------------------------------------------------------------------------------------------------------


def _filters(feature: dict[str, Any]) -> str:
    advanced = feature.get("advancedMeterGroupByFilters") or {}
    return ", ".join(f"{k}={v.get('$eq') or '|'.join(v.get('$in') or ())}" for k, v in advanced.items())


@features_app.command("list")
def features_list(
    archived: Annotated[bool, typer.Option("--archived", help="Include archived features.")] = False,
    as_json: JsonOption = False,
) -> None:
    """List the features.

    Example: tollway features list
    """
    answer = request("GET", "/api/v1/features", params=[("includeArchived", "true")] if archived else None)
    show(
        answer,
        as_json,
        lambda a: grid(
            "features",
            [
                ("key", lambda f: f["key"]),
                ("name", lambda f: f["name"]),
                ("meter", lambda f: f.get("meterSlug")),
                ("filters", _filters),
                ("id", lambda f: f["id"]),
                ("archived", lambda f: f.get("archivedAt")),
            ],
            items_of(a),
        ),
    )


@features_app.command("show")
def features_show(key: Annotated[str, typer.Argument(help="Feature key or id.")], as_json: JsonOption = False) -> None:
    """Show one feature.

    Example: tollway features show output-tokens
    """
    show(request("GET", f"/api/v1/features/{key}"), as_json, lambda a: fields_table(f"feature {key}", a))


@features_app.command("create")
def features_create(
    file: FileOption = None,
    key: Annotated[str | None, typer.Option(help="Feature key.")] = None,
    name: Annotated[str | None, typer.Option(help="Display name (default: the key).")] = None,
    meter: Annotated[str | None, typer.Option(help="Meter slug it narrows.")] = None,
    filters: Annotated[
        list[str] | None, typer.Option("--filter", help="dimension=value of the meter (repeatable).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Create a feature from flags or from a file with the API's body.

    Example: tollway features create --key output-tokens --meter llm_tokens --filter type=output
    """
    if file is not None:
        body = read_body(file)
    else:
        body = {"key": key, "name": name, "meterSlug": meter}
        if filters:
            body["meterGroupByFilters"] = pairs(filters, "--filter")
        body = {k: v for k, v in body.items() if v is not None}
    answer = request("POST", "/api/v1/features", body)
    show(answer, as_json, lambda a: fields_table(f"feature {a['key']} created", a))


@features_app.command("archive")
def features_archive(key: Annotated[str, typer.Argument(help="Feature key or id.")]) -> None:
    """Archive a feature (refused while a published plan prices it).

    Example: tollway features archive output-tokens
    """
    request("DELETE", f"/api/v1/features/{key}")
    typer.echo(f"feature {key} archived")


# plans ----------------------------------------------------------------------------------------------------------


@plans_app.command("list")
def plans_list(as_json: JsonOption = False) -> None:
    """List every plan version.

    Example: tollway plans list
    """
    answer = request("GET", "/api/v1/plans")
    show(
        answer,
        as_json,
        lambda a: grid(
            "plans",
            [
                ("key", lambda p: p["key"]),
                ("version", lambda p: p["version"]),
                ("status", lambda p: p.get("status")),
                ("name", lambda p: p["name"]),
                ("currency", lambda p: p.get("currency")),
                ("cadence", lambda p: p.get("billingCadence")),
                ("id", lambda p: p["id"]),
            ],
            items_of(a),
        ),
    )


@plans_app.command("show")
def plans_show(
    plan: Annotated[str, typer.Argument(help="Plan id, or key (its newest version).")], as_json: JsonOption = False
) -> None:
    """Show one plan version with its rate cards.

    Example: tollway plans show pro --json
    """
    show(request("GET", f"/api/v1/plans/{plan}"), as_json, lambda a: fields_table(f"plan {plan}", a))


@plans_app.command("create")
def plans_create(
    file: Annotated[Path, typer.Option("--file", "-f", help="YAML or JSON file with the API's plan body.")],
    as_json: JsonOption = False,
) -> None:
    """Create a draft plan from a file with the API's body (publish it with `tollway plans publish ID`).

    Example: tollway plans create --file pro.yaml
    """
    answer = request("POST", "/api/v1/plans", read_body(file))
    show(answer, as_json, lambda a: fields_table(f"plan {a['key']} v{a['version']} created ({a.get('status')})", a))


@plans_app.command("publish")
def plans_publish(plan_id: Annotated[str, typer.Argument(help="Id of the draft plan version.")]) -> None:
    """Publish a draft plan version (the key's previous version is archived).

    Example: tollway plans publish 01JE...
    """
    answer = request("POST", f"/api/v1/plans/{plan_id}/publish")
    typer.echo(f"plan {answer['key']} v{answer['version']} published")


@plans_app.command("archive")
def plans_archive(plan_id: Annotated[str, typer.Argument(help="Id of the plan version.")]) -> None:
    """Archive a plan version (its subscriptions stay on it).

    Example: tollway plans archive 01JE...
    """
    answer = request("POST", f"/api/v1/plans/{plan_id}/archive")
    typer.echo(f"plan {answer['key']} v{answer['version']} archived")


# customers ------------------------------------------------------------------------------------------------------


@customers_app.command("list")
def customers_list(as_json: JsonOption = False) -> None:
    """List the customers.

    Example: tollway customers list
    """
    answer = request("GET", "/api/v1/customers")
    show(
        answer,
        as_json,
        lambda a: grid(
            "customers",
            [
                ("key", lambda c: c.get("key")),
                ("name", lambda c: c["name"]),
                ("subjects", lambda c: ", ".join((c.get("usageAttribution") or {}).get("subjectKeys") or ())),
                ("currency", lambda c: c.get("currency")),
                ("subscription", lambda c: c.get("currentSubscriptionId")),
                ("id", lambda c: c["id"]),
            ],
            items_of(a),
        ),
    )


@customers_app.command("show")
def customers_show(
    customer: Annotated[str, typer.Argument(help="Customer key or id.")], as_json: JsonOption = False
) -> None:
    """Show one customer.

    Example: tollway customers show acme
    """
    show(request("GET", f"/api/v1/customers/{customer}"), as_json, lambda a: fields_table(f"customer {customer}", a))


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
    answer = request("POST", "/api/v1/customers", body)
    show(answer, as_json, lambda a: fields_table(f"customer {a.get('key') or a['id']} created", a))


@customers_app.command("delete")
def customers_delete(customer: Annotated[str, typer.Argument(help="Customer key or id.")]) -> None:
    """Delete a customer (refused while it has an active subscription).

    Example: tollway customers delete globex
    """
    request("DELETE", f"/api/v1/customers/{customer}")
    typer.echo(f"customer {customer} deleted")


# subscriptions --------------------------------------------------------------------------------------------------


def _subscription_columns() -> list[Column]:
    return [
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
    answer = request("GET", f"/api/v1/customers/{customer}/subscriptions")
    show(answer, as_json, lambda a: grid(f"subscriptions of {customer}", _subscription_columns(), items_of(a)))


@subscriptions_app.command("show")
def subscriptions_show(
    subscription_id: Annotated[str, typer.Argument(help="Subscription id.")], as_json: JsonOption = False
) -> None:
    """Show one subscription.

    Example: tollway subscriptions show 01JE...
    """
    answer = request("GET", f"/api/v1/subscriptions/{subscription_id}")
    show(answer, as_json, lambda a: fields_table(f"subscription {subscription_id}", a))


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
    show(answer, as_json, lambda a: grid("subscription created", _subscription_columns(), [a]))


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

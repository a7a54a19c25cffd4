"""`tollway meters|features|plans ...`: the catalog from the command line (customers and subscriptions:
`cli/customers.py`).

Each command is one request to the management API, made in-process (`cli/api_commands.py`): the same checks,
the same problem text, and with --json the API's own JSON. Tables print ids in full (they wrap, never cut: the
next command needs them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from tollway.cli.api_commands import (
    Column,
    FileOption,
    JsonOption,
    create_record,
    pairs,
    read_body,
    request,
    show_list,
    show_record,
)
from tollway.cli.commands import Commands

meters_app = Commands(help="Meters: list, show, create, delete.")
features_app = Commands(help="Features: list, show, create, archive.")
plans_app = Commands(help="Plans: list, show, create, publish, archive.")


# meters ---------------------------------------------------------------------------------------------------------

METER_COLUMNS: list[Column] = [
    ("slug", lambda m: m["slug"]),
    ("event type", lambda m: m["eventType"]),
    ("aggregation", lambda m: m["aggregation"]),
    ("value", lambda m: m.get("valueProperty")),
    ("group by", lambda m: ", ".join(m.get("groupBy") or {})),
    ("managed by", lambda m: m.get("managedBy")),
]


@meters_app.command("list")
def meters_list(as_json: JsonOption = False) -> None:
    """List the meters (built-in, from the config file, from the API).

    Example: tollway meters list --json
    """
    show_list("/api/v1/meters", "meters", METER_COLUMNS, as_json)


@meters_app.command("show")
def meters_show(slug: Annotated[str, typer.Argument(help="Meter slug or id.")], as_json: JsonOption = False) -> None:
    """Show one meter.

    Example: tollway meters show llm_tokens
    """
    show_record(f"/api/v1/meters/{slug}", f"meter {slug}", as_json)


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
    create_record("/api/v1/meters", body, as_json, lambda a: f"meter {a['slug']} created")


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


FEATURE_COLUMNS: list[Column] = [
    ("key", lambda f: f["key"]),
    ("name", lambda f: f["name"]),
    ("meter", lambda f: f.get("meterSlug")),
    ("filters", _filters),
    ("id", lambda f: f["id"]),
    ("archived", lambda f: f.get("archivedAt")),
]


@features_app.command("list")
def features_list(
    archived: Annotated[bool, typer.Option("--archived", help="Include archived features.")] = False,
    as_json: JsonOption = False,
) -> None:
    """List the features.

    Example: tollway features list
    """
    params = [("includeArchived", "true")] if archived else None
    show_list("/api/v1/features", "features", FEATURE_COLUMNS, as_json, params)


@features_app.command("show")
def features_show(key: Annotated[str, typer.Argument(help="Feature key or id.")], as_json: JsonOption = False) -> None:
    """Show one feature.

    Example: tollway features show output-tokens
    """
    show_record(f"/api/v1/features/{key}", f"feature {key}", as_json)


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
    create_record("/api/v1/features", body, as_json, lambda a: f"feature {a['key']} created")


@features_app.command("archive")
def features_archive(key: Annotated[str, typer.Argument(help="Feature key or id.")]) -> None:
    """Archive a feature (refused while a published plan prices it).

    Example: tollway features archive output-tokens
    """
    request("DELETE", f"/api/v1/features/{key}")
    typer.echo(f"feature {key} archived")


# plans ----------------------------------------------------------------------------------------------------------

PLAN_COLUMNS: list[Column] = [
    ("key", lambda p: p["key"]),
    ("version", lambda p: p["version"]),
    ("status", lambda p: p.get("status")),
    ("name", lambda p: p["name"]),
    ("currency", lambda p: p.get("currency")),
    ("cadence", lambda p: p.get("billingCadence")),
    ("id", lambda p: p["id"]),
]


@plans_app.command("list")
def plans_list(as_json: JsonOption = False) -> None:
    """List every plan version.

    Example: tollway plans list
    """
    show_list("/api/v1/plans", "plans", PLAN_COLUMNS, as_json)


@plans_app.command("show")
def plans_show(
    plan: Annotated[str, typer.Argument(help="Plan id, or key (its newest version).")], as_json: JsonOption = False
) -> None:
    """Show one plan version with its rate cards.

    Example: tollway plans show pro --json
    """
    show_record(f"/api/v1/plans/{plan}", f"plan {plan}", as_json)


@plans_app.command("create")
def plans_create(
    file: Annotated[Path, typer.Option("--file", "-f", help="YAML or JSON file with the API's plan body.")],
    as_json: JsonOption = False,
) -> None:
    """Create a draft plan from a file with the API's body (publish it with `tollway plans publish ID`).

    Example: tollway plans create --file pro.yaml
    """
    create_record(
        "/api/v1/plans",
        read_body(file),
        as_json,
        lambda a: f"plan {a['key']} v{a['version']} created ({a.get('status')})",
    )


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

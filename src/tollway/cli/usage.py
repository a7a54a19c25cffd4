"""`tollway usage`: a meter queried from the database, printed as a table, the API's JSON or CSV."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from tollway.cli.common import fail, load, require_database
from tollway.errors import DomainError


def usage(
    meter: Annotated[str, typer.Argument(help="Meter slug.")] = "llm_tokens",
    subject: Annotated[
        list[str] | None, typer.Option("--subject", "-s", help="Filter by subject (repeatable).")
    ] = None,
    group_by: Annotated[
        list[str] | None, typer.Option("--group-by", "-g", help="Group by dimension (repeatable).")
    ] = None,
    window: Annotated[str | None, typer.Option(help="MINUTE, HOUR, DAY or MONTH.")] = None,
    tz: Annotated[str, typer.Option(help="IANA time zone for windows.")] = "UTC",
    since: Annotated[datetime | None, typer.Option("--from", help="Start (inclusive), ISO 8601 with offset.")] = None,
    until: Annotated[datetime | None, typer.Option("--to", help="End (exclusive), ISO 8601 with offset.")] = None,
    filters: Annotated[
        list[str] | None, typer.Option("--filter", "-f", help="Keep only name=value of a dimension (repeatable).")
    ] = None,
    customer: Annotated[
        str | None, typer.Option("--customer", help="Only the usage of this customer's subjects (key or id).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the API's JSON (OpenMeter's query shape).")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV, as the API's text/csv answer.")] = False,
) -> None:
    """Query a meter from the database and print a table (or JSON, or CSV).

    Example: tollway usage llm_tokens --customer acme --group-by type --window DAY --csv
    """
    from tollway.adapters.sql.migrate import upgrade
    from tollway.metering.aggregation import MeterQuery, parse_zone
    from tollway.metering.events import format_time
    from tollway.metering.meters import WindowSize
    from tollway.money import decimal_text
    from tollway.wiring.services import build_services

    settings, _ = load(None)
    require_database(settings.database_url)
    for moment, name in ((since, "--from"), (until, "--to")):
        if moment is not None and moment.tzinfo is None:
            fail([f"{name}: give a UTC offset, e.g. 2026-11-01T00:00:00Z"])
    filter_group_by: dict[str, tuple[str, ...]] = {}
    for item in filters or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            fail([f"--filter: expected name=value, got {item!r}"])
        filter_group_by[name] = (*filter_group_by.get(name, ()), value)
    try:
        query = MeterQuery(
            start=since,
            end=until,
            window_size=WindowSize(window.upper()) if window else None,
            window_tz=parse_zone(tz),
            subjects=tuple(subject) if subject else None,
            group_by=tuple(group_by or ()),
            filter_group_by=filter_group_by,
        )
    except ValueError as exc:
        fail([str(exc)])
    services = build_services(settings)
    store, service = services.store, services.metering

    async def run() -> list[Any]:
        if not await store.list_meters():
            await service.sync_meters([])  # a fresh database: the built-in meters
        return await service.query(meter, query, customer=customer)

    try:
        upgrade(store.engine)
        rows = asyncio.run(run())
    except DomainError as exc:
        fail([exc.message])
    store.engine.dispose()
    if as_json or as_csv:
        from tollway.api.meters import row_json, rows_csv

        if as_csv:
            typer.echo(rows_csv(rows, [g for g in query.group_by if g != "subject"]), nl=False)
            return
        answer = {
            "from": format_time(query.start) if query.start else None,
            "to": format_time(query.end) if query.end else None,
            "windowSize": query.window_size.value if query.window_size else None,
            "data": [row_json(r) for r in rows],
        }
        typer.echo(orjson.dumps(answer, option=orjson.OPT_INDENT_2).decode())
        return
    table = Table(title=f"{meter}")
    table.add_column("window start")
    table.add_column("window end")
    if query.subjects is not None or "subject" in query.group_by:
        table.add_column("subject")
    dims = [g for g in query.group_by if g != "subject"]
    for name in dims:
        table.add_column(name)
    table.add_column("value", justify="right")
    for row in rows:
        cells = [format_time(row.window_start), format_time(row.window_end)]
        if query.subjects is not None or "subject" in query.group_by:
            cells.append(row.subject or "")
        cells.extend(row.group_by.get(name) or "" for name in dims)
        cells.append(decimal_text(row.value))
        table.add_row(*cells)
    Console().print(table)

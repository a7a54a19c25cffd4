"""Commands that are one request to the management API, made in-process (`cli/local_api.py`) over the database
of TOLLWAY_DATABASE_URL: the same checks, the same problem text, and with --json the API's own JSON. Here: the
request, a body read from a file, and the answer printed (a table whose ids are printed in full, or the JSON),
for one record or a list of them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
import yaml
from rich.console import Console
from rich.table import Table

from tollway.cli.common import fail
from tollway.cli.local_api import LocalApi
from tollway.cli.services import run_services

JsonOption = Annotated[bool, typer.Option("--json", help="Print the API's JSON answer.")]
# A budget's or a rate limit's setting for when Redis is unreachable: on create, and on update (where
# "default" clears it back to TOLLWAY_SPEND_REDIS_FAILURE).
OnRedisFailure = Annotated[
    str | None,
    typer.Option(
        "--on-redis-failure",
        help="Redis unreachable: open (admit unchecked) or closed (refuse); default: TOLLWAY_SPEND_REDIS_FAILURE.",
    ),
]
NewOnRedisFailure = Annotated[
    str | None,
    typer.Option(
        "--on-redis-failure", help="Redis unreachable: open, closed, or default (TOLLWAY_SPEND_REDIS_FAILURE)."
    ),
]
FileOption = Annotated[
    Path | None,
    typer.Option("--file", "-f", help="YAML or JSON file holding the API's request body (OpenMeter's shape)."),
]


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


def show_record(path: str, title: str, as_json: bool) -> None:
    """GET one record: its fields as a table, or the API's JSON."""
    show(request("GET", path), as_json, lambda a: fields_table(title, a))


def show_list(
    path: str, title: str, columns: Sequence[Column], as_json: bool, params: list[tuple[str, str]] | None = None
) -> None:
    """GET a list: one row per item, or the API's JSON."""
    show(request("GET", path, params=params), as_json, lambda a: grid(title, columns, items_of(a)))


def create_record(path: str, body: Any, as_json: bool, title: Callable[[Any], str]) -> None:
    """POST a new record and show what the API answered (`title` names it from the answer)."""
    show(request("POST", path, body), as_json, lambda a: fields_table(title(a), a))

"""`tollway consumers ...` and `tollway keys ...`: gateway identities in the database (TOLLWAY_DATABASE_URL).

Changes reach every running gateway within a second (they poll the database's identity version)."""

from __future__ import annotations

import re
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from tollway.cli.commands import Commands
from tollway.cli.common import err, fail
from tollway.cli.services import run_services

if TYPE_CHECKING:
    from tollway.identity.service import IdentityService

T = TypeVar("T")
DURATION = re.compile(r"^([0-9]{1,12})([smhdw])$")
MAX_EXPIRY_DAYS = 100 * 366  # --expires-in at most about 100 years: a date, not an overflow
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}

consumers_app = Commands(help="Gateway consumers (API callers) stored in the database.")
keys_app = Commands(help="API keys of consumers: create (shown once), list, revoke.")

ModelOption = Annotated[
    list[str] | None, typer.Option("--model", "-m", help="A model it may use (repeatable; none: every model).")
]


def _run(work: Callable[[IdentityService], Awaitable[T]]) -> T:
    """Open the services (migrating the database), run `work` on the identity service, close."""
    return run_services(lambda services: work(services.identity))


def _models_text(models: frozenset[str] | None) -> str:
    return ", ".join(sorted(models)) if models is not None else "(all)"


def _time_text(moment: datetime | None) -> str:
    from tollway.metering.events import format_time

    return format_time(moment.replace(microsecond=0)) if moment is not None else "-"


def parse_expiry(expires_in: str | None, expires_at: str | None, now: datetime) -> datetime | None:
    """--expires-in 30d (s, m, h, d or w) or --expires-at RFC 3339; at most one."""
    from tollway.metering.events import parse_time

    if expires_in is not None and expires_at is not None:
        fail(["give --expires-in or --expires-at, not both"])
    if expires_in is not None:
        match = DURATION.fullmatch(expires_in.strip())
        if match is None or int(match.group(1)) == 0:
            fail([f"--expires-in: expected a positive number and a unit (s, m, h, d, w), e.g. 30d; got {expires_in!r}"])
        assert match is not None
        seconds = int(match.group(1)) * UNIT_SECONDS[match.group(2)]  # bounded before a timedelta is made
        if seconds > MAX_EXPIRY_DAYS * 86_400:
            fail([f"--expires-in: at most {MAX_EXPIRY_DAYS} days (about 100 years); got {expires_in!r}"])
        return now + timedelta(seconds=seconds)
    if expires_at is not None:
        try:
            return parse_time(expires_at)
        except ValueError:
            fail([f"--expires-at: expected RFC 3339 with an offset, e.g. 2027-01-01T00:00:00Z; got {expires_at!r}"])
    return None


@consumers_app.command("list")
def consumers_list() -> None:
    """Print every consumer with its models and number of usable keys.

    Example: tollway consumers list
    """
    summaries = _run(lambda identity: identity.list_consumers())
    table = Table(title="consumers")
    for column in ("username", "managed by", "models", "keys", "created"):
        table.add_column(column, justify="right" if column == "keys" else "left")
    for summary in summaries:
        c = summary.consumer
        table.add_row(
            c.username, c.managed_by, _models_text(c.models), str(summary.key_count), _time_text(c.created_at)
        )
    Console(width=200).print(table)


@consumers_app.command("create")
def consumers_create(
    username: Annotated[str, typer.Argument(help="The consumer's username (letters, digits, . _ : / @ -).")],
    model: ModelOption = None,
) -> None:
    """Create a consumer (managed by the API: `consumers` in a config file are managed there).

    Example: tollway consumers create globex
    """
    consumer = _run(lambda identity: identity.create_consumer(username, models=model or None))
    typer.echo(f"consumer {consumer.username} created (models: {_models_text(consumer.models)})")


@keys_app.command("create")
def keys_create(
    username: Annotated[str, typer.Argument(help="The consumer the key belongs to.")],
    name: Annotated[str | None, typer.Option("--name", "-n", help="A name to recognise the key by.")] = None,
    expires_in: Annotated[str | None, typer.Option("--expires-in", help="Lifetime, e.g. 30d, 12h, 2w.")] = None,
    expires_at: Annotated[str | None, typer.Option("--expires-at", help="Expiry, RFC 3339 with offset.")] = None,
    model: ModelOption = None,
    from_stdin: Annotated[
        bool,
        typer.Option(
            "--from-stdin",
            help="Import a key the consumer already holds (e.g. from Kong): read it from standard input"
            " (8-256 visible ASCII characters) instead of generating one.",
        ),
    ] = False,
) -> None:
    """Create an API key and print it. It is shown this once: only its digest is stored.

    Example: tollway keys create globex --name ci
    """
    from tollway.clock import SystemClock

    expiry = parse_expiry(expires_in, expires_at, SystemClock().now())
    value = sys.stdin.readline().strip("\r\n") if from_stdin else None
    created = _run(
        lambda identity: identity.create_key(username, name=name, expires_at=expiry, models=model or None, value=value)
    )
    if value is None:
        typer.echo(created.plain)
    shown = f" ({created.key.prefix}...)" if created.key.prefix else ""
    err.print(
        f"key {created.key.id}{shown} created for {username}, expires {_time_text(expiry)}."
        + (" Store it now: it is shown only once." if value is None else " (imported: not shown)"),
        highlight=False,
        soft_wrap=True,
    )


@keys_app.command("list")
def keys_list(username: Annotated[str, typer.Argument(help="The consumer.")]) -> None:
    """Print a consumer's keys (metadata only: id, name, prefix, dates, models).

    Example: tollway keys list globex
    """
    keys = _run(lambda identity: identity.keys(username))
    table = Table(title=f"keys of {username}")
    for column in ("id", "name", "prefix", "created", "last used", "expires", "revoked", "models"):
        if column == "id":  # whole, on one line: `keys revoke` takes it
            table.add_column(column, no_wrap=True, min_width=26)
        else:
            table.add_column(column, overflow="fold")
    for key in keys:
        table.add_row(
            key.id,
            key.name or "-",
            key.prefix or "-",
            _time_text(key.created_at),
            key.last_used_day.isoformat() if key.last_used_day is not None else "-",
            _time_text(key.expires_at),
            _time_text(key.revoked_at),
            _models_text(key.models) if key.models is not None else "(consumer's)",
        )
    Console(width=240).print(table)


@keys_app.command("revoke")
def keys_revoke(
    username: Annotated[str, typer.Argument(help="The consumer.")],
    key_id: Annotated[str, typer.Argument(help="The key's id (see `tollway keys list`).")],
) -> None:
    """Revoke a key: every gateway refuses it within a second. Revoking twice is harmless.

    Example: tollway keys revoke globex 01JE...
    """
    key = _run(lambda identity: identity.revoke_key(username, key_id))
    typer.echo(f"key {key.id} of {username} revoked at {_time_text(key.revoked_at)}")

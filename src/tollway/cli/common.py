"""What every `tollway` command shares: one error line per problem (exit 2), the settings and config file loaded,
and the database named without its password. Imported by the commands, never the other way round."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console

from tollway.config.loader import load_config
from tollway.config.schema import TollwayConfig
from tollway.errors import ConfigError, UnavailableError
from tollway.settings import Settings

err = Console(stderr=True)


def fail(problems: list[str], code: int = 2) -> NoReturn:
    for line in problems:
        err.print(f"[red]error:[/red] {line}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def load(config: Path | None, **overrides: Any) -> tuple[Settings, TollwayConfig]:
    """Settings from the environment (with the command's options), and the config file they or `config` name."""
    try:
        settings = Settings.from_env(**overrides)
        path = config or (Path(settings.config) if settings.config else None)
        loaded = load_config(path, settings.env) if path else TollwayConfig()
    except ConfigError as exc:
        fail(exc.problems)
    return settings.with_overrides(config=str(path) if path else None), loaded


def shown_url(url: str) -> str:
    """The database URL as it may be printed: the password hidden."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "TOLLWAY_DATABASE_URL"


def database_failures() -> tuple[type[Exception], ...]:
    """What means "the database is unreachable or refused": a store's outage, a driver or SQLAlchemy error,
    a file system error (SQLite). Anything else is a bug and surfaces with its traceback."""
    from sqlalchemy.exc import SQLAlchemyError

    return (UnavailableError, SQLAlchemyError, OSError)


def database_problem(url: str, exc: Exception) -> str:
    """One line: the database (password hidden) and the driver's first line, without SQLAlchemy's footer."""
    from sqlalchemy.exc import DBAPIError

    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = str(cause).strip().splitlines()
    return f"database {shown_url(url)}: {cause.__class__.__name__}: {lines[0] if lines else 'failed'}"


def require_database(url: str) -> None:
    """Read-only commands refuse a SQLite file that does not exist (SQLite would create an empty one)."""
    from tollway.adapters.sql.engine import missing_sqlite_file

    missing = missing_sqlite_file(url)
    if missing is not None:
        fail(
            [
                f"no database at {url} (looked for {missing.resolve()}): run this where"
                " `tollway serve` keeps its database, or set TOLLWAY_DATABASE_URL"
            ]
        )

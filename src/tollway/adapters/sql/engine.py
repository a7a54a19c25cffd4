"""Engines for SQLite and PostgreSQL from one URL, with the settings each needs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from tollway.errors import ConfigError

SQLITE_CACHE_KIB = -65_536  # pages cached per connection, in KiB when negative: 64 MiB (SQLite's default: 2 MiB)
SQLITE_AUTOCHECKPOINT_PAGES = 20_000  # about 80 MB of WAL: a backstop (the store checkpoints after writes)


def normalize_url(url: str) -> str:
    """Accept the URLs people write (`postgres://`, `postgresql://`) and pick the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def missing_sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names when it does not exist (connecting would create it empty); else None
    (another database, an in-memory one, an existing file or a URL the engine will refuse)."""
    try:
        parsed = make_url(normalize_url(url))
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    path = Path(parsed.database)
    return None if path.exists() else path


def create_sql_engine(url: str, *, pool_size: int = 5) -> Engine:
    normalized = normalize_url(url)
    try:
        parsed = make_url(normalized)
    except ArgumentError:
        raise ConfigError([f"TOLLWAY_DATABASE_URL: cannot parse {url!r}"]) from None
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(normalized, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() == "postgresql":
        return create_engine(
            normalized,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,
            # A dead network path must fail a flush in seconds, not after the OS gives up (~15 min).
            connect_args={
                "connect_timeout": 5,
                "keepalives": 1,
                "keepalives_idle": 10,
                "keepalives_interval": 5,
                "keepalives_count": 3,
                "tcp_user_timeout": 30_000,
            },
        )
    raise ConfigError([f"TOLLWAY_DATABASE_URL: unsupported database {parsed.get_backend_name()!r}"])


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA auto_vacuum=INCREMENTAL")  # a new file only: retention then shrinks it
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    # Checkpoints (copying the WAL into the database, with an fsync) would otherwise run inside whichever
    # commit crosses 1000 pages: an ingest request. SqlEventStore checkpoints between writes instead
    # (see _after_ingest); this bound is a backstop. The WAL file is truncated back to 64 MB at most.
    cursor.execute(f"PRAGMA wal_autocheckpoint={SQLITE_AUTOCHECKPOINT_PAGES}")
    cursor.execute("PRAGMA journal_size_limit=67108864")
    cursor.execute(f"PRAGMA cache_size={SQLITE_CACHE_KIB}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def failure_text(exc: BaseException) -> str:
    """A database failure in one line for logs and error messages: the exception's class and the driver's first
    line, never SQLAlchemy's statement and bound parameters (a key digest, a customer's data)."""
    cause = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines()
    first = lines[0][:200] if lines else ""
    return f"{exc.__class__.__name__}: {first}" if first else exc.__class__.__name__

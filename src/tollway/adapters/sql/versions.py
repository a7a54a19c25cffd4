"""VersionRow: the cheap read of one `identity_version` counter, for the gateway's polls.

A gateway process reads a version counter several times a second (keys: every 0.25 s; catalog and budgets:
every second) and nothing else unless it moved. Through the engine each read builds a SQLAlchemy statement,
checks a connection out of the pool and hops to a worker thread: about 200 us of CPU for a 3 us lookup.

On a SQLite file this reads the row on the calling (event loop) thread, on a connection of its own, with one
fixed driver-level statement (sqlite3 caches it prepared). Under WAL a reader neither waits for writers nor
for checkpoints, and the row's page is in memory: the read takes microseconds. A lock it cannot get at once
(only while the WAL is recovered after a crash) falls back to the engine path in a thread, as does any other
database (PostgreSQL: a network round trip stays off the loop) and an in-memory or URI-configured SQLite
database (a connection of its own would see another database).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Connection, Engine, select

from tollway.adapters.sql.schema import identity_version

SQLITE_READ = "SELECT version FROM identity_version WHERE name = ?"
SQLITE_BUSY_MS = 50  # a lock held this long (WAL recovery) sends the read to a thread, where it may wait


class VersionRow:
    def __init__(self, engine: Engine, name: str, read: Callable[[Callable[[Connection], int]], int]) -> None:
        """`read` runs a blocking read on a connection of the engine (the store's own, with its error mapping)."""
        self._read = read
        self._params = (name,)
        self._query = select(identity_version.c.version).where(identity_version.c.name == name)
        database = engine.url.database
        self._sqlite_path = (
            database
            if engine.dialect.name == "sqlite" and database not in (None, "", ":memory:") and not engine.url.query
            else None
        )
        self._sqlite: sqlite3.Connection | None = None
        self._lock = threading.Lock()  # the held connection: one read at a time (a thread may use it too)

    def read_in(self, connection: Connection) -> int:
        """The counter, read on `connection` (inside a caller's transaction)."""
        return int(connection.execute(self._query).scalar_one())

    async def read(self) -> int:
        """The counter's current value (UnavailableError when the database cannot be read)."""
        if self._sqlite_path is not None:
            value = self._read_sqlite()
            if value is not None:
                return value
        return await asyncio.to_thread(self._read, self.read_in)

    def _read_sqlite(self) -> int | None:
        if not self._lock.acquire(blocking=False):
            return None
        try:
            if self._sqlite is None:
                self._sqlite = self._connect()
            row = self._sqlite.execute(SQLITE_READ, self._params).fetchone()
        except sqlite3.Error:
            self._close_sqlite()  # busy, or a file replaced under it: the engine path decides (and reports)
            return None
        finally:
            self._lock.release()
        if row is None:
            return None  # not migrated yet: the engine path raises as it always did
        return int(row[0])

    def _connect(self) -> sqlite3.Connection:
        assert self._sqlite_path is not None
        uri = Path(self._sqlite_path).absolute().as_uri() + "?mode=rw"  # never creates the file
        connection = sqlite3.connect(uri, uri=True, timeout=SQLITE_BUSY_MS / 1000, check_same_thread=False)
        connection.isolation_level = None  # autocommit: each read sees the latest commit
        return connection

    def _close_sqlite(self) -> None:
        connection, self._sqlite = self._sqlite, None
        if connection is not None:
            connection.close()

    def close(self) -> None:
        """Close the held connection (a later read opens another)."""
        with self._lock:
            self._close_sqlite()

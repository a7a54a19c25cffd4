"""The change feed on PostgreSQL: NOTIFY on one channel, LISTEN on a connection of its own per process.

Notifications are database-wide and cost no table; each process tags its own so it does not refresh twice.
A lost connection is reopened (every second while the database is down); meanwhile the version polls carry
changes, so the feed only makes them faster, never required.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable

import psycopg
from sqlalchemy.engine import make_url

from tollway.adapters.sql.engine import normalize_url

log = logging.getLogger("tollway.changes")

CHANNEL = "tollway_changes"
RECONNECT_S = 1.0
CONNECT_TIMEOUT_S = 5


def libpq_url(database_url: str) -> str | None:
    """The libpq form of a PostgreSQL TOLLWAY_DATABASE_URL; None for another database (SQLite: no feed)."""
    url = make_url(normalize_url(database_url))
    if url.get_backend_name() != "postgresql":
        return None
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class PgChangeFeed:
    def __init__(self, conninfo: str, *, channel: str = CHANNEL) -> None:
        self._conninfo = conninfo
        self._channel = channel
        self._origin = secrets.token_hex(8)
        self._publisher: psycopg.AsyncConnection[object] | None = None
        self._lock = asyncio.Lock()
        self.published_total = 0
        self.publish_failures_total = 0
        self.received_total = 0

    async def publish(self) -> None:
        async with self._lock:
            for attempt in (1, 2):  # a connection the database dropped is reopened once
                try:
                    if self._publisher is None or self._publisher.closed:
                        self._publisher = await psycopg.AsyncConnection.connect(
                            self._conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S
                        )
                    await self._publisher.execute("SELECT pg_notify(%s, %s)", (self._channel, self._origin))
                    self.published_total += 1
                    return
                except psycopg.Error as exc:
                    await self._drop_publisher()
                    if attempt == 2:
                        self.publish_failures_total += 1
                        log.warning(
                            "change feed: NOTIFY failed (other processes see the change at their poll): %s", exc
                        )

    async def _drop_publisher(self) -> None:
        publisher, self._publisher = self._publisher, None
        if publisher is not None:
            with contextlib.suppress(psycopg.Error):
                await publisher.close()

    async def listen(self, on_change: Callable[[], Awaitable[None]]) -> None:
        failing = False
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S
                ) as conn:
                    await conn.execute(f'LISTEN "{self._channel}"')
                    if failing:
                        log.warning("change feed: listening again")
                        failing = False
                        await on_change()  # what was announced while the connection was down
                    async for note in conn.notifies():
                        if note.payload != self._origin:
                            self.received_total += 1
                            await on_change()
            except psycopg.Error as exc:
                if not failing:
                    log.warning("change feed: LISTEN connection lost, retrying every %.0fs: %s", RECONNECT_S, exc)
                failing = True
            await asyncio.sleep(RECONNECT_S)

    async def close(self) -> None:
        async with self._lock:
            await self._drop_publisher()

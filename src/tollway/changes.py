"""Catalog and identity changes, seen at once by the process that made them and pushed to the others.

A change made through the management API (a key created or revoked, a consumer, plan, customer or
subscription changed) is applied to this process's in-memory snapshots (the key index, the spend rules)
before the API answers, so the new key works on the very next request. Then it is announced on the change
feed (PostgreSQL LISTEN/NOTIFY: `adapters/sql/notify.py`; on SQLite, Redis pub/sub when TOLLWAY_REDIS_URL is
set: `adapters/redis/changes.py`), and every other process refreshes within milliseconds. The version polls
(keys every 0.25 s, catalog every TOLLWAY_SPEND_REFRESH_S) stay underneath: a lost notification, or a feed that
is down, delays a change by one poll, never loses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

log = logging.getLogger("tollway.changes")

REFRESH_TIMEOUT_S = 2.0  # a refresh on the API's path waits this long at most (the poll catches up after)

Refresh = Callable[[], Awaitable[object]]


class ChangeFeed(Protocol):
    """How processes tell each other that the catalog or the identities changed."""

    async def publish(self) -> None:
        """Announce a change (never raises: a failure is logged, the polls catch up)."""
        ...

    async def listen(self, on_change: Callable[[], Awaitable[None]]) -> None:
        """Call `on_change` for every change another process announces; runs until cancelled, reconnecting."""
        ...

    async def close(self) -> None: ...


class Changes:
    def __init__(self, refreshers: Sequence[Refresh], feed: ChangeFeed | None = None) -> None:
        self._refreshers = list(refreshers)
        self._feed = feed
        self._task: asyncio.Task[None] | None = None
        self.local_total = 0
        self.remote_total = 0

    async def changed_here(self) -> None:
        """A change was written by this process: refresh here, then tell the others."""
        self.local_total += 1
        await self._refresh()
        if self._feed is not None:
            await self._feed.publish()

    async def changed_elsewhere(self) -> None:
        self.remote_total += 1
        await self._refresh()

    async def _refresh(self) -> None:
        for refresh in self._refreshers:
            try:
                await asyncio.wait_for(refresh(), REFRESH_TIMEOUT_S)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the store is down or slow: the poll loops retry
                log.warning("refresh after a change failed (the next poll retries): %r", exc)

    def start(self) -> None:
        if self._feed is not None and self._task is None:
            self._task = asyncio.create_task(self._feed.listen(self.changed_elsewhere), name="tollway-change-feed")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._feed is not None:
            await self._feed.close()

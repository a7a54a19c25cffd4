"""The event writer's own database connection, and group commit for concurrent ingest calls.

Ingest holds one connection from the engine's pool for as long as it works (no checkout and
pre-ping per batch). A connection that breaks is dropped and the batch is tried once more on a fresh
one: (source, id) deduplication makes the retry harmless even when the first commit went through.
Driver errors become UnavailableError here; nothing above this module sees psycopg or sqlite3.

GroupCommit lets concurrent callers share a transaction: while one write is in flight, the batches
submitted meanwhile queue up and go together in the next one (up to a size), so many small
concurrent requests cost about as few commits as one big one. Each caller still gets its own answer.

A small group can be written on the event loop's own thread (`inline`, SQLite): a write of a few events
takes ~0.1-0.3 ms there, less than what handing it to a thread and back costs (the hop, and the GIL passed
between two threads that both want it: ~7 futex calls per single-event request, measured). It is tried only
when it cannot wait: `WriterConnection.run_now` refuses at once (WriterBusy) when another thread holds the
connection or another connection holds SQLite's write lock, and the group then goes to a thread as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

import psycopg
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from tollway.adapters.sql.engine import failure_text
from tollway.errors import UnavailableError

log = logging.getLogger("tollway.metering.store")

T = TypeVar("T")
Item = TypeVar("Item")
DRIVER_ERRORS = (psycopg.Error, sqlite3.Error, SQLAlchemyError, OSError)


class WriterBusy(Exception):
    """run_now could not write without waiting: the caller writes from a thread instead (nothing was written)."""


SQLITE_BUSY_CODES = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


class WriterConnection:
    """One pooled DBAPI connection kept for the event writer, used by one thread at a time."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._held: Any = None  # SQLAlchemy's pooled connection wrapper
        self._lock = threading.Lock()

    def run(self, work: Callable[[Any], T]) -> T:
        """Run `work(driver_connection)`; `work` commits or rolls back itself."""
        with self._lock:
            for attempt in (1, 2):
                fresh = self._held is None
                try:
                    if self._held is None:
                        self._held = self._engine.raw_connection()
                    return work(self._held.driver_connection)
                except DRIVER_ERRORS as exc:
                    broken = self._drop_if_broken()
                    if broken and not fresh and attempt == 1:
                        continue  # a connection that died while idle: once more on a new one
                    raise UnavailableError(f"event store write failed: {failure_text(exc)}") from exc
            raise AssertionError("unreachable")

    def run_now(self, work: Callable[[Any], T]) -> T:
        """`run` on the caller's thread without waiting, for a SQLite connection already open: WriterBusy when
        another thread holds this connection, when none is open yet, or when the database's write lock is taken
        (SQLITE_BUSY with busy_timeout 0 for this attempt; `work` rolls back, so nothing was written). Other
        driver errors become UnavailableError, as in `run`."""
        if not self._lock.acquire(blocking=False):
            raise WriterBusy
        try:
            driver = self._held.driver_connection if self._held is not None else None
            if not isinstance(driver, sqlite3.Connection):
                raise WriterBusy
            waits = driver.execute("PRAGMA busy_timeout").fetchone()[0]
            driver.execute("PRAGMA busy_timeout=0")
            try:
                return work(driver)
            except sqlite3.OperationalError as exc:
                if (exc.sqlite_errorcode or 0) & 0xFF in SQLITE_BUSY_CODES:  # None: an error of the module, not busy
                    raise WriterBusy from exc
                raise UnavailableError(f"event store write failed: {failure_text(exc)}") from exc
            except DRIVER_ERRORS as exc:
                raise UnavailableError(f"event store write failed: {failure_text(exc)}") from exc
            finally:
                driver.execute(f"PRAGMA busy_timeout={int(waits)}")
        finally:
            self._lock.release()

    def _drop_if_broken(self) -> bool:
        held, self._held = self._held, None
        if held is None:
            return True
        driver = held.driver_connection
        if isinstance(driver, psycopg.Connection) and not (driver.closed or driver.broken):
            try:
                driver.rollback()
            except psycopg.Error:
                pass
            else:
                self._held = held  # still usable: keep it
                return False
        elif isinstance(driver, sqlite3.Connection):
            self._held = held  # a file database does not break like a socket
            return False
        held.invalidate()
        return True

    def close(self) -> None:
        with self._lock:
            if self._held is not None:
                self._held.close()  # back to the pool
                self._held = None


class GroupCommit(Generic[Item]):
    """Batches submitted while a write is in flight are written together by the next one."""

    def __init__(
        self,
        write: Callable[[list[Sequence[Item]]], list[int]],
        *,
        max_items: int = 10_000,
        after: Callable[[int], Callable[[], None] | None] | None = None,
        inline: Callable[[list[Sequence[Item]]], list[int]] | None = None,
        inline_max: int = 0,
    ) -> None:
        self._write = write  # blocking: runs in a thread; one answer per batch, in order
        self._max_items = max_items
        # `write` without waiting, on the event loop, for groups of at most `inline_max` items; WriterBusy: the
        # group goes to `write` in a thread after all
        self._inline = inline
        self._inline_max = inline_max
        # Told each answered group's size (on the event loop): the blocking upkeep then due, run in a thread,
        # or None (most groups: no thread hop for them).
        self._after = after
        self._queue: list[tuple[Sequence[Item], asyncio.Future[int]]] = []
        self._draining: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def submit(self, batch: Sequence[Item]) -> int:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # first use, or a new event loop (the old one's queue died with it)
            self._loop, self._queue, self._draining = loop, [], None
        future: asyncio.Future[int] = loop.create_future()
        self._queue.append((batch, future))
        if self._draining is None or self._draining.done():
            self._draining = asyncio.create_task(self._drain(), name="tollway-group-commit")
        return await future

    async def _drain(self) -> None:
        while self._queue:
            taken, size = 0, 0
            for batch, _ in self._queue:
                if taken and size + len(batch) > self._max_items:
                    break
                taken += 1
                size += len(batch)
            group, self._queue = self._queue[:taken], self._queue[taken:]
            batches = [batch for batch, _ in group]
            try:
                answers = None
                if self._inline is not None and size <= self._inline_max:
                    with contextlib.suppress(WriterBusy):  # nothing written: to a thread
                        answers = self._inline(batches)
                if answers is None:
                    answers = await asyncio.to_thread(self._write, batches)
            except asyncio.CancelledError:
                for _, future in [*group, *self._queue]:
                    future.cancel()
                self._queue = []
                raise
            except Exception as exc:
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), answer in zip(group, answers, strict=True):
                if not future.done():
                    future.set_result(answer)
            upkeep = self._after(size) if self._after is not None else None
            if upkeep is not None:
                try:
                    await asyncio.to_thread(upkeep)
                except Exception as exc:  # upkeep only: the next group retries it
                    log.warning("after-write upkeep failed: %s", exc)
            elif self._queue:
                await asyncio.sleep(0)  # after a write on the loop, the loop's other work before the next group

"""SQLite ingest writes small groups on the event loop (writer.GroupCommit inline, WriterConnection.run_now) only
when it need not wait: with the write lock taken by another connection the group goes to a thread and waits there
(the loop keeps running), nothing is written twice, and the connection's busy timeout is left as it was."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tollway.adapters.sql import writer
from tollway.adapters.sql.engine import create_sql_engine
from tollway.adapters.sql.ingest import INLINE_MAX
from tollway.adapters.sql.migrate import upgrade
from tollway.adapters.sql.store import SqlEventStore
from tollway.clock import FrozenClock
from tollway.errors import UnavailableError
from tollway.metering.events import Event

NOW = datetime(2026, 3, 2, tzinfo=UTC)


def event(n: int) -> Event:
    return Event(id=f"e-{n}", source="inline", type="api.tokens", subject="acme", time=NOW, data={"tokens": n})


def stored(path: Path) -> list[str]:
    with sqlite3.connect(path) as connection:
        return [row[0] for row in connection.execute("SELECT id FROM events ORDER BY seq")]


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the functions GroupCommit handed to a thread."""
    handed: list[str] = []
    to_thread = asyncio.to_thread

    async def counting(function: Any, *args: Any) -> Any:
        handed.append(getattr(function, "__name__", repr(function)))
        return await to_thread(function, *args)

    monkeypatch.setattr(asyncio, "to_thread", counting)  # what GroupCommit calls (asyncio.to_thread)
    return handed


async def test_small_groups_are_written_on_the_loop_and_big_ones_in_a_thread(tmp_path: Path, hops: list[str]) -> None:
    path = tmp_path / "inline.db"
    engine = create_sql_engine(f"sqlite:///{path}")
    upgrade(engine)
    store = SqlEventStore(engine, FrozenClock(NOW))
    try:
        assert await store.insert_events([event(0)]) == 1  # opens the writer's connection: in a thread
        assert hops == ["_ingest_batches"]
        assert await store.insert_events([event(1), event(2)]) == 2
        assert await store.insert_events([event(2), event(3)]) == 1  # the duplicate found on the loop too
        assert hops == ["_ingest_batches"]
        big = [event(n) for n in range(10, 11 + INLINE_MAX)]
        assert await store.insert_events(big) == len(big)
        assert hops == ["_ingest_batches", "_ingest_batches"]
        assert stored(path) == [f"e-{n}" for n in (0, 1, 2, 3, *range(10, 11 + INLINE_MAX))]
        assert store.stats.duplicates_total == 1
        connection = store._ingest._connection._held  # the writer's own: its busy timeout back to the engine's
        assert connection is not None
        assert connection.driver_connection.execute("PRAGMA busy_timeout").fetchone()[0] == 30_000
    finally:
        await store.close()
        engine.dispose()


async def test_a_taken_write_lock_sends_the_group_to_a_thread_and_the_loop_runs_on(
    tmp_path: Path, hops: list[str]
) -> None:
    path = tmp_path / "busy.db"
    engine = create_sql_engine(f"sqlite:///{path}")
    upgrade(engine)
    store = SqlEventStore(engine, FrozenClock(NOW))
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        assert await store.insert_events([event(0)]) == 1
        blocker.execute("BEGIN IMMEDIATE")  # another process's writer holds the lock
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        ticker = asyncio.create_task(tick())
        asyncio.get_running_loop().call_later(0.3, blocker.execute, "COMMIT")
        assert await store.insert_events([event(1)]) == 1  # waited in a thread until the lock came free
        ticker.cancel()
        assert ticks >= 10  # the loop ran meanwhile
        assert hops == ["_ingest_batches", "_ingest_batches"]
        assert stored(path) == ["e-0", "e-1"]
        assert await store.insert_events([event(1), event(2)]) == 1
        assert hops == ["_ingest_batches", "_ingest_batches"]  # the lock free again: on the loop
        assert stored(path) == ["e-0", "e-1", "e-2"]
    finally:
        blocker.close()
        await store.close()
        engine.dispose()


async def test_group_commit_falls_back_only_when_busy() -> None:
    written: list[str] = []

    def write(batches: list[Sequence[int]]) -> list[int]:
        written.append("thread")
        return [len(b) for b in batches]

    def busy(batches: list[Sequence[int]]) -> list[int]:
        raise writer.WriterBusy

    def failing(batches: list[Sequence[int]]) -> list[int]:
        raise UnavailableError("event store write failed: disk I/O error")

    assert await writer.GroupCommit(write, inline=busy, inline_max=5).submit([1, 2]) == 2
    assert written == ["thread"]
    with pytest.raises(UnavailableError):  # a real failure is the callers' answer, not retried in a thread
        await writer.GroupCommit(write, inline=failing, inline_max=5).submit([1, 2])
    assert written == ["thread"]

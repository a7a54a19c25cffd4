"""SqlEventStore: the EventStore port on SQLite or PostgreSQL. Blocking calls run in worker threads."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Engine, and_, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from tollway.adapters.sql.schema import events
from tollway.clock import Clock
from tollway.errors import UnavailableError
from tollway.metering.events import Event, from_micros, to_micros


class SqlEventStore:
    def __init__(self, engine: Engine, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock
        dialect = engine.dialect.name
        self._insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(events)

    @property
    def engine(self) -> Engine:
        return self._engine

    async def insert_events(self, batch: Sequence[Event]) -> int:
        if not batch:
            return 0
        ingested = to_micros(self._clock.now())
        rows = [
            {
                "source": e.source,
                "id": e.id,
                "type": e.type,
                "subject": e.subject,
                "time_us": to_micros(e.time),
                "ingested_us": ingested,
                "data": orjson.dumps(e.data).decode(),
            }
            for e in batch
        ]
        return await asyncio.to_thread(self._insert_rows, rows)

    def _insert_rows(self, rows: list[dict[str, Any]]) -> int:
        statement = self._insert.on_conflict_do_nothing(index_elements=["source", "id"]).returning(events.c.seq)
        try:
            with self._engine.begin() as connection:
                return len(connection.execute(statement, rows).all())
        except SQLAlchemyError as exc:
            raise UnavailableError(f"event store write failed: {exc.__class__.__name__}: {exc}") from exc

    async def load_events(
        self,
        event_type: str,
        start: datetime | None,
        end: datetime | None,
        subjects: Sequence[str] | None,
    ) -> list[Event]:
        conditions = [events.c.type == event_type]
        if start is not None:
            conditions.append(events.c.time_us >= to_micros(start))
        if end is not None:
            conditions.append(events.c.time_us < to_micros(end))
        if subjects is not None:
            conditions.append(events.c.subject.in_(list(subjects)))
        query = (
            select(events.c.id, events.c.source, events.c.subject, events.c.time_us, events.c.data)
            .where(and_(*conditions))
            .order_by(events.c.time_us, events.c.seq)
        )
        rows = await asyncio.to_thread(self._fetch, query)
        return [
            Event(
                id=row.id,
                source=row.source,
                type=event_type,
                subject=row.subject,
                time=from_micros(row.time_us),
                data=orjson.loads(row.data),
            )
            for row in rows
        ]

    def _fetch(self, query: Any) -> list[Any]:
        try:
            with self._engine.connect() as connection:
                return list(connection.execute(query))
        except SQLAlchemyError as exc:
            raise UnavailableError(f"event store read failed: {exc.__class__.__name__}") from exc

    async def ping(self) -> None:
        def check() -> None:
            try:
                with self._engine.connect() as connection:
                    connection.execute(text("SELECT 1"))
            except SQLAlchemyError as exc:
                raise UnavailableError(f"database unreachable: {exc.__class__.__name__}") from exc

        await asyncio.to_thread(check)

    async def close(self) -> None:
        await asyncio.to_thread(self._engine.dispose)

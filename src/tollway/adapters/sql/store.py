"""SqlEventStore: the EventStore and MeterStore ports on SQLite or PostgreSQL (blocking calls in threads).

Ingest is one short write transaction per batch (see ingest.py): insert the events (dedup on
(source, id) by the unique key) and record new subjects; concurrent callers share transactions
(group commit, see writer.py). Event writers are serialized (SQLite by its write lock, PostgreSQL by
a transaction-level advisory lock), so sequence numbers commit in order. Rollups
follow incrementally (`roll_up`, driven by the RollupWorker): each meter's watermark says which
events its rollups hold, and a query adds the few events past it, read raw, in one consistent view.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

import orjson
from sqlalchemy import Connection, Engine, and_, delete, func, select, text, union_all
from sqlalchemy.exc import SQLAlchemyError

from tollway.adapters.sql import event_reads, retention, rollups
from tollway.adapters.sql.engine import failure_text
from tollway.adapters.sql.event_rows import Where
from tollway.adapters.sql.fold import FoldCache
from tollway.adapters.sql.ingest import POSTGRES_LOCK, EventWriter, checkpoint_sqlite
from tollway.adapters.sql.rollups import rebuild_rollups
from tollway.adapters.sql.schema import meter_rollup_values, meter_rollups, meters, subjects
from tollway.clock import Clock
from tollway.errors import ConflictError, DomainError, UnavailableError
from tollway.metering.events import Event, from_micros, to_micros
from tollway.metering.llm import LlmCall
from tollway.metering.meters import Aggregation, Meter
from tollway.metering.ports import EventFilter, IngestStats, ListedEvent, RollupSnapshot, Subject
from tollway.metering.rollup import Partial, PartialRow, UniqueRow

log = logging.getLogger("tollway.metering.store")

ROLLUP_LOCK = 0x746F6C72  # serializes rollup writers (worker, meter changes) on PostgreSQL
SUBJECTS_ONE_BY_ONE = 32  # rollup reads for up to this many subjects: one key range per subject
MAX_UNION_PARTS = 256  # SELECTs in one UNION ALL (SQLite allows 500 by default)
T = TypeVar("T")


class SqlEventStore:
    def __init__(self, engine: Engine, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock
        self._postgres = engine.dialect.name == "postgresql"
        self._meter_cache: dict[str, Meter] = {}
        self._folds = FoldCache()  # the fold statements of those meters
        self._stats = IngestStats()
        self._ingest = EventWriter(engine, clock, self._stats)

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def stats(self) -> IngestStats:
        return self._stats

    # -- writes ---------------------------------------------------------------------------

    def _write(self, work: Callable[[Connection], T]) -> T:
        """Run `work` in a write transaction (rollups, meters), serialized with the other rollup writers."""
        try:
            with self._engine.connect() as connection:
                self._begin_write(connection)
                result = work(connection)
                connection.commit()
                return result
        except DomainError:
            raise
        except SQLAlchemyError as exc:
            raise UnavailableError(f"event store write failed: {failure_text(exc)}") from exc

    def _begin_write(self, connection: Connection) -> None:
        if self._postgres:
            connection.exec_driver_sql(POSTGRES_LOCK, (ROLLUP_LOCK,))  # the event writers' lock, another key
        else:
            # Take SQLite's write lock up front (waiting out busy_timeout): a deferred transaction that
            # reads first and writes later can fail with SQLITE_BUSY_SNAPSHOT under contention.
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    async def insert_events(self, batch: Sequence[Event]) -> int:
        return await self._ingest.insert(batch)

    async def insert_usage(self, items: Sequence[Event | LlmCall]) -> int:
        return await self._ingest.insert_usage(items)

    def _meter_of(self, record: str) -> Meter:
        meter = self._meter_cache.get(record)
        if meter is None:
            meter = self._meter_cache[record] = Meter.from_record(orjson.loads(record))
        return meter

    async def roll_up(self, limit: int = 50_000) -> int:
        """Fold up to `limit` sequence numbers of stored events into the rollups of the meters behind
        them. Returns how many sequence numbers the step covered (0: caught up).

        On SQLite the step's heavy part runs before the write transaction (SQLite has one writer:
        ingest goes on meanwhile); a meter another process folded in between is left alone."""

        def postgres_step(connection: Connection) -> int:
            planned = rollups.plan_step(connection, self._meter_of, limit, self._folds)
            if planned is None:
                return 0
            self._stats.skipped_values_total += rollups.finish_step(connection, planned)
            return planned.high - planned.low

        def sqlite_step() -> int:
            try:
                with self._engine.connect() as connection:  # one connection: the staged rows are its own
                    planned = rollups.plan_step(connection, self._meter_of, limit, self._folds)
                    if planned is None:
                        return 0
                    rollups.stage_step(connection, planned)
                    connection.commit()  # ends the read without the write lock; temporary rows stay
                    self._begin_write(connection)
                    skipped = rollups.finish_step(connection, planned)
                    connection.commit()
                    checkpoint_sqlite(connection.connection.driver_connection)
            except SQLAlchemyError as exc:
                raise UnavailableError(f"event store write failed: {failure_text(exc)}") from exc
            self._stats.skipped_values_total += skipped
            return planned.high - planned.low

        if self._postgres:
            return await asyncio.to_thread(self._write, postgres_step)
        return await asyncio.to_thread(sqlite_step)

    async def expire_events(self, before: datetime, limit: int = 5_000) -> int:
        """Delete up to `limit` raw events older than `before` that every meter has rolled up (retention.py)."""
        before_us = to_micros(before)

        def step(connection: Connection) -> int:
            deleted = retention.expire_chunk(connection, before_us, limit)
            if deleted and not self._postgres:
                connection.commit()
                retention.reclaim_sqlite(connection)
            return deleted

        return await asyncio.to_thread(self._write, step)

    # -- meters -----------------------------------------------------------------------------

    async def list_meters(self) -> list[Meter]:
        rows = await asyncio.to_thread(
            self._fetch, select(meters.c.record, meters.c.created_us, meters.c.updated_us).order_by(meters.c.slug)
        )
        return [
            Meter.from_record(
                orjson.loads(r.record), created_at=from_micros(r.created_us), updated_at=from_micros(r.updated_us)
            )
            for r in rows
        ]

    async def create_meter(self, meter: Meter) -> None:
        def work(connection: Connection) -> None:
            exists = connection.execute(select(meters.c.slug).where(meters.c.slug == meter.slug)).first()
            if exists is not None:
                raise ConflictError(f"meter {meter.slug!r} already exists", field="slug")
            self._put_meter(connection, meter, created=True)
            rebuild_rollups(connection, meter)

        await asyncio.to_thread(self._write, work)

    def _put_meter(self, connection: Connection, meter: Meter, *, created: bool) -> None:
        now = to_micros(self._clock.now())
        record = orjson.dumps(meter.to_record()).decode()
        if created:
            connection.execute(
                meters.insert().values(
                    slug=meter.slug, record=record, managed_by=meter.managed_by, created_us=now, updated_us=now
                )
            )
        else:
            connection.execute(
                meters.update()
                .where(meters.c.slug == meter.slug)
                .values(record=record, managed_by=meter.managed_by, updated_us=now)
            )

    async def delete_meter(self, slug: str) -> bool:
        def work(connection: Connection) -> bool:
            deleted = connection.execute(delete(meters).where(meters.c.slug == slug)).rowcount
            connection.execute(delete(meter_rollups).where(meter_rollups.c.meter == slug))
            connection.execute(delete(meter_rollup_values).where(meter_rollup_values.c.meter == slug))
            return bool(deleted)

        return await asyncio.to_thread(self._write, work)

    async def sync_meters(self, wanted: Sequence[Meter]) -> None:
        def work(connection: Connection) -> None:
            stored = {
                row.slug: (Meter.from_record(orjson.loads(row.record)), row.managed_by)
                for row in connection.execute(select(meters.c.slug, meters.c.record, meters.c.managed_by))
            }
            for meter in wanted:
                current = stored.get(meter.slug)
                if current is None:
                    self._put_meter(connection, meter, created=True)
                    rebuild_rollups(connection, meter)
                    continue
                if current[0].to_record() != meter.to_record():
                    self._put_meter(connection, meter, created=False)
                if current[0].definition_key() != meter.definition_key():
                    log.warning("meter %s changed definition: rebuilding its rollups", meter.slug)
                    rebuild_rollups(connection, meter)
            names = {m.slug for m in wanted}
            for slug, (_, managed_by) in stored.items():
                if managed_by in ("builtin", "config") and slug not in names:
                    connection.execute(delete(meters).where(meters.c.slug == slug))
                    connection.execute(delete(meter_rollups).where(meter_rollups.c.meter == slug))
                    connection.execute(delete(meter_rollup_values).where(meter_rollup_values.c.meter == slug))

        await asyncio.to_thread(self._write, work)

    # -- reads ------------------------------------------------------------------------------

    async def event_span(self, event_type: str) -> tuple[int, int] | None:
        return await asyncio.to_thread(self._read, lambda connection: event_reads.event_span(connection, event_type))

    async def load_rollups(
        self,
        slug: str,
        level_us: int,
        start_us: int | None,
        end_us: int | None,
        subjects: Sequence[str] | None,
        *,
        aggregation: Aggregation,
    ) -> RollupSnapshot:
        return await self.load_rollup_segments(slug, [(level_us, start_us, end_us)], subjects, aggregation=aggregation)

    async def load_rollup_segments(
        self,
        slug: str,
        segments: Sequence[tuple[int, int | None, int | None]],
        subjects: Sequence[str] | None,
        *,
        aggregation: Aggregation,
    ) -> RollupSnapshot:
        def read() -> RollupSnapshot:
            with self._engine.connect() as connection:
                for _ in range(20):
                    before = self._watermark(connection, slug)
                    snapshot = self._read_rollups(connection, slug, segments, subjects, aggregation)
                    if self._watermark(connection, slug) == before:
                        return RollupSnapshot(snapshot[0], snapshot[1], before)
                    connection.rollback()
            raise UnavailableError("rollups kept changing during the query; try again")

        try:
            return await asyncio.to_thread(read)
        except SQLAlchemyError as exc:
            raise UnavailableError(f"event store read failed: {exc.__class__.__name__}") from exc

    def _watermark(self, connection: Connection, slug: str) -> int:
        connection.rollback()  # a fresh snapshot for each read (PostgreSQL READ COMMITTED per statement)
        value = connection.execute(select(meters.c.rolled_seq).where(meters.c.slug == slug)).scalar()
        return int(value or 0)

    def _read_rollups(
        self,
        connection: Connection,
        slug: str,
        segments: Sequence[tuple[int, int | None, int | None]],
        subject_keys: Sequence[str] | None,
        aggregation: Aggregation,
    ) -> tuple[list[PartialRow], list[UniqueRow]]:
        # Only the columns the aggregation needs, as plain tuples: a month of hour buckets is thousands
        # of rows, and building full rows and Decimals for all of them cost more than the database read.
        t = meter_rollups.c
        extremes = aggregation in (Aggregation.MIN, Aggregation.MAX)
        latest = aggregation is Aggregation.LATEST
        columns = [t.bucket_us, t.subject, t.dims, t.count, t.total, t.first_us]
        columns += [t.minimum, t.maximum] if extremes else []
        columns += [t.latest, t.latest_us, t.latest_seq] if latest else []
        partials = []
        query = self._segments_query(meter_rollups, columns, slug, segments, subject_keys)
        for row in connection.execute(query):
            partial = Partial(count=int(row[3]), total=Decimal(row[4]), first_us=row[5])
            if extremes:
                partial.minimum = None if row[6] is None else Decimal(row[6])
                partial.maximum = None if row[7] is None else Decimal(row[7])
            if latest:
                partial.latest = None if row[6] is None else Decimal(row[6])
                partial.latest_us, partial.latest_seq = row[7], row[8]
            partials.append(PartialRow(row[0], row[1], row[2], partial))
        found: list[UniqueRow] = []
        if aggregation is Aggregation.UNIQUE_COUNT:
            u = meter_rollup_values.c
            unique_query = self._segments_query(
                meter_rollup_values, [u.bucket_us, u.subject, u.dims, u.digest], slug, segments, subject_keys
            )
            found = [UniqueRow(r[0], r[1], r[2], r[3]) for r in connection.execute(unique_query)]
        return partials, found

    def _segments_query(
        self,
        table: Any,
        columns: list[Any],
        slug: str,
        segments: Sequence[tuple[int, int | None, int | None]],
        subject_keys: Sequence[str] | None,
    ) -> Any:
        """One SELECT per segment and subject, joined by UNION ALL: each is one range of the key (meter,
        level_us, subject, bucket_us). PostgreSQL without statistics would take `subject IN (...)` on the
        key as a filter over every subject's buckets; an equality per subject is one index range."""
        parts = []
        wanted = len(set(subject_keys)) if subject_keys is not None else 0
        one_by_one = 0 < wanted <= SUBJECTS_ONE_BY_ONE and wanted * len(segments) <= MAX_UNION_PARTS
        for level_us, start_us, end_us in segments:
            conditions = self._range(table, slug, level_us, start_us, end_us)
            if subject_keys is not None and one_by_one:
                for subject in dict.fromkeys(subject_keys):
                    parts.append(select(*columns).where(and_(*conditions, table.c.subject == subject)))
                continue
            if subject_keys is not None:
                conditions.append(table.c.subject.in_(list(subject_keys)))
            parts.append(select(*columns).where(and_(*conditions)))
        return parts[0] if len(parts) == 1 else union_all(*parts)

    def _range(self, table: Any, slug: str, level_us: int, start_us: int | None, end_us: int | None) -> list[Any]:
        conditions = [table.c.meter == slug, table.c.level_us == level_us]
        if start_us is not None:
            conditions.append(table.c.bucket_us >= start_us)
        if end_us is not None:
            conditions.append(table.c.bucket_us < end_us)
        return conditions

    async def load_events_after(
        self,
        event_type: str,
        after_seq: int,
        start: datetime | None,
        end: datetime | None,
        subject_keys: Sequence[str] | None,
    ) -> list[tuple[Event, int]]:
        start_us = to_micros(start) if start is not None else None
        end_us = to_micros(end) if end is not None else None
        return await asyncio.to_thread(
            self._read,
            lambda c: event_reads.load_events_after(c, event_type, after_seq, start_us, end_us, subject_keys),
        )

    async def list_subjects(self, offset: int = 0, limit: int | None = None) -> list[Subject]:
        query = select(subjects).order_by(subjects.c.key).offset(offset).limit(limit)
        rows = await asyncio.to_thread(self._fetch, query)
        return [Subject(key=r.key, first_seen=from_micros(r.first_seen_us)) for r in rows]

    async def count_subjects(self) -> int:
        rows = await asyncio.to_thread(self._fetch, select(func.count()).select_from(subjects))
        return int(rows[0][0])

    async def get_subject(self, key: str) -> Subject | None:
        rows = await asyncio.to_thread(self._fetch, select(subjects).where(subjects.c.key == key))
        return Subject(key=rows[0].key, first_seen=from_micros(rows[0].first_seen_us)) if rows else None

    async def list_events(self, where: EventFilter) -> list[ListedEvent]:
        return await asyncio.to_thread(self._read, lambda connection: event_reads.list_events(connection, where))

    async def load_events(
        self,
        event_type: str,
        start: datetime | None,
        end: datetime | None,
        subjects: Sequence[str] | None,
    ) -> list[Event]:
        where = Where(
            event_type=event_type,
            start_us=None if start is None else to_micros(start),
            end_us=None if end is None else to_micros(end),
            subjects=subjects,
        )
        return await asyncio.to_thread(self._read, lambda connection: event_reads.load_events(connection, where))

    async def latest_events(self, event_type: str, limit: int, subjects: Sequence[str] | None = None) -> list[Event]:
        # Each encoding read backwards on its time index (`limit` rows, whatever is stored), then merged.
        where = Where(event_type=event_type, subjects=subjects)
        return await asyncio.to_thread(
            self._read, lambda connection: event_reads.load_events(connection, where, newest=limit)
        )

    def _read(self, work: Callable[[Connection], T]) -> T:
        try:
            with self._engine.connect() as connection:
                return work(connection)
        except SQLAlchemyError as exc:
            raise UnavailableError(f"event store read failed: {exc.__class__.__name__}") from exc

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
        await asyncio.to_thread(self._ingest.close)
        await asyncio.to_thread(self._engine.dispose)

"""Rollup maintenance: fold new events into stored buckets in steps; rebuild a meter from its events.

Each meter keeps a watermark (`meters.rolled_seq`): events up to it are in its rollups, later ones
are read raw by queries. A step is planned (`plan_step`), on SQLite staged outside the write lock
(`stage_step`), then finished inside the rollup write transaction (`finish_step`), which holds the
rollup lock, so read-merge-write is safe. The SQL of the database's fold is in fold.py; what it
leaves over goes through the pure Python fold here. Sums stay exact: partials are stored as
decimal text and merged in `numeric`, in plain 64-bit integers, or in Python's Decimal.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import Connection, delete

from tollway.adapters.sql import bulk
from tollway.adapters.sql.event_rows import Where, max_seq_sql, source_sql
from tollway.adapters.sql.fold import (
    FOLD_COLUMNS,
    SQLITE_STAGE_TABLE,
    FoldCache,
    range_params,
    sql_foldable,
)
from tollway.adapters.sql.schema import meter_rollup_values, meter_rollups, meters
from tollway.metering.events import Event, from_micros
from tollway.metering.meters import Meter
from tollway.metering.rollup import Contribution, Partial, contribute, merge_into

REBUILD_CHUNK = 50_000  # sequence numbers folded per step of a rebuild


def apply_contribution(connection: Connection, slug: str, contribution: Contribution) -> None:
    partials = contribution.partials
    if partials and connection.dialect.name == "postgresql":
        bulk.merge_rollups_postgres(connection, [(slug, *key, *_values(p)) for key, p in partials.items()])
    elif partials:
        merged = dict(partials)
        for row in bulk.load_rollups_by_key(connection, slug, list(partials)):
            key = (int(row[0]), int(row[1]), row[2], row[3])
            stored = _partial(row[4:])
            stored.merge(partials[key])
            merged[key] = stored
        bulk.upsert_rollups(connection, [(slug, *key, *_values(p)) for key, p in merged.items()])
    if contribution.uniques:
        bulk.insert_values(connection, [(slug, *u) for u in contribution.uniques])


def _partial(values: Sequence[Any]) -> Partial:
    count, total, minimum, maximum, latest, latest_us, latest_seq, first_us = values
    return Partial(
        count=int(count),
        total=Decimal(total),
        minimum=None if minimum is None else Decimal(minimum),
        maximum=None if maximum is None else Decimal(maximum),
        latest=None if latest is None else Decimal(latest),
        latest_us=latest_us,
        latest_seq=latest_seq,
        first_us=first_us,
    )


def _values(p: Partial) -> tuple[Any, ...]:
    return (
        p.count,
        str(p.total),
        None if p.minimum is None else str(p.minimum),
        None if p.maximum is None else str(p.maximum),
        None if p.latest is None else str(p.latest),
        p.latest_us,
        p.latest_seq,
        p.first_us,
    )


def _events_between(connection: Connection, low: int, high: int, event_type: str) -> list[tuple[Event, int]]:
    """The type's events with low < seq <= high, read by sequence and narrowed to the type here (a
    condition on the type would let the database pick the type's index and walk all its events)."""
    params: dict[str, Any] = {}
    where = Where(event_type=event_type, seq_after=low, seq_upto=high, by_seq=True, columns=FOLD_COLUMNS)
    source = source_sql(connection.dialect.name == "postgresql", where, params)
    rows = list(connection.exec_driver_sql(f"SELECT * FROM ({source}) ev ORDER BY seq", params))
    return _as_events(rows, event_type)


def max_seq(connection: Connection) -> int | None:
    """The highest sequence number stored (a call reserves its five), None when there is none."""
    top = connection.exec_driver_sql(max_seq_sql()).scalar()
    return None if top is None else int(top)


def _as_events(rows: Iterable[Any], event_type: str) -> list[tuple[Event, int]]:
    return [
        (
            Event(
                id=r[1],
                source=r[2],
                type=event_type,
                subject=r[3],
                time=from_micros(r[4]),
                data=orjson.loads(r[5]),
            ),
            int(r[0]),
        )
        for r in rows
    ]


def fold(connection: Connection, meter: Meter, low: int, high: int) -> int:
    """Add the meter's events with low < seq <= high to its rollups. Returns the values skipped.

    The database folds the events it reads exactly like the reference, straight into the stored
    rollups (fold.py; SQLite hands back the few partials it cannot merge exactly in integers). The
    other events, and meters the database cannot fold, go through the pure Python fold."""
    folds = FoldCache()
    return _finish(connection, meter, low, high, _in_sql(connection, meter, low, high, folds), folds)


def _in_sql(connection: Connection, meter: Meter, low: int, high: int, folds: FoldCache) -> bool:
    """Whether the database folds this meter's step: PostgreSQL when it can spell the meter; SQLite
    once the stage (done here, before any write lock) has succeeded."""
    if connection.dialect.name == "sqlite":
        return stage_sqlite(connection, meter, low, high, folds)
    return sql_foldable(meter)


def stage_sqlite(connection: Connection, meter: Meter, low: int, high: int, folds: FoldCache) -> bool:
    """SQLite's heavy step, into the connection's temporary table: it needs no write lock, so it may run
    before the write transaction (ingest goes on meanwhile). False: fold this meter in Python."""
    if not sql_foldable(meter):
        return False
    cursor = connection.connection.cursor()
    cursor.execute(SQLITE_STAGE_TABLE)
    cursor.execute("DELETE FROM temp.fold_rows WHERE meter = ?", (meter.slug,))
    statement = folds.sqlite(meter)
    try:
        cursor.execute(statement.stage, {**statement.params, **_range(meter, low, high)})
    except sqlite3.OperationalError as exc:  # sum() of integers overflowed: fold in Python
        if "overflow" not in str(exc):
            raise
        cursor.execute("DELETE FROM temp.fold_rows WHERE meter = ?", (meter.slug,))
        return False
    return True


def _range(meter: Meter, low: int, high: int) -> dict[str, Any]:
    return {
        "low": low,
        "high": high,
        "type": meter.event_type,
        "slug": meter.slug,
        **range_params(low, high, meter.event_type),
    }


def _finish(connection: Connection, meter: Meter, low: int, high: int, in_sql: bool, folds: FoldCache) -> int:
    """The write step of a fold (inside the rollup write transaction). Returns the values skipped.
    `in_sql`: the database folds it (on SQLite: its stage is in the temporary table); else Python."""
    if not in_sql:
        contribution = contribute(meter, _events_between(connection, low, high, meter.event_type))
        apply_contribution(connection, meter.slug, contribution)
        return contribution.skipped
    cursor = connection.connection.cursor()
    params = _range(meter, low, high)
    rest = Contribution({}, set())
    if connection.dialect.name == "postgresql":
        statement = folds.postgres(meter)
        params.update(statement.params)
        counts = cursor.execute(statement.grouped, params).fetchone()
        others, rest.skipped = int(counts[0]), int(counts[2])
        others_query = statement.others
    else:
        sqlite = folds.sqlite(meter)
        params.update(sqlite.params)
        cursor.execute(sqlite.merge, params)
        leftovers = cursor.execute(sqlite.leftovers, params).fetchall()
        if not any(row[0] < 0 for row in leftovers):  # the stage always writes its count row
            raise RuntimeError(f"rollups of {meter.slug!r}: staged rows missing (another connection staged them?)")
        others = _leftovers(leftovers, rest)  # also counts the values skipped in SQL into rest
        cursor.execute("DELETE FROM temp.fold_rows WHERE meter = ?", (meter.slug,))
        others_query = sqlite.others
    if others:
        extra = contribute(meter, _as_events(cursor.execute(others_query, params).fetchall(), meter.event_type))
        merge_into(rest.partials, extra.partials)
        rest.skipped += extra.skipped
    apply_contribution(connection, meter.slug, rest)
    return rest.skipped


def _leftovers(rows: Iterable[Sequence[Any]], rest: Contribution) -> int:
    """SQLite's staged rows it could not merge itself, as partials into `rest`, and the values it skipped
    (a call whose value's key is absent), into `rest.skipped`; returns how many events it left to the Python fold."""
    others = 0
    for plain, level_us, bucket, subject, dims, count, total, *values in rows:
        if plain == -2:
            rest.skipped += int(count)
        elif plain < 0:
            others += int(count)
        else:
            key = (int(level_us), int(bucket), subject, dims)
            rest.partials[key] = _partial((count, 0 if total is None else total, *values))
    return others


@dataclass
class RollupStep:
    """One step of the rollup worker: the sequence range and the meters behind its end."""

    low: int
    high: int
    meters: list[tuple[Meter, int, bool]] = field(default_factory=list)  # (meter, watermark, folded in SQL)
    folds: FoldCache = field(default_factory=FoldCache)  # the store's, so statements outlive the step


def plan_step(
    connection: Connection, meter_of: Callable[[str], Meter], limit: int, folds: FoldCache | None = None
) -> RollupStep | None:
    """The events past each meter's watermark, up to `limit` sequence numbers past the lowest one.

    Event inserts commit in sequence order (writers are serialized), so every sequence number up to
    the highest stored one is either committed or never will be: what a step folds past a
    watermark is a gap-free prefix."""
    stored = connection.exec_driver_sql("SELECT slug, record, rolled_seq FROM meters").all()
    if not stored:
        return None
    top = max_seq(connection)
    low = min(int(r.rolled_seq) for r in stored)
    if top is None or top <= low:
        return None
    step = RollupStep(low, min(int(top), low + limit), folds=folds or FoldCache())
    postgres = connection.dialect.name == "postgresql"
    for row in stored:
        if int(row.rolled_seq) < step.high:
            meter = meter_of(row.record)  # SQLite's flag is set by stage_step
            step.meters.append((meter, int(row.rolled_seq), postgres and sql_foldable(meter)))
    return step


def stage_step(connection: Connection, step: RollupStep) -> None:
    """SQLite: stage every meter of the step before the write transaction."""
    step.meters = [(m, mark, stage_sqlite(connection, m, mark, step.high, step.folds)) for m, mark, _ in step.meters]


def finish_step(connection: Connection, step: RollupStep) -> int:
    """Fold the step in the rollup write transaction; returns the values skipped. A meter whose
    watermark moved since the step was planned (another process folded it) is left alone."""
    skipped = 0
    mark = "%s" if connection.dialect.name == "postgresql" else "?"
    cursor = connection.connection.cursor()  # the driver's: two short statements a meter, every step
    for meter, watermark, in_sql in step.meters:
        found = cursor.execute(f"SELECT rolled_seq FROM meters WHERE slug = {mark}", (meter.slug,)).fetchone()
        if found is None or int(found[0]) != watermark:
            continue
        skipped += _finish(connection, meter, watermark, step.high, in_sql, step.folds)
        cursor.execute(f"UPDATE meters SET rolled_seq = {mark} WHERE slug = {mark}", (step.high, meter.slug))
    return skipped


def rebuild_rollups(connection: Connection, meter: Meter) -> None:
    """Drop a meter's rollups and fold every stored event of its type back in, in ingestion order."""
    connection.execute(delete(meter_rollups).where(meter_rollups.c.meter == meter.slug))
    connection.execute(delete(meter_rollup_values).where(meter_rollup_values.c.meter == meter.slug))
    top = max_seq(connection)
    high = 0 if top is None else int(top)
    low = -1
    while low < high:
        step = min(high, low + REBUILD_CHUNK)
        fold(connection, meter, low, step)
        low = step
    connection.execute(meters.update().where(meters.c.slug == meter.slug).values(rolled_seq=high))

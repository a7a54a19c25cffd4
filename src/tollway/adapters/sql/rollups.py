"""Rollup maintenance in SQL: fold new events into stored buckets; rebuild a meter from its events.

Callers hold the rollup write lock (see store.py), so read-merge-write is safe. Each meter keeps a
watermark (`meters.rolled_seq`): events up to it are in its rollups, later ones are read raw. Sums stay exact:
partials are stored as decimal text and merged in Python with Decimal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from sqlalchemy import Connection, delete, func, select, tuple_

from tollway.adapters.sql.schema import events, meter_rollup_values, meter_rollups, meters
from tollway.metering.events import Event, from_micros
from tollway.metering.meters import Meter
from tollway.metering.rollup import Contribution, Partial, RollupKey, contribute, partial_from_row, partial_to_row

CHUNK = 1000
REBUILD_CHUNK = 20_000
ROLLUP_KEY = ["meter", "level_us", "bucket_us", "subject", "dims"]


def apply_contribution(
    connection: Connection, dialect_insert: Callable[..., Any], slug: str, contribution: Contribution
) -> None:
    partials = contribution.partials
    if partials:
        merged = _merge_with_stored(connection, slug, partials)
        statement = dialect_insert(meter_rollups)
        statement = statement.on_conflict_do_update(
            index_elements=ROLLUP_KEY,
            set_={name: statement.excluded[name] for name in partial_to_row(Partial())},
        )
        rows = [
            {"meter": slug, "level_us": k[0], "bucket_us": k[1], "subject": k[2], "dims": k[3], **partial_to_row(p)}
            for k, p in merged.items()
        ]
        for offset in range(0, len(rows), 5_000):
            connection.execute(statement, rows[offset : offset + 5_000])
    if contribution.uniques:
        unique_statement = dialect_insert(meter_rollup_values).on_conflict_do_nothing()
        values = [
            {"meter": slug, "level_us": u[0], "bucket_us": u[1], "subject": u[2], "dims": u[3], "digest": u[4]}
            for u in contribution.uniques
        ]
        for offset in range(0, len(values), 5_000):
            connection.execute(unique_statement, values[offset : offset + 5_000])


def _merge_with_stored(
    connection: Connection, slug: str, partials: dict[RollupKey, Partial]
) -> dict[RollupKey, Partial]:
    """The stored buckets these partials land in (looked up by their full key), merged with them."""
    merged: dict[RollupKey, Partial] = {}
    keys = list(partials)
    key_columns = tuple_(
        meter_rollups.c.level_us, meter_rollups.c.bucket_us, meter_rollups.c.subject, meter_rollups.c.dims
    )
    for offset in range(0, len(keys), CHUNK):
        query = select(meter_rollups).where(
            meter_rollups.c.meter == slug, key_columns.in_(keys[offset : offset + CHUNK])
        )
        for row in connection.execute(query):
            merged[(row.level_us, row.bucket_us, row.subject, row.dims)] = partial_from_row(row)
    for key, partial in partials.items():
        stored = merged.get(key)
        if stored is None:
            merged[key] = partial
        else:
            stored.merge(partial)
    return merged


def _events_after(
    connection: Connection, after: int, limit: int, event_type: str | None = None
) -> list[tuple[Event, int]]:
    query = select(
        events.c.seq, events.c.id, events.c.source, events.c.type, events.c.subject, events.c.time_us, events.c.data
    ).where(events.c.seq > after)
    if event_type is not None:
        query = query.where(events.c.type == event_type)
    rows = connection.execute(query.order_by(events.c.seq).limit(limit))
    return [
        (
            Event(
                id=r.id,
                source=r.source,
                type=r.type,
                subject=r.subject,
                time=from_micros(r.time_us),
                data=orjson.loads(r.data),
            ),
            int(r.seq),
        )
        for r in rows
    ]


def roll_up(
    connection: Connection, dialect_insert: Callable[..., Any], meter_of: Callable[[str], Meter], limit: int
) -> tuple[int, int]:
    """Fold up to `limit` events past the lowest meter watermark into every meter behind them.

    Returns (events read, values skipped). Event inserts commit in sequence order (writers are
    serialized), so what this reads past a watermark is a gap-free prefix."""
    stored = list(connection.execute(select(meters.c.slug, meters.c.record, meters.c.rolled_seq)))
    if not stored:
        return 0, 0
    batch = _events_after(connection, min(int(r.rolled_seq) for r in stored), limit)
    if not batch:
        return 0, 0
    high = batch[-1][1]
    skipped = 0
    for row in stored:
        watermark = int(row.rolled_seq)
        if watermark >= high:
            continue
        meter = meter_of(row.record)
        mine = [(e, seq) for e, seq in batch if seq > watermark and e.type == meter.event_type]
        if mine:
            contribution = contribute(meter, mine)
            skipped += contribution.skipped
            apply_contribution(connection, dialect_insert, meter.slug, contribution)
        connection.execute(meters.update().where(meters.c.slug == meter.slug).values(rolled_seq=high))
    return len(batch), skipped


def rebuild_rollups(connection: Connection, dialect_insert: Callable[..., Any], meter: Meter) -> None:
    """Drop a meter's rollups and fold every stored event of its type back in, in ingestion order."""
    connection.execute(delete(meter_rollups).where(meter_rollups.c.meter == meter.slug))
    connection.execute(delete(meter_rollup_values).where(meter_rollup_values.c.meter == meter.slug))
    high = connection.execute(select(func.max(events.c.seq))).scalar()
    if high is None:
        connection.execute(meters.update().where(meters.c.slug == meter.slug).values(rolled_seq=0))
        return
    after = -1
    while after < high:
        batch = [p for p in _events_after(connection, after, REBUILD_CHUNK, meter.event_type) if p[1] <= high]
        if not batch:
            break
        apply_contribution(connection, dialect_insert, meter.slug, contribute(meter, batch))
        after = batch[-1][1]
    connection.execute(meters.update().where(meters.c.slug == meter.slug).values(rolled_seq=int(high)))

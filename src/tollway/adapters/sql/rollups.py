"""Rollup maintenance in SQL: fold a contribution into stored buckets; rebuild a meter from its events.

Callers hold the metering write lock (see store.py), so read-merge-write is safe. Sums stay exact:
partials are stored as decimal text and merged in Python with Decimal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from sqlalchemy import Connection, delete, select, tuple_

from tollway.adapters.sql.schema import events, meter_rollup_values, meter_rollups
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


def rebuild_rollups(connection: Connection, dialect_insert: Callable[..., Any], meter: Meter) -> None:
    """Drop a meter's rollups and fold every stored event of its type back in, in ingestion order."""
    connection.execute(delete(meter_rollups).where(meter_rollups.c.meter == meter.slug))
    connection.execute(delete(meter_rollup_values).where(meter_rollup_values.c.meter == meter.slug))
    after = -1
    while True:
        query = (
            select(events.c.seq, events.c.id, events.c.source, events.c.subject, events.c.time_us, events.c.data)
            .where(events.c.type == meter.event_type, events.c.seq > after)
            .order_by(events.c.seq)
            .limit(REBUILD_CHUNK)
        )
        rows = list(connection.execute(query))
        if not rows:
            return
        batch = [
            (
                Event(
                    id=r.id,
                    source=r.source,
                    type=meter.event_type,
                    subject=r.subject,
                    time=from_micros(r.time_us),
                    data=orjson.loads(r.data),
                ),
                int(r.seq),
            )
            for r in rows
        ]
        apply_contribution(connection, dialect_insert, meter.slug, contribute(meter, batch))
        after = int(rows[-1].seq)

"""Rollup maintenance in SQL: fold new events into stored buckets; rebuild a meter from its events.

Callers hold the rollup write lock (see store.py), so read-merge-write is safe. Each meter keeps a
watermark (`meters.rolled_seq`): events up to it are in its rollups, later ones are read raw. Sums stay exact:
partials are stored as decimal text and merged in Python with Decimal.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import Connection, delete, func, select

from tollway.adapters.sql import bulk
from tollway.adapters.sql.schema import events, meter_rollup_values, meter_rollups, meters
from tollway.metering.events import Event, from_micros
from tollway.metering.meters import Meter
from tollway.metering.rollup import Contribution, Partial, contribute

REBUILD_CHUNK = 20_000


def apply_contribution(
    connection: Connection, dialect_insert: Callable[..., Any], slug: str, contribution: Contribution
) -> None:
    partials = contribution.partials
    if partials:
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

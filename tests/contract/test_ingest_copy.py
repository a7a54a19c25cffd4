"""PostgreSQL stores a batch of at least POSTGRES_COPY_MIN new events by COPY, a smaller one by the unnest insert:
both store the same rows (the same columns, sequence numbers in order, duplicates skipped, conflicts counted)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from tollway.adapters.sql.engine import create_sql_engine
from tollway.adapters.sql.ingest import key_hash
from tollway.adapters.sql.ingest_sql import POSTGRES_COPY_MIN
from tollway.adapters.sql.migrate import upgrade
from tollway.adapters.sql.store import SqlEventStore
from tollway.clock import FrozenClock
from tollway.metering.events import Event, to_micros

NOW = datetime(2026, 3, 2, tzinfo=UTC)


def event(n: int, tokens: int | None = None) -> Event:
    return Event(
        id=f"e-{n}",
        source="copy/ü",
        type="api.tokens",
        subject=f"acme-{n % 7}",
        time=NOW - timedelta(seconds=n),
        data={"tokens": n if tokens is None else tokens, "note": 'quote " and \\ and é', "n": [n, None, 1.5]},
    )


async def test_copied_and_inserted_batches_store_the_same_rows(postgres_url: str) -> None:
    engine = create_sql_engine(postgres_url)
    upgrade(engine)
    store = SqlEventStore(engine, FrozenClock(NOW))
    small, big = POSTGRES_COPY_MIN // 2, POSTGRES_COPY_MIN * 2
    try:
        assert await store.insert_events([event(n) for n in range(small)]) == small  # the unnest insert
        batch = [event(n) for n in range(small, small + big)] + [event(0), event(1, tokens=99)]
        assert await store.insert_events(batch) == big  # COPY; two repeats of stored events
        assert store.stats.duplicates_total == 1
        assert store.stats.conflicts_total == 1
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT seq, source, id, type, subject, time_us, data, key_hash FROM events ORDER BY seq")
            ).all()
        assert [row[0] for row in rows] == list(range(rows[0][0], rows[0][0] + small + big))
        for row, n in zip(rows, range(small + big), strict=True):
            sent = event(n)
            assert tuple(row[1:6]) == (sent.source, sent.id, sent.type, sent.subject, to_micros(sent.time))
            assert row[6] == rows[0][6].replace('"tokens":0,', f'"tokens":{n},').replace("[0,", f"[{n},")
            assert row[7] == key_hash(sent.source, sent.id)
    finally:
        await store.close()
        engine.dispose()

"""Rollup migrations on SQLite and PostgreSQL. 0006: rollup rows survive, the keys lead with (meter, level_us,
subject), the old subject index is gone, and a downgrade restores the old key. 0008: mislabelled rollups are
folded again."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect, text

from tollway.adapters.sql.engine import create_sql_engine
from tollway.adapters.sql.migrate import alembic_config, upgrade
from tollway.adapters.sql.schema import llm_call_shapes, llm_calls, metadata
from tollway.adapters.sql.store import SqlEventStore
from tollway.clock import FrozenClock
from tollway.metering.aggregation import MeterQuery
from tollway.metering.events import to_micros
from tollway.metering.meters import Aggregation, Meter
from tollway.metering.service import MeteringService

ROW = "INSERT INTO meter_rollups (meter, level_us, bucket_us, subject, dims, count, total) VALUES "
EVENT_DATA = '{"model": "gpt-4o", "type": "input", "tokens": 800}'
VALUE = "INSERT INTO meter_rollup_values (meter, level_us, bucket_us, subject, dims, digest) VALUES "


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Engine:
    if request.param == "sqlite":
        return create_sql_engine(f"sqlite:///{tmp_path / 'key.db'}")
    return create_sql_engine(request.getfixturevalue("postgres_url"))


def key_of(engine: Engine, table: str) -> list[str]:
    return list(inspect(engine).get_pk_constraint(table)["constrained_columns"])


def test_rekey_keeps_rows_and_orders_subject_before_bucket(engine: Engine) -> None:
    from alembic import command

    try:
        upgrade(engine, "0005_invoices")
        with engine.begin() as connection:
            connection.execute(text(ROW + "('m', 60000000, 120000000, 'acme', '[]', 3, '7.5')"))
            connection.execute(text(ROW + "('m', 60000000, 60000000, 'globex', '[\"a\"]', 1, '2')"))
            connection.execute(text(VALUE + "('m', 60000000, 60000000, 'acme', '[]', 'd1')"))
        upgrade(engine)
        assert key_of(engine, "meter_rollups") == ["meter", "level_us", "subject", "bucket_us", "dims"]
        assert key_of(engine, "meter_rollup_values") == ["meter", "level_us", "subject", "bucket_us", "dims", "digest"]
        assert "ix_meter_rollups_subject" not in {i["name"] for i in inspect(engine).get_indexes("meter_rollups")}
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT subject, bucket_us, count, total FROM meter_rollups ORDER BY subject")
            ).all()
            digests = connection.execute(text("SELECT digest FROM meter_rollup_values")).scalars().all()
        assert [tuple(r) for r in rows] == [("acme", 120000000, 3, "7.5"), ("globex", 60000000, 1, "2")]
        assert digests == ["d1"]
        command.downgrade(alembic_config(engine), "0005_invoices")
        assert key_of(engine, "meter_rollups") == ["meter", "level_us", "bucket_us", "subject", "dims"]
        assert "ix_meter_rollups_subject" in {i["name"] for i in inspect(engine).get_indexes("meter_rollups")}
    finally:
        engine.dispose()


async def test_0008_refolds_a_meter_whose_backfill_mislabelled_its_dimensions(engine: Engine) -> None:
    """Rollups of a two-dimension meter with each value under the other's name (what the backfill of a
    groupBy written out of alphabetical order stored before 0008): after the upgrade, queries answer
    from rollups folded again; a one-dimension meter's rollups are kept."""
    clock = FrozenClock(datetime(2026, 3, 2, tzinfo=UTC))
    await asyncio.to_thread(upgrade, engine, "0007_catalog_version")
    # Today's store on 0007's schema: the call tables of 0021 stand in, empty, until the upgrade.
    await asyncio.to_thread(metadata.create_all, engine, [llm_calls, llm_call_shapes])
    store = SqlEventStore(engine, clock)
    try:
        service = MeteringService(store, clock)
        two = Meter("tokens", "api.tokens", Aggregation.SUM, "$.tokens", {"type": "$.type", "model": "$.model"})
        one = Meter("by_model", "api.tokens", Aggregation.SUM, "$.tokens", {"model": "$.model"})
        await service.sync_meters([replace(two, managed_by="config"), replace(one, managed_by="config")])
        with engine.begin() as connection:  # the event as 0007's schema stores it (no key_hash before 0020)
            connection.execute(
                text(
                    "INSERT INTO events (source, id, type, subject, time_us, ingested_us, data) VALUES "
                    "('t', '1', 'api.tokens', 'acme', :time, :time, :data)"
                ),
                {"time": to_micros(datetime(2026, 3, 1, tzinfo=UTC)), "data": EVENT_DATA},
            )
        await store.roll_up()
        await asyncio.to_thread(metadata.drop_all, engine, [llm_calls, llm_call_shapes])
        with engine.begin() as connection:  # the labels swapped, as the old backfill stored them
            connection.execute(text("UPDATE meter_rollups SET dims = '[\"input\",\"gpt-4o\"]' WHERE meter = 'tokens'"))
            kept = connection.execute(text("SELECT count(*) FROM meter_rollups WHERE meter = 'by_model'")).scalar()
        await asyncio.to_thread(upgrade, engine)
        rows = await service.query("tokens", MeterQuery(group_by=("type", "model")))
        assert [(r.group_by, r.value) for r in rows] == [({"type": "input", "model": "gpt-4o"}, Decimal(800))]
        await store.roll_up()
        rows = await service.query("tokens", MeterQuery(group_by=("type", "model")))
        assert [(r.group_by, r.value) for r in rows] == [({"type": "input", "model": "gpt-4o"}, Decimal(800))]
        with engine.connect() as connection:
            assert (
                connection.execute(text("SELECT count(*) FROM meter_rollups WHERE meter = 'by_model'")).scalar() == kept
            )
    finally:
        await store.close()


def test_0019_keeps_rollup_rows_in_the_key_on_sqlite(tmp_path: Path) -> None:
    """SQLite: the rollup tables become WITHOUT ROWID (one b-tree, no autoindex repeating the key) with
    their rows; the file gives the old tables' pages back; a downgrade restores rowid tables."""
    from alembic import command

    engine = create_sql_engine(f"sqlite:///{tmp_path / 'rowid.db'}")
    try:
        upgrade(engine, "0018_spend_rate_limits")
        with engine.begin() as connection:
            many = ", ".join(f"('m', 60000000, {n * 60000000}, 'a{n % 7}', '[\"x\"]', 1, '{n}')" for n in range(3000))
            connection.execute(text(ROW + many))
            connection.execute(text(VALUE + "('m', 60000000, 60000000, 'acme', '[]', 'd1')"))

        def state() -> tuple[list[str], list[tuple[object, ...]], list[str], int]:
            with engine.connect() as connection:
                ddl = connection.execute(
                    text("SELECT sql FROM sqlite_master WHERE name IN ('meter_rollups', 'meter_rollup_values')")
                ).scalars()
                rows = connection.execute(
                    text("SELECT bucket_us, subject, dims, count, total FROM meter_rollups ORDER BY bucket_us")
                ).all()
                digests = connection.execute(text("SELECT digest FROM meter_rollup_values")).scalars().all()
                free = int(connection.execute(text("PRAGMA freelist_count")).scalar() or 0)
            return list(ddl), [tuple(r) for r in rows], list(digests), free

        _, rows_before, _, _ = state()
        upgrade(engine)
        ddl, rows, digests, free = state()
        assert len(ddl) == 2
        assert all(sql.rstrip().endswith("WITHOUT ROWID") for sql in ddl)
        assert len(rows) == 3000
        assert rows == rows_before
        assert digests == ["d1"]
        assert free == 0
        assert key_of(engine, "meter_rollups") == ["meter", "level_us", "subject", "bucket_us", "dims"]
        command.downgrade(alembic_config(engine), "0018_spend_rate_limits")
        ddl, rows, digests, _ = state()
        assert not any("WITHOUT ROWID" in sql for sql in ddl)
        assert rows == rows_before
        assert digests == ["d1"]
    finally:
        engine.dispose()

"""Migration 0006 on SQLite and PostgreSQL: rollup rows survive, the keys lead with (meter, level_us,
subject), the old subject index is gone, and a downgrade restores the old key."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect, text

from tollway.adapters.sql.engine import create_sql_engine
from tollway.adapters.sql.migrate import alembic_config, upgrade

ROW = "INSERT INTO meter_rollups (meter, level_us, bucket_us, subject, dims, count, total) VALUES "
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

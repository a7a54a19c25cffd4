"""VersionRow (the gateway's cheap version poll): every read sees the latest commit from any connection, on
SQLite files (its own connection, on the loop) and PostgreSQL / in-memory SQLite (the engine path)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError

from tests.support.databases import database_url, migrated_engine
from tollway.adapters.sql.engine import create_sql_engine
from tollway.adapters.sql.versions import VersionRow
from tollway.errors import UnavailableError


def bump(connection: Connection, name: str) -> None:
    connection.execute(text("UPDATE identity_version SET version = version + 1 WHERE name = :n"), {"n": name})
    connection.commit()


@pytest.fixture(params=["sqlite", "postgres"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Engine]:
    engine = await migrated_engine(database_url(request, tmp_path, "versions.db"))
    yield engine
    engine.dispose()


async def test_each_read_sees_the_latest_commit(engine: Engine) -> None:

    def read(work: object) -> int:
        with engine.connect() as connection:
            return work(connection)  # type: ignore[operator, no-any-return]

    row = VersionRow(engine, "keys", read)
    first = await row.read()
    for step in range(1, 4):
        with engine.connect() as connection:
            bump(connection, "keys")
        assert await row.read() == first + step
    row.close()
    with engine.connect() as connection:
        bump(connection, "keys")
    assert await row.read() == first + 4  # reopened after close
    row.close()


async def test_a_sqlite_file_without_the_table_fails_through_the_store(tmp_path: Path) -> None:
    engine = create_sql_engine(f"sqlite:///{tmp_path}/empty.db")

    def read(work: object) -> int:
        try:
            with engine.connect() as connection:
                return work(connection)  # type: ignore[operator, no-any-return]
        except SQLAlchemyError as exc:
            raise UnavailableError("store read failed") from exc

    row = VersionRow(engine, "keys", read)
    with pytest.raises(UnavailableError):
        await row.read()
    row.close()
    engine.dispose()

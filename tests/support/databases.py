"""The databases a storage port's contract runs on: one fresh database per test and backend."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tollway.adapters.sql.engine import create_sql_engine
from tollway.adapters.sql.migrate import upgrade

BACKENDS = ["memory", "sqlite", "postgres"]  # a store fixture's params: the memory adapter, then the SQL one twice


def database_url(request: pytest.FixtureRequest, tmp_path: Path, name: str = "test.db") -> str:
    """For the fixture's `sqlite` param a new SQLite file in `tmp_path`; for `postgres` a schema of the test's own
    (the `postgres_url` fixture: skipped, or failed under TOLLWAY_REQUIRE_SERVICES=1, without PostgreSQL)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / name}"
    return str(request.getfixturevalue("postgres_url"))


async def migrated_engine(url: str) -> Engine:
    """An engine on `url` with every migration applied."""
    engine = create_sql_engine(url)
    await asyncio.to_thread(upgrade, engine)
    return engine

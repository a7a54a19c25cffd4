"""Fixtures the contract tests share: a migrated SQLite file and a migrated PostgreSQL schema, as engines."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from tollway.adapters.sql.engine import create_sql_engine
from tollway.adapters.sql.migrate import upgrade


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_sql_engine(f"sqlite:///{tmp_path / 'fold.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def postgres_engine(postgres_url: str) -> Iterator[Engine]:
    engine = create_sql_engine(postgres_url)
    upgrade(engine)
    yield engine
    engine.dispose()

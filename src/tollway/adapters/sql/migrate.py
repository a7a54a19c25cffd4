"""Run the Alembic migrations programmatically (`tollway db upgrade`, and at `tollway serve` start)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

from tollway.adapters.sql.retention import reclaim_sqlite

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    command.upgrade(alembic_config(engine), revision)
    if engine.dialect.name == "sqlite":
        # A migration that rebuilt a table (0019) left its old pages free: give them back to the file
        # system (a no-op on files made without auto_vacuum=INCREMENTAL, which reuse them instead).
        with engine.connect() as connection:
            if int(connection.exec_driver_sql("PRAGMA freelist_count").scalar() or 0):
                reclaim_sqlite(connection)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()

"""How the SQL stores run their work: one write transaction (SQLite takes its write lock up front), one read, and
a driver failure turned into UnavailableError naming the store but never the statement or its parameters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from tollway.adapters.sql.engine import failure_text
from tollway.errors import UnavailableError

T = TypeVar("T")


class Transactions:
    def __init__(self, engine: Engine, store: str) -> None:
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"
        self._store = store  # "invoice store": the start of a failure's message

    def insert(self, table: Any) -> Any:
        """The dialect's INSERT (for ON CONFLICT clauses)."""
        return postgresql.insert(table) if self.postgres else sqlite.insert(table)

    def write(self, work: Callable[[Connection], T]) -> T:
        try:
            with self.engine.connect() as connection:
                if not self.postgres:
                    connection.exec_driver_sql("BEGIN IMMEDIATE")  # SQLite: the write lock up front
                result = work(connection)
                connection.commit()
                return result
        except SQLAlchemyError as exc:
            raise UnavailableError(f"{self._store} failed: {failure_text(exc)}") from exc

    def read(self, work: Callable[[Connection], T]) -> T:
        try:
            with self.engine.connect() as connection:
                return work(connection)
        except SQLAlchemyError as exc:
            raise UnavailableError(f"{self._store} failed: {failure_text(exc)}") from exc

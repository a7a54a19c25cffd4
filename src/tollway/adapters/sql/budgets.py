"""SqlBudgetStore: the BudgetStore port on SQLite or PostgreSQL (blocking calls in threads).

The key is unique in the database, so two processes racing for one key cannot both win. Every write
bumps the catalog's version row in the same transaction: gateways rebuild their limits when it moves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar, cast

from sqlalchemy import Connection, Engine, Row, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from tollway.adapters.sql.schema import identity_version, spend_budgets, spend_rate_limits
from tollway.adapters.sql.versions import VersionRow
from tollway.clock import Clock, SystemClock
from tollway.errors import ConflictError, NotFoundError, UnavailableError
from tollway.metering.events import from_micros, to_micros
from tollway.spend.budgets import Budget, BudgetKind, BudgetScope, OnExceeded, OnRedisFailure
from tollway.spend.rate_limits import RateLimit, RateMetric, RateScope, RateWindow
from tollway.spend.windows import WindowKind

T = TypeVar("T")
VERSION_ROW = "catalog"


class SqlBudgetStore:
    def __init__(self, engine: Engine, clock: Clock | None = None) -> None:
        self._engine = engine
        self._clock = clock or SystemClock()
        self._postgres = engine.dialect.name == "postgresql"
        self._version_row = VersionRow(engine, VERSION_ROW, self._read)

    def _values(self, budget: Budget) -> dict[str, Any]:
        now = self._clock.now()
        return {
            "key": budget.key,
            "scope": budget.scope,
            "target": budget.target,
            "kind": budget.kind,
            "limit_amount": str(budget.limit),
            "window": budget.window,
            "hard": budget.hard,
            "name": budget.name,
            "managed_by": budget.managed_by,
            "created_us": to_micros(budget.created_at or now),
            "updated_us": to_micros(budget.updated_at or now),
            "on_exceeded": budget.on_exceeded,
            "route_to": budget.route_to,
            "on_redis_failure": budget.on_redis_failure,
        }

    @staticmethod
    def _decode(row: Row[Any]) -> Budget:
        return Budget(
            id=row.id,
            key=row.key,
            scope=cast(BudgetScope, row.scope),
            target=row.target,
            kind=cast(BudgetKind, row.kind),
            limit=Decimal(row.limit_amount),
            window=cast(WindowKind, row.window),
            hard=bool(row.hard),
            name=row.name,
            managed_by=row.managed_by,
            created_at=from_micros(row.created_us),
            updated_at=from_micros(row.updated_us),
            on_exceeded=cast(OnExceeded, row.on_exceeded),
            route_to=row.route_to,
            on_redis_failure=cast(OnRedisFailure | None, row.on_redis_failure),
        )

    def _write(self, work: Callable[[Connection], T], key: str, what: str = "budget") -> T:
        try:
            with self._engine.connect() as connection:
                if not self._postgres:
                    connection.exec_driver_sql("BEGIN IMMEDIATE")
                result = work(connection)
                connection.execute(
                    update(identity_version)
                    .where(identity_version.c.name == VERSION_ROW)
                    .values(version=identity_version.c.version + 1)
                )
                connection.commit()
                return result
        except IntegrityError:
            raise ConflictError(f"{what} {key!r} already exists", field="key") from None
        except SQLAlchemyError as exc:
            raise UnavailableError(f"budget store write failed: {exc.__class__.__name__}") from exc

    def _read(self, work: Callable[[Connection], T]) -> T:
        try:
            with self._engine.connect() as connection:
                return work(connection)
        except SQLAlchemyError as exc:
            raise UnavailableError(f"budget store read failed: {exc.__class__.__name__}") from exc

    async def insert_budget(self, budget: Budget) -> None:
        values = {"id": budget.id, **self._values(budget)}
        await asyncio.to_thread(self._write, lambda c: c.execute(insert(spend_budgets).values(**values)), budget.key)

    async def update_budget(self, budget: Budget) -> None:
        values = self._values(budget)
        del values["created_us"]

        def work(connection: Connection) -> None:
            done = connection.execute(update(spend_budgets).where(spend_budgets.c.id == budget.id).values(**values))
            if done.rowcount == 0:
                raise NotFoundError(f"budget {budget.id!r} not found", field="budget")

        await asyncio.to_thread(self._write, work, budget.key)

    async def delete_budget(self, budget_id: str) -> bool:
        def work(connection: Connection) -> bool:
            return bool(connection.execute(delete(spend_budgets).where(spend_budgets.c.id == budget_id)).rowcount)

        return await asyncio.to_thread(self._write, work, budget_id)

    async def get_budget(self, id_or_key: str) -> Budget | None:
        query = select(spend_budgets).where(or_(spend_budgets.c.id == id_or_key, spend_budgets.c.key == id_or_key))
        rows = await asyncio.to_thread(self._read, lambda c: list(c.execute(query)))
        by_id = [row for row in rows if row.id == id_or_key]
        chosen = by_id or rows
        return self._decode(chosen[0]) if chosen else None

    async def list_budgets(self) -> list[Budget]:
        query = select(spend_budgets).order_by(spend_budgets.c.key)
        rows = await asyncio.to_thread(self._read, lambda c: list(c.execute(query)))
        return [self._decode(row) for row in rows]

    async def budgets_version(self) -> int:
        return await self._version_row.read()

    # -- rate limits (the same version row: the gateway rebuilds its limits when it moves) ----------------------

    def _rate_values(self, limit: RateLimit) -> dict[str, Any]:
        now = self._clock.now()
        return {
            "key": limit.key,
            "scope": limit.scope,
            "target": limit.target,
            "metric": limit.metric,
            "limit_amount": str(limit.limit),
            "window": limit.window,
            "name": limit.name,
            "managed_by": limit.managed_by,
            "created_us": to_micros(limit.created_at or now),
            "updated_us": to_micros(limit.updated_at or now),
            "on_redis_failure": limit.on_redis_failure,
        }

    @staticmethod
    def _decode_rate(row: Row[Any]) -> RateLimit:
        return RateLimit(
            id=row.id,
            key=row.key,
            scope=cast(RateScope, row.scope),
            target=row.target,
            metric=cast(RateMetric, row.metric),
            limit=Decimal(row.limit_amount),
            window=cast(RateWindow | None, row.window),
            name=row.name,
            managed_by=row.managed_by,
            created_at=from_micros(row.created_us),
            updated_at=from_micros(row.updated_us),
            on_redis_failure=cast(OnRedisFailure | None, row.on_redis_failure),
        )

    async def insert_rate_limit(self, limit: RateLimit) -> None:
        values = {"id": limit.id, **self._rate_values(limit)}
        await asyncio.to_thread(
            self._write, lambda c: c.execute(insert(spend_rate_limits).values(**values)), limit.key, "rate limit"
        )

    async def update_rate_limit(self, limit: RateLimit) -> None:
        values = self._rate_values(limit)
        del values["created_us"]

        def work(connection: Connection) -> None:
            table = spend_rate_limits
            if connection.execute(update(table).where(table.c.id == limit.id).values(**values)).rowcount == 0:
                raise NotFoundError(f"rate limit {limit.id!r} not found", field="rate_limit")

        await asyncio.to_thread(self._write, work, limit.key, "rate limit")

    async def delete_rate_limit(self, limit_id: str) -> bool:
        def work(connection: Connection) -> bool:
            table = spend_rate_limits
            return bool(connection.execute(delete(table).where(table.c.id == limit_id)).rowcount)

        return await asyncio.to_thread(self._write, work, limit_id, "rate limit")

    async def get_rate_limit(self, id_or_key: str) -> RateLimit | None:
        table = spend_rate_limits
        query = select(table).where(or_(table.c.id == id_or_key, table.c.key == id_or_key))
        rows = await asyncio.to_thread(self._read, lambda c: list(c.execute(query)))
        chosen = [row for row in rows if row.id == id_or_key] or rows
        return self._decode_rate(chosen[0]) if chosen else None

    async def list_rate_limits(self) -> list[RateLimit]:
        query = select(spend_rate_limits).order_by(spend_rate_limits.c.key)
        rows = await asyncio.to_thread(self._read, lambda c: list(c.execute(query)))
        return [self._decode_rate(row) for row in rows]

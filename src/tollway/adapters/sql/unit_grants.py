"""SqlUnitGrantStore: unit grants on SQLite or PostgreSQL (blocking calls in threads)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

import orjson
from sqlalchemy import Connection, Engine, select, update
from sqlalchemy.exc import SQLAlchemyError

from tollway.adapters.sql.credit_schema import entitlement_resets, unit_grants
from tollway.adapters.sql.engine import failure_text
from tollway.billing.grants.model import UnitGrant
from tollway.billing.grants.resets import EntitlementReset
from tollway.errors import NotFoundError, UnavailableError
from tollway.metering.events import from_micros, to_micros

T = TypeVar("T")


def _at(us: Any) -> datetime | None:
    return None if us is None else from_micros(int(us))


def _values(g: UnitGrant) -> dict[str, Any]:
    return {
        "id": g.id,
        "customer_id": g.customer_id,
        "feature_key": g.feature_key,
        "amount": str(g.amount),
        "priority": g.priority,
        "effective_us": to_micros(g.effective_at),
        "created_us": to_micros(g.created_at),
        "expiration_duration": g.expiration_duration,
        "expiration_count": g.expiration_count,
        "expires_us": None if g.expires_at is None else to_micros(g.expires_at),
        "min_rollover": str(g.min_rollover),
        "max_rollover": None if g.max_rollover is None else str(g.max_rollover),
        "recurrence_interval": g.recurrence_interval,
        "recurrence_anchor_us": None if g.recurrence_anchor is None else to_micros(g.recurrence_anchor),
        "metadata": orjson.dumps(g.metadata).decode(),
        "voided_us": None if g.voided_at is None else to_micros(g.voided_at),
    }


def _grant(row: Any) -> UnitGrant:
    return UnitGrant(
        id=row.id,
        customer_id=row.customer_id,
        feature_key=row.feature_key,
        amount=Decimal(row.amount),
        priority=int(row.priority),
        effective_at=from_micros(int(row.effective_us)),
        created_at=from_micros(int(row.created_us)),
        expiration_duration=row.expiration_duration,
        expiration_count=row.expiration_count,
        expires_at=_at(row.expires_us),
        min_rollover=Decimal(row.min_rollover),
        max_rollover=None if row.max_rollover is None else Decimal(row.max_rollover),
        recurrence_interval=row.recurrence_interval,
        recurrence_anchor=_at(row.recurrence_anchor_us),
        metadata=orjson.loads(row.metadata),
        voided_at=_at(row.voided_us),
    )


class SqlUnitGrantStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def _run(self, work: Callable[[Connection], T], *, write: bool = False) -> T:
        try:
            with self._engine.connect() as connection:
                result = work(connection)
                if write:
                    connection.commit()
                return result
        except SQLAlchemyError as exc:
            raise UnavailableError(f"grant store failed: {failure_text(exc)}") from exc

    async def create_grant(self, grant: UnitGrant) -> UnitGrant:
        def work(connection: Connection) -> UnitGrant:
            connection.execute(unit_grants.insert().values(**_values(grant)))
            return grant

        return await asyncio.to_thread(self._run, work, write=True)

    async def get_grant(self, grant_id: str) -> UnitGrant | None:
        def work(connection: Connection) -> UnitGrant | None:
            row = connection.execute(select(unit_grants).where(unit_grants.c.id == grant_id)).first()
            return None if row is None else _grant(row)

        return await asyncio.to_thread(self._run, work)

    async def list_grants(self, customer_id: str, feature_key: str | None = None) -> list[UnitGrant]:
        query = (
            select(unit_grants)
            .where(unit_grants.c.customer_id == customer_id)
            .order_by(unit_grants.c.created_us, unit_grants.c.id)
        )
        if feature_key is not None:
            query = query.where(unit_grants.c.feature_key == feature_key)
        return await asyncio.to_thread(self._run, lambda c: [_grant(r) for r in c.execute(query)])

    async def list_all_grants(self) -> list[UnitGrant]:
        query = select(unit_grants).order_by(unit_grants.c.created_us, unit_grants.c.id)
        return await asyncio.to_thread(self._run, lambda c: [_grant(r) for r in c.execute(query)])

    async def void_grant(self, grant_id: str, *, at: datetime) -> UnitGrant:
        def work(connection: Connection) -> UnitGrant:
            connection.execute(
                update(unit_grants)
                .where(unit_grants.c.id == grant_id, unit_grants.c.voided_us.is_(None))
                .values(voided_us=to_micros(at))
            )
            row = connection.execute(select(unit_grants).where(unit_grants.c.id == grant_id)).first()
            if row is None:
                raise NotFoundError(f"grant {grant_id!r} not found", field="grantId")
            return _grant(row)

        return await asyncio.to_thread(self._run, work, write=True)

    async def create_reset(self, reset: EntitlementReset) -> EntitlementReset:
        values = {
            "id": reset.id,
            "customer_id": reset.customer_id,
            "feature_key": reset.feature_key,
            "effective_us": to_micros(reset.effective_at),
            "created_us": to_micros(reset.created_at),
            "retain_anchor": reset.retain_anchor,
            "preserve_overage": reset.preserve_overage,
        }

        def work(connection: Connection) -> EntitlementReset:
            connection.execute(entitlement_resets.insert().values(**values))
            return reset

        return await asyncio.to_thread(self._run, work, write=True)

    async def list_resets(
        self, customer_id: str | None = None, feature_key: str | None = None
    ) -> list[EntitlementReset]:
        t = entitlement_resets
        query = select(t).order_by(t.c.effective_us, t.c.created_us, t.c.id)
        if customer_id is not None:
            query = query.where(t.c.customer_id == customer_id)
        if feature_key is not None:
            query = query.where(t.c.feature_key == feature_key)

        def work(connection: Connection) -> list[EntitlementReset]:
            return [
                EntitlementReset(
                    id=r.id,
                    customer_id=r.customer_id,
                    feature_key=r.feature_key,
                    effective_at=from_micros(int(r.effective_us)),
                    created_at=from_micros(int(r.created_us)),
                    retain_anchor=bool(r.retain_anchor),
                    preserve_overage=bool(r.preserve_overage),
                )
                for r in connection.execute(query)
            ]

        return await asyncio.to_thread(self._run, work)

"""SqlPortalTokenStore: the PortalTokenStore port on SQLite or PostgreSQL (blocking calls in threads)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import orjson
from sqlalchemy import ColumnElement, Connection, Engine, Row, and_, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from tollway.adapters.sql.schema import portal_tokens
from tollway.errors import UnavailableError
from tollway.metering.events import from_micros, to_micros
from tollway.portal.tokens import PortalToken

T = TypeVar("T")


class SqlPortalTokenStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def _run(self, work: Callable[[Connection], T]) -> T:
        def step() -> T:
            try:
                with self._engine.begin() as connection:
                    return work(connection)
            except SQLAlchemyError as exc:
                raise UnavailableError(f"portal token store failed: {exc.__class__.__name__}") from exc

        return await asyncio.to_thread(step)

    async def insert_portal_token(self, token: PortalToken) -> None:
        values = {
            "id": token.id,
            "digest": token.digest,
            "subject": token.subject,
            "customer_key": token.customer_key,
            "allowed_meters": None if token.allowed_meters is None else orjson.dumps(token.allowed_meters).decode(),
            "expires_us": to_micros(token.expires_at),
            "created_us": to_micros(token.created_at),
            "invalidated_us": None,
        }
        await self._run(lambda c: c.execute(insert(portal_tokens).values(**values)))

    async def portal_token_by_digest(self, digest: str) -> PortalToken | None:
        def read(connection: Connection) -> PortalToken | None:
            row = connection.execute(select(portal_tokens).where(portal_tokens.c.digest == digest)).first()
            return None if row is None else _decode(row)

        return await self._run(read)

    async def list_portal_tokens(self, limit: int) -> list[PortalToken]:
        def read(connection: Connection) -> list[PortalToken]:
            query = select(portal_tokens).order_by(portal_tokens.c.created_us.desc(), portal_tokens.c.id.desc())
            return [_decode(row) for row in connection.execute(query.limit(limit))]

        return await self._run(read)

    async def invalidate_portal_tokens(
        self, *, at: datetime, token_id: str | None, subject: str | None, customer_key: str | None
    ) -> int:
        conditions: list[ColumnElement[bool]] = [portal_tokens.c.invalidated_us.is_(None)]
        if token_id is not None:
            conditions.append(portal_tokens.c.id == token_id)
        if subject is not None:
            conditions.append(portal_tokens.c.subject == subject)
        if customer_key is not None:
            conditions.append(portal_tokens.c.customer_key == customer_key)
        statement = update(portal_tokens).where(and_(*conditions)).values(invalidated_us=to_micros(at))
        return await self._run(lambda c: int(c.execute(statement).rowcount or 0))


def _decode(row: Row[Any]) -> PortalToken:
    meters = None if row.allowed_meters is None else tuple(str(m) for m in orjson.loads(row.allowed_meters))
    return PortalToken(
        id=row.id,
        digest=row.digest,
        subject=row.subject,
        customer_key=row.customer_key,
        expires_at=from_micros(row.expires_us),
        created_at=from_micros(row.created_us),
        allowed_meters=meters,
        invalidated_at=None if row.invalidated_us is None else from_micros(row.invalidated_us),
    )

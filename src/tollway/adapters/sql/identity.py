"""SqlIdentityStore: the IdentityStore port on SQLite or PostgreSQL (blocking calls in threads).

Every change runs in one write transaction that first takes the identity lock (PostgreSQL: the version
row, FOR UPDATE; SQLite: BEGIN IMMEDIATE), so checks and writes cannot interleave between processes,
and bumps `identity_version` before it commits: a gateway polling that one row sees every change.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Sequence
from datetime import date, datetime
from typing import Any, TypeVar, cast

import orjson
from sqlalchemy import Connection, Engine, and_, delete, insert, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from tollway.adapters.sql.engine import failure_text
from tollway.adapters.sql.schema import api_keys, consumers, identity_version
from tollway.adapters.sql.versions import VersionRow
from tollway.errors import ConflictError, DomainError, NotFoundError, UnavailableError
from tollway.identity.consumers import Consumer, ManagedBy
from tollway.identity.keys import ApiKey
from tollway.identity.ports import IdentitySnapshot, SyncResult
from tollway.identity.sync import plan_sync
from tollway.metering.events import from_micros, to_micros

VERSION_ROW = "keys"
T = TypeVar("T")


class SqlIdentityStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._postgres = engine.dialect.name == "postgresql"
        self._version_row = VersionRow(engine, VERSION_ROW, self._read)

    @property
    def engine(self) -> Engine:
        return self._engine

    # -- plumbing ---------------------------------------------------------------------------------

    def _read(self, work: Callable[[Connection], T]) -> T:
        try:
            with self._engine.connect() as connection:
                return work(connection)
        except SQLAlchemyError as exc:
            raise UnavailableError(f"identity store read failed: {failure_text(exc)}") from exc

    def _write(self, work: Callable[[Connection], T]) -> T:
        try:
            with self._engine.connect() as connection:
                if self._postgres:
                    connection.execute(
                        select(identity_version.c.version)
                        .where(identity_version.c.name == VERSION_ROW)
                        .with_for_update()
                    )
                else:
                    connection.exec_driver_sql("BEGIN IMMEDIATE")
                result = work(connection)
                connection.commit()
                return result
        except DomainError:
            raise
        except IntegrityError as exc:
            raise ConflictError(f"identity change conflicts with a stored row ({failure_text(exc)})") from exc
        except SQLAlchemyError as exc:
            raise UnavailableError(f"identity store write failed: {failure_text(exc)}") from exc

    @staticmethod
    def _bump(connection: Connection) -> None:
        connection.execute(
            update(identity_version)
            .where(identity_version.c.name == VERSION_ROW)
            .values(version=identity_version.c.version + 1)
        )

    @staticmethod
    def _version(connection: Connection) -> int:
        value = connection.execute(
            select(identity_version.c.version).where(identity_version.c.name == VERSION_ROW)
        ).scalar_one()
        return int(value)

    # -- reads ------------------------------------------------------------------------------------

    async def version(self) -> int:
        return await self._version_row.read()

    async def snapshot(self, now: datetime) -> IdentitySnapshot:
        now_us = to_micros(now)

        def work(connection: Connection) -> IdentitySnapshot:
            version = self._version(connection)
            rows = connection.execute(select(consumers).order_by(consumers.c.username)).all()
            keys = connection.execute(
                select(api_keys)
                .where(
                    and_(
                        api_keys.c.revoked_us.is_(None),
                        or_(api_keys.c.expires_us.is_(None), api_keys.c.expires_us > now_us),
                    )
                )
                .order_by(api_keys.c.created_us, api_keys.c.id)
            ).all()
            return IdentitySnapshot(
                version=version, consumers=[_consumer(r) for r in rows], keys=[_key(r) for r in keys]
            )

        return await asyncio.to_thread(self._read, work)

    async def get_consumer(self, username: str) -> Consumer | None:
        def work(connection: Connection) -> Consumer | None:
            row = connection.execute(select(consumers).where(consumers.c.username == username)).first()
            return _consumer(row) if row is not None else None

        return await asyncio.to_thread(self._read, work)

    async def list_consumers(self) -> list[Consumer]:
        def work(connection: Connection) -> list[Consumer]:
            return [_consumer(r) for r in connection.execute(select(consumers).order_by(consumers.c.username))]

        return await asyncio.to_thread(self._read, work)

    async def get_key(self, key_id: str) -> ApiKey | None:
        def work(connection: Connection) -> ApiKey | None:
            row = connection.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
            return _key(row) if row is not None else None

        return await asyncio.to_thread(self._read, work)

    async def list_keys(self, username: str | None = None) -> list[ApiKey]:
        query = select(api_keys).order_by(api_keys.c.created_us, api_keys.c.id)
        if username is not None:
            query = query.where(api_keys.c.username == username)

        def work(connection: Connection) -> list[ApiKey]:
            return [_key(r) for r in connection.execute(query)]

        return await asyncio.to_thread(self._read, work)

    # -- consumers --------------------------------------------------------------------------------

    async def insert_consumer(self, consumer: Consumer) -> None:
        def work(connection: Connection) -> None:
            if _exists(connection, consumer.username):
                raise ConflictError(f"consumer {consumer.username!r} already exists", field="username")
            connection.execute(delete(api_keys).where(api_keys.c.username == consumer.username))
            connection.execute(insert(consumers).values(_consumer_row(consumer)))
            self._bump(connection)

        await asyncio.to_thread(self._write, work)

    async def update_consumer(self, consumer: Consumer) -> None:
        values = _consumer_row(consumer)
        del values["username"], values["created_us"]

        def work(connection: Connection) -> None:
            done = connection.execute(update(consumers).where(consumers.c.username == consumer.username).values(values))
            if done.rowcount == 0:
                raise NotFoundError(f"consumer {consumer.username!r} not found", field="username")
            self._bump(connection)

        await asyncio.to_thread(self._write, work)

    async def delete_consumer(self, username: str) -> bool:
        def work(connection: Connection) -> bool:
            if not connection.execute(delete(consumers).where(consumers.c.username == username)).rowcount:
                return False
            connection.execute(delete(api_keys).where(api_keys.c.username == username))
            self._bump(connection)
            return True

        return await asyncio.to_thread(self._write, work)

    async def sync_config_consumers(self, desired: Sequence[Consumer], at: datetime) -> SyncResult:
        def work(connection: Connection) -> SyncResult:
            current = [_consumer(r) for r in connection.execute(select(consumers))]
            plan = plan_sync(current, desired, at)
            if plan.insert:
                connection.execute(insert(consumers), [_consumer_row(c) for c in plan.insert])
            for consumer in plan.update:
                values = _consumer_row(consumer)
                del values["username"], values["created_us"]
                connection.execute(update(consumers).where(consumers.c.username == consumer.username).values(values))
            if plan.remove:  # their keys stay as they are (see the port)
                connection.execute(delete(consumers).where(consumers.c.username.in_(plan.remove)))
            result = SyncResult(
                created=tuple(c.username for c in plan.insert),
                updated=tuple(c.username for c in plan.update),
                removed=plan.remove,
            )
            if result.changed:
                self._bump(connection)
            return result

        return await asyncio.to_thread(self._write, work)

    # -- keys -------------------------------------------------------------------------------------

    async def insert_key(self, key: ApiKey) -> None:
        def work(connection: Connection) -> None:
            if not _exists(connection, key.username):
                raise NotFoundError(f"consumer {key.username!r} not found", field="username")
            if connection.execute(select(api_keys.c.id).where(api_keys.c.id == key.id)).first() is not None:
                raise ConflictError(f"key {key.id!r} already exists", field="id")
            if connection.execute(select(api_keys.c.id).where(api_keys.c.digest == key.digest)).first() is not None:
                raise ConflictError("this key is already in use", field="key")
            connection.execute(insert(api_keys).values(_key_row(key)))
            self._bump(connection)

        await asyncio.to_thread(self._write, work)

    async def revoke_key(self, key_id: str, at: datetime) -> ApiKey | None:
        def work(connection: Connection) -> ApiKey | None:
            done = connection.execute(
                update(api_keys)
                .where(and_(api_keys.c.id == key_id, api_keys.c.revoked_us.is_(None)))
                .values(revoked_us=to_micros(at))
            )
            if done.rowcount:
                self._bump(connection)
            row = connection.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
            return _key(row) if row is not None else None

        return await asyncio.to_thread(self._write, work)

    async def record_key_use(self, key_ids: Collection[str], day: date) -> int:
        ids = sorted(set(key_ids))
        if not ids:
            return 0
        text = day.isoformat()

        def work(connection: Connection) -> int:
            with connection.begin():
                done = connection.execute(
                    update(api_keys)
                    .where(
                        and_(
                            api_keys.c.id.in_(ids),
                            or_(api_keys.c.last_used_day.is_(None), api_keys.c.last_used_day < text),
                        )
                    )
                    .values(last_used_day=text)
                )
                return int(done.rowcount)

        return await asyncio.to_thread(self._read, work)

    async def close(self) -> None:
        self._version_row.close()
        await asyncio.to_thread(self._engine.dispose)


def _exists(connection: Connection, username: str) -> bool:
    return connection.execute(select(consumers.c.username).where(consumers.c.username == username)).first() is not None


def _models_text(models: frozenset[str] | None) -> str | None:
    return orjson.dumps(sorted(models)).decode() if models is not None else None


def _models(text: str | None) -> frozenset[str] | None:
    return frozenset(orjson.loads(text)) if text is not None else None


def _consumer_row(consumer: Consumer) -> dict[str, Any]:
    return {
        "username": consumer.username,
        "managed_by": consumer.managed_by,
        "models": _models_text(consumer.models),
        "metadata": orjson.dumps(dict(consumer.metadata), option=orjson.OPT_SORT_KEYS).decode(),
        "created_us": to_micros(consumer.created_at),
        "updated_us": to_micros(consumer.updated_at),
    }


def _consumer(row: Row[Any]) -> Consumer:
    return Consumer(
        username=row.username,
        managed_by=cast(ManagedBy, row.managed_by),
        models=_models(row.models),
        metadata=orjson.loads(row.metadata),
        created_at=from_micros(row.created_us),
        updated_at=from_micros(row.updated_us),
    )


def _key_row(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "username": key.username,
        "name": key.name,
        "prefix": key.prefix,
        "digest": key.digest,
        "models": _models_text(key.models),
        "created_us": to_micros(key.created_at),
        "expires_us": to_micros(key.expires_at) if key.expires_at is not None else None,
        "revoked_us": to_micros(key.revoked_at) if key.revoked_at is not None else None,
        "last_used_day": key.last_used_day.isoformat() if key.last_used_day is not None else None,
    }


def _key(row: Row[Any]) -> ApiKey:
    return ApiKey(
        id=row.id,
        username=row.username,
        name=row.name,
        prefix=row.prefix,
        digest=row.digest,
        models=_models(row.models),
        created_at=from_micros(row.created_us),
        expires_at=from_micros(row.expires_us) if row.expires_us is not None else None,
        revoked_at=from_micros(row.revoked_us) if row.revoked_us is not None else None,
        last_used_day=date.fromisoformat(row.last_used_day) if row.last_used_day is not None else None,
    )

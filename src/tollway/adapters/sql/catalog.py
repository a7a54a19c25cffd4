"""SqlCatalogStore: the CatalogStore port on SQLite or PostgreSQL (blocking calls in threads).

Uniqueness lives in the database (partial unique indexes on live keys, one draft and one published
version per plan key, a primary key on each customer subject), so two processes racing cannot both
win: the loser's IntegrityError becomes a ConflictError naming the field, found by reading what won.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Row, Table, delete, select, update
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from tollway.adapters.sql import catalog_codec as codec
from tollway.adapters.sql import subscription_changes as journal
from tollway.adapters.sql.engine import failure_text
from tollway.adapters.sql.schema import (
    catalog_customer_subjects,
    catalog_customers,
    catalog_features,
    catalog_plans,
    catalog_subscriptions,
    identity_version,
)
from tollway.adapters.sql.versions import VersionRow
from tollway.billing.customers import Customer
from tollway.billing.features import Feature
from tollway.billing.plans import Plan
from tollway.billing.subscription_changes import SubscriptionChange
from tollway.billing.subscriptions import Subscription
from tollway.billing.validation import first_overlap, overlap_conflict
from tollway.clock import Clock, SystemClock
from tollway.errors import ConflictError, DomainError, NotFoundError, UnavailableError
from tollway.metering.events import to_micros

T = TypeVar("T")
Diagnose = Callable[[Connection], ConflictError]

SUBJECTS_FIELD = "usageAttribution.subjectKeys"
VERSION_ROW = "catalog"  # its row in the version table (migration 0007), bumped by every catalog write


class SqlCatalogStore:
    """The engine belongs to whoever built it (the composition root shares it with the event store)."""

    def __init__(self, engine: Engine, clock: Clock | None = None) -> None:
        self._engine = engine
        self._clock = clock or SystemClock()
        self._postgres = engine.dialect.name == "postgresql"
        self._version_row = VersionRow(engine, VERSION_ROW, self._read)

    @property
    def engine(self) -> Engine:
        return self._engine

    # -- plumbing ---------------------------------------------------------------------------------

    async def _get_by_id_or_live_key(
        self, table: Table, gone: str, id_or_key: str, decode: Callable[[Row[Any]], T]
    ) -> T | None:
        """By id (archived or deleted too), else by key among the rows whose `gone` time is not set."""

        def work(connection: Connection) -> T | None:
            row = connection.execute(select(table).where(table.c.id == id_or_key)).first()
            if row is None:
                row = connection.execute(select(table).where(table.c.key == id_or_key, table.c[gone].is_(None))).first()
            return None if row is None else decode(row)

        return await asyncio.to_thread(self._read, work)

    async def _list_by_key(
        self, table: Table, gone: str, include_gone: bool, decode: Callable[[Row[Any]], T]
    ) -> list[T]:
        query = select(table).order_by(table.c.key, table.c.id)
        if not include_gone:
            query = query.where(table.c[gone].is_(None))
        rows = await asyncio.to_thread(self._read, lambda c: list(c.execute(query)))
        return [decode(row) for row in rows]

    def _write(self, work: Callable[[Connection], T], diagnose: Diagnose) -> T:
        """Run `work` in one transaction; a unique-key violation becomes the ConflictError `diagnose` finds."""
        try:
            try:
                with self._engine.connect() as connection:
                    if not self._postgres:
                        connection.exec_driver_sql("BEGIN IMMEDIATE")  # SQLite: take the write lock up front
                    result = work(connection)
                    # Last, so the version row's lock is the last one a catalog write takes (no lock cycles).
                    connection.execute(
                        update(identity_version)
                        .where(identity_version.c.name == VERSION_ROW)
                        .values(version=identity_version.c.version + 1)
                    )
                    connection.commit()
                    return result
            except IntegrityError:
                with self._engine.connect() as connection:
                    raise diagnose(connection) from None
        except DomainError:
            raise
        except OperationalError as exc:
            raise UnavailableError(f"catalog store unavailable: {exc.__class__.__name__}") from exc
        except SQLAlchemyError as exc:
            raise UnavailableError(f"catalog store write failed: {failure_text(exc)}") from exc

    def _read(self, work: Callable[[Connection], T]) -> T:
        try:
            with self._engine.connect() as connection:
                return work(connection)
        except SQLAlchemyError as exc:
            raise UnavailableError(f"catalog store read failed: {exc.__class__.__name__}") from exc

    async def version(self) -> int:
        return await self._version_row.read()

    def _us(self, moment: Any) -> int:
        return to_micros(moment if moment is not None else self._clock.now())

    @staticmethod
    def _conflict(message: str, field: str = "id") -> Diagnose:
        return lambda _connection: ConflictError(message, field=field)

    # -- features ---------------------------------------------------------------------------------

    def _feature_values(self, feature: Feature) -> dict[str, Any]:
        return {
            "key": feature.key,
            "meter_slug": feature.meter_slug,
            "managed_by": feature.managed_by,
            "created_us": self._us(feature.created_at),
            "updated_us": self._us(feature.updated_at),
            "archived_us": to_micros(feature.archived_at) if feature.archived_at is not None else None,
            "record": codec.dumps(codec.encode_feature(feature)),
        }

    def _feature_conflict(self, feature: Feature) -> Diagnose:
        def diagnose(connection: Connection) -> ConflictError:
            taken = connection.execute(
                select(catalog_features.c.id).where(
                    catalog_features.c.key == feature.key,
                    catalog_features.c.archived_us.is_(None),
                    catalog_features.c.id != feature.id,
                )
            ).first()
            if taken is not None:
                return ConflictError(f"feature {feature.key!r} already exists", field="key")
            return ConflictError(f"feature id {feature.id!r} already exists", field="id")

        return diagnose

    async def insert_feature(self, feature: Feature) -> None:
        values = {"id": feature.id, **self._feature_values(feature)}
        await asyncio.to_thread(
            self._write,
            lambda c: c.execute(catalog_features.insert().values(**values)),
            self._feature_conflict(feature),
        )

    async def update_feature(self, feature: Feature) -> None:
        values = self._feature_values(feature)

        def work(connection: Connection) -> None:
            changed = connection.execute(
                update(catalog_features).where(catalog_features.c.id == feature.id).values(**values)
            ).rowcount
            if not changed:
                raise NotFoundError(f"feature {feature.id!r} not found", field="id")

        await asyncio.to_thread(self._write, work, self._feature_conflict(feature))

    @staticmethod
    def _feature(row: Row[Any]) -> Feature:
        return codec.decode_feature(
            codec.loads(row.record),
            id=row.id,
            key=row.key,
            meter_slug=row.meter_slug,
            managed_by=row.managed_by,
            created_us=row.created_us,
            updated_us=row.updated_us,
            archived_us=row.archived_us,
        )

    async def get_feature(self, id_or_key: str) -> Feature | None:
        return await self._get_by_id_or_live_key(catalog_features, "archived_us", id_or_key, self._feature)

    async def list_features(self, *, include_archived: bool = False) -> list[Feature]:
        return await self._list_by_key(catalog_features, "archived_us", include_archived, self._feature)

    # -- plans ------------------------------------------------------------------------------------

    def _plan_values(self, plan: Plan) -> dict[str, Any]:
        return {
            "key": plan.key,
            "version": plan.version,
            "status": plan.status,
            "managed_by": plan.managed_by,
            "created_us": self._us(plan.created_at),
            "updated_us": self._us(plan.updated_at),
            "record": codec.dumps(codec.encode_plan(plan)),
        }

    @staticmethod
    def _plans_conflict(plans: Sequence[Plan]) -> Diagnose:
        def diagnose(connection: Connection) -> ConflictError:
            for plan in plans:
                rows = connection.execute(
                    select(catalog_plans.c.id, catalog_plans.c.version, catalog_plans.c.status).where(
                        catalog_plans.c.key == plan.key, catalog_plans.c.id != plan.id
                    )
                ).all()
                for row in rows:
                    if row.version == plan.version:
                        return ConflictError(f"plan {plan.key!r} version {plan.version} already exists", field="key")
                    if row.status == plan.status:
                        return ConflictError(
                            f"plan {plan.key!r} already has a {plan.status} version (v{row.version})", field="key"
                        )
            return ConflictError("plan id already exists", field="id")

        return diagnose

    async def insert_plan(self, plan: Plan) -> None:
        values = {"id": plan.id, **self._plan_values(plan)}
        await asyncio.to_thread(
            self._write, lambda c: c.execute(catalog_plans.insert().values(**values)), self._plans_conflict([plan])
        )

    async def update_plan(self, plan: Plan) -> None:
        await self.update_plans([plan])

    async def update_plans(self, plans: Sequence[Plan]) -> None:
        """In order, in one transaction: archive the old published version before publishing the new one."""
        changes = [(plan.id, self._plan_values(plan)) for plan in plans]

        def work(connection: Connection) -> None:
            for plan_id, values in changes:
                changed = connection.execute(
                    update(catalog_plans).where(catalog_plans.c.id == plan_id).values(**values)
                ).rowcount
                if not changed:
                    raise NotFoundError(f"plan {plan_id!r} not found", field="id")

        await asyncio.to_thread(self._write, work, self._plans_conflict(plans))

    async def delete_plan(self, plan_id: str) -> bool:
        def work(connection: Connection) -> bool:
            return bool(connection.execute(delete(catalog_plans).where(catalog_plans.c.id == plan_id)).rowcount)

        return await asyncio.to_thread(
            self._write, work, self._conflict(f"plan {plan_id!r} has subscriptions", field="plan")
        )

    @staticmethod
    def _plan(row: Row[Any]) -> Plan:
        return codec.decode_plan(
            codec.loads(row.record),
            id=row.id,
            key=row.key,
            version=row.version,
            status=row.status,
            managed_by=row.managed_by,
            created_us=row.created_us,
            updated_us=row.updated_us,
        )

    async def get_plan(self, plan_id: str) -> Plan | None:
        query = select(catalog_plans).where(catalog_plans.c.id == plan_id)
        row = await asyncio.to_thread(self._read, lambda c: c.execute(query).first())
        return None if row is None else self._plan(row)

    async def list_plans(self, *, key: str | None = None) -> list[Plan]:
        query = select(catalog_plans).order_by(catalog_plans.c.key, catalog_plans.c.version)
        if key is not None:
            query = query.where(catalog_plans.c.key == key)
        rows = await asyncio.to_thread(self._read, lambda c: list(c.execute(query)))
        return [self._plan(row) for row in rows]

    # -- customers --------------------------------------------------------------------------------

    def _customer_values(self, customer: Customer) -> dict[str, Any]:
        return {
            "key": customer.key,
            "managed_by": customer.managed_by,
            "created_us": self._us(customer.created_at),
            "updated_us": self._us(customer.updated_at),
            "deleted_us": to_micros(customer.deleted_at) if customer.deleted_at is not None else None,
            "record": codec.dumps(codec.encode_customer(customer)),
        }

    @staticmethod
    def _customer_conflict(customer: Customer) -> Diagnose:
        def diagnose(connection: Connection) -> ConflictError:
            if customer.deleted_at is None:
                taken = connection.execute(
                    select(catalog_customers.c.id).where(
                        catalog_customers.c.key == customer.key,
                        catalog_customers.c.deleted_us.is_(None),
                        catalog_customers.c.id != customer.id,
                    )
                ).first()
                if taken is not None:
                    return ConflictError(f"customer {customer.key!r} already exists", field="key")
            if customer.subjects:
                owner = connection.execute(
                    select(catalog_customer_subjects.c.subject, catalog_customers.c.key)
                    .join(catalog_customers, catalog_customers.c.id == catalog_customer_subjects.c.customer_id)
                    .where(
                        catalog_customer_subjects.c.subject.in_(customer.subjects),
                        catalog_customer_subjects.c.customer_id != customer.id,
                    )
                    .order_by(catalog_customer_subjects.c.subject)
                ).first()
                if owner is not None:
                    return ConflictError(
                        f"subject {owner.subject!r} already belongs to customer {owner.key!r}", field=SUBJECTS_FIELD
                    )
            return ConflictError(f"customer id {customer.id!r} already exists", field="id")

        return diagnose

    @staticmethod
    def _put_subjects(connection: Connection, customer: Customer) -> None:
        connection.execute(
            delete(catalog_customer_subjects).where(catalog_customer_subjects.c.customer_id == customer.id)
        )
        if customer.deleted_at is None and customer.subjects:
            connection.execute(
                catalog_customer_subjects.insert(),
                [{"subject": s, "customer_id": customer.id} for s in customer.subjects],
            )

    async def insert_customer(self, customer: Customer) -> None:
        values = {"id": customer.id, **self._customer_values(customer)}

        def work(connection: Connection) -> None:
            connection.execute(catalog_customers.insert().values(**values))
            self._put_subjects(connection, customer)

        await asyncio.to_thread(self._write, work, self._customer_conflict(customer))

    async def update_customer(self, customer: Customer) -> None:
        """A deleted customer (deleted_at set) releases its subjects."""
        values = self._customer_values(customer)

        def work(connection: Connection) -> None:
            changed = connection.execute(
                update(catalog_customers).where(catalog_customers.c.id == customer.id).values(**values)
            ).rowcount
            if not changed:
                raise NotFoundError(f"customer {customer.id!r} not found", field="id")
            self._put_subjects(connection, customer)

        await asyncio.to_thread(self._write, work, self._customer_conflict(customer))

    @staticmethod
    def _customer(row: Row[Any]) -> Customer:
        return codec.decode_customer(
            codec.loads(row.record),
            id=row.id,
            key=row.key,
            managed_by=row.managed_by,
            created_us=row.created_us,
            updated_us=row.updated_us,
            deleted_us=row.deleted_us,
        )

    async def get_customer(self, id_or_key: str) -> Customer | None:
        return await self._get_by_id_or_live_key(catalog_customers, "deleted_us", id_or_key, self._customer)

    async def list_customers(self, *, include_deleted: bool = False) -> list[Customer]:
        return await self._list_by_key(catalog_customers, "deleted_us", include_deleted, self._customer)

    async def customer_of_subject(self, subject: str) -> Customer | None:
        query = (
            select(catalog_customers)
            .join(catalog_customer_subjects, catalog_customers.c.id == catalog_customer_subjects.c.customer_id)
            .where(catalog_customer_subjects.c.subject == subject)
        )
        row = await asyncio.to_thread(self._read, lambda c: c.execute(query).first())
        return None if row is None else self._customer(row)

    # -- subscriptions ----------------------------------------------------------------------------

    @staticmethod
    def _subscription_values(subscription: Subscription) -> dict[str, Any]:
        return {
            "customer_id": subscription.customer_id,
            "plan_id": subscription.plan_id,
            "active_from_us": to_micros(subscription.active_from),
            "active_to_us": to_micros(subscription.active_to) if subscription.active_to is not None else None,
            "record": codec.dumps(codec.encode_subscription(subscription)),
        }

    async def insert_subscription(self, subscription: Subscription) -> None:
        await self.update_subscriptions((), (subscription,))

    async def update_subscriptions(self, changed: Sequence[Subscription], added: Sequence[Subscription] = ()) -> None:
        updates = [(s.id, self._subscription_values(s)) for s in changed]
        inserts = [{"id": s.id, **self._subscription_values(s)} for s in added]

        customers = sorted({s.customer_id for s in (*changed, *added)})

        def work(connection: Connection) -> None:
            # One writer per customer at a time (SQLite's write lock already serializes), so the overlap
            # check below sees every committed subscription of the customer.
            if self._postgres and customers:
                connection.execute(
                    select(catalog_customers.c.id).where(catalog_customers.c.id.in_(customers)).with_for_update()
                ).all()
            ids = [s.id for s in changed]
            stored = connection.execute(select(catalog_subscriptions).where(catalog_subscriptions.c.id.in_(ids)))
            before = {row.id: self._subscription(row) for row in stored} if ids else {}
            for subscription_id, values in updates:
                count = connection.execute(
                    update(catalog_subscriptions).where(catalog_subscriptions.c.id == subscription_id).values(**values)
                ).rowcount
                if not count:
                    raise NotFoundError(f"subscription {subscription_id!r} not found", field="id")
            for values in inserts:
                connection.execute(catalog_subscriptions.insert().values(**values))
            for customer_id in customers:
                rows = connection.execute(
                    select(catalog_subscriptions).where(catalog_subscriptions.c.customer_id == customer_id)
                )
                pair = first_overlap([self._subscription(row) for row in rows])
                if pair is not None:
                    raise overlap_conflict(pair)
            journal.record_changes(connection, before, changed, added, self._clock.now())

        await asyncio.to_thread(
            self._write, work, self._conflict("subscription id already exists, or its customer or plan is unknown")
        )

    @staticmethod
    def _subscription(row: Row[Any]) -> Subscription:
        return codec.decode_subscription(
            codec.loads(row.record),
            id=row.id,
            customer_id=row.customer_id,
            plan_id=row.plan_id,
            active_from_us=row.active_from_us,
            active_to_us=row.active_to_us,
        )

    async def pending_subscription_changes(self, *, limit: int = 100) -> list[SubscriptionChange]:
        return await asyncio.to_thread(self._read, lambda c: journal.pending(c, limit))

    async def complete_subscription_changes(self, ids: Sequence[str], *, at: datetime) -> None:
        def work() -> None:  # not a catalog change: the version row stays
            with self._engine.begin() as connection:
                journal.complete(connection, ids, at)

        try:
            await asyncio.to_thread(work)
        except SQLAlchemyError as exc:
            raise UnavailableError(f"catalog store write failed: {failure_text(exc)}") from exc

    async def get_subscription(self, subscription_id: str) -> Subscription | None:
        query = select(catalog_subscriptions).where(catalog_subscriptions.c.id == subscription_id)
        row = await asyncio.to_thread(self._read, lambda c: c.execute(query).first())
        return None if row is None else self._subscription(row)

    async def list_subscriptions(self, *, customer_id: str | None = None) -> list[Subscription]:
        query = select(catalog_subscriptions).order_by(
            catalog_subscriptions.c.active_from_us, catalog_subscriptions.c.id
        )
        if customer_id is not None:
            query = query.where(catalog_subscriptions.c.customer_id == customer_id)
        rows = await asyncio.to_thread(self._read, lambda c: list(c.execute(query)))
        return [self._subscription(row) for row in rows]

    async def close(self) -> None:
        return None

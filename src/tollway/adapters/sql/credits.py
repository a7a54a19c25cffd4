"""SqlCreditStore: the CreditStore port on SQLite or PostgreSQL (blocking calls in threads).

A grant's balance is SUM(amount_minor) of its ledger rows. Writers that change a balance lock the grant rows
first (FOR UPDATE on PostgreSQL; SQLite has one writer, taken up front with BEGIN IMMEDIATE), so a balance
read in the transaction is the one the rows are checked against. `funded`, `expired` and `voided` rows carry a
unique once-key (grant:kind): each is written once however many processes try. `write_consumption_in` is what
the invoice store calls inside the transaction that stores an invoice."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

import orjson
from sqlalchemy import Connection, Engine, func, select, update

from tollway.adapters.memory.credits import ended, ending_row, funded_row, restored_row
from tollway.adapters.sql.credit_schema import credit_grants, credit_ledger, credit_recharge
from tollway.adapters.sql.transactions import Transactions
from tollway.billing.credits.model import CreditGrant, CreditTransaction, GrantBalance, RechargeRule
from tollway.billing.credits.ports import check_ledger
from tollway.errors import ConflictError, NotFoundError
from tollway.metering.events import from_micros, to_micros

T = TypeVar("T")


def _us(at: datetime | None) -> int | None:
    return None if at is None else to_micros(at)


def _at(us: Any) -> datetime | None:
    return None if us is None else from_micros(int(us))


def grant_values(grant: CreditGrant) -> dict[str, Any]:
    return {
        "id": grant.id,
        "customer_id": grant.customer_id,
        "name": grant.name,
        "amount_minor": grant.amount_minor,
        "currency": grant.currency,
        "funding_method": grant.funding_method,
        "priority": grant.priority,
        "effective_us": to_micros(grant.effective_at),
        "expires_after": grant.expires_after,
        "expires_us": _us(grant.expires_at),
        "grant_key": grant.key,
        "features": None if grant.features is None else orjson.dumps(list(grant.features)).decode(),
        "price_minor": grant.price_minor,
        "invoice_id": grant.invoice_id,
        "status": grant.status,
        "metadata": orjson.dumps(grant.metadata).decode(),
        "created_us": to_micros(grant.created_at),
        "voided_us": _us(grant.voided_at),
        "expired_us": _us(grant.expired_at),
    }


def grant_from_row(row: Any) -> CreditGrant:
    return CreditGrant(
        id=row.id,
        customer_id=row.customer_id,
        name=row.name,
        amount_minor=int(row.amount_minor),
        currency=row.currency,
        funding_method=row.funding_method,
        priority=int(row.priority),
        effective_at=from_micros(int(row.effective_us)),
        status=row.status,
        created_at=from_micros(int(row.created_us)),
        expires_after=row.expires_after,
        expires_at=_at(row.expires_us),
        key=row.grant_key,
        features=None if row.features is None else tuple(orjson.loads(row.features)),
        price_minor=None if row.price_minor is None else int(row.price_minor),
        invoice_id=row.invoice_id,
        metadata=orjson.loads(row.metadata),
        voided_at=_at(row.voided_us),
        expired_at=_at(row.expired_us),
    )


def row_values(row: CreditTransaction) -> dict[str, Any]:
    return {
        "id": row.id,
        "grant_id": row.grant_id,
        "customer_id": row.customer_id,
        "kind": row.kind,
        "amount_minor": row.amount_minor,
        "currency": row.currency,
        "balance_before_minor": row.balance_before_minor,
        "balance_after_minor": row.balance_after_minor,
        "at_us": to_micros(row.at),
        "invoice_id": row.invoice_id,
        "invoice_line_id": row.invoice_line_id,
        "once_key": None if row.kind == "consumed" else f"{row.grant_id}:{row.kind}",
    }


def transaction_from_row(row: Any) -> CreditTransaction:
    return CreditTransaction(
        id=row.id,
        grant_id=row.grant_id,
        customer_id=row.customer_id,
        kind=row.kind,
        amount_minor=int(row.amount_minor),
        currency=row.currency,
        balance_before_minor=int(row.balance_before_minor),
        balance_after_minor=int(row.balance_after_minor),
        at=from_micros(int(row.at_us)),
        invoice_id=row.invoice_id,
        invoice_line_id=row.invoice_line_id,
    )


def _balance(connection: Connection, grant_id: str) -> int:
    total = connection.execute(
        select(func.coalesce(func.sum(credit_ledger.c.amount_minor), 0)).where(credit_ledger.c.grant_id == grant_id)
    ).scalar_one()
    return int(total)


def _locked(connection: Connection, grant_ids: Sequence[str], postgres: bool) -> dict[str, CreditGrant]:
    query = select(credit_grants).where(credit_grants.c.id.in_(sorted(set(grant_ids)))).order_by(credit_grants.c.id)
    if postgres:
        query = query.with_for_update()
    return {row.id: grant_from_row(row) for row in connection.execute(query)}


def write_consumption_in(connection: Connection, rows: Sequence[CreditTransaction], *, postgres: bool) -> None:
    """Inside the invoice's transaction: lock the grants, check each row against the balance, write them."""
    if not rows:
        return
    grants = _locked(connection, [row.grant_id for row in rows], postgres)
    for row in rows:
        grant = grants.get(row.grant_id)
        if grant is None or grant.status != "active":
            state = "unknown" if grant is None else grant.status
            raise ConflictError(f"credit grant {row.grant_id} is {state}", field="credits")
    check_ledger(rows, {grant_id: _balance(connection, grant_id) for grant_id in grants})
    connection.execute(credit_ledger.insert(), [row_values(row) for row in rows])


class SqlCreditStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._sql = Transactions(engine, "credit store")
        self._postgres = self._sql.postgres
        self._insert, self._tx, self._read = self._sql.insert, self._sql.write, self._sql.read

    async def create_grant(self, grant: CreditGrant) -> tuple[CreditGrant, bool]:
        def work(connection: Connection) -> tuple[CreditGrant, bool]:
            query = self._insert(credit_grants).values(**grant_values(grant))
            if grant.key is not None:
                query = query.on_conflict_do_nothing(index_elements=["customer_id", "grant_key"])
            inserted = connection.execute(query.returning(credit_grants.c.id)).first()
            if inserted is None:
                row = connection.execute(
                    select(credit_grants).where(
                        credit_grants.c.customer_id == grant.customer_id, credit_grants.c.grant_key == grant.key
                    )
                ).one()
                return grant_from_row(row), False
            if grant.status == "active":
                connection.execute(credit_ledger.insert().values(**row_values(funded_row(grant, grant.created_at))))
            return grant, True

        return await asyncio.to_thread(self._tx, work)

    async def get_grant(self, grant_id: str) -> CreditGrant | None:
        def work(connection: Connection) -> CreditGrant | None:
            row = connection.execute(select(credit_grants).where(credit_grants.c.id == grant_id)).first()
            return None if row is None else grant_from_row(row)

        return await asyncio.to_thread(self._read, work)

    def _grants(self, connection: Connection, customer_id: str) -> list[CreditGrant]:
        query = (
            select(credit_grants)
            .where(credit_grants.c.customer_id == customer_id)
            .order_by(credit_grants.c.created_us, credit_grants.c.id)
        )
        return [grant_from_row(row) for row in connection.execute(query)]

    async def list_grants(self, customer_id: str) -> list[CreditGrant]:
        return await asyncio.to_thread(self._read, lambda c: self._grants(c, customer_id))

    async def balances(self, customer_id: str) -> list[GrantBalance]:
        def work(connection: Connection) -> list[GrantBalance]:
            sums = {
                row[0]: row[1]
                for row in connection.execute(
                    select(credit_ledger.c.grant_id, func.sum(credit_ledger.c.amount_minor))
                    .where(credit_ledger.c.customer_id == customer_id)
                    .group_by(credit_ledger.c.grant_id)
                )
            }
            return [GrantBalance(g, int(sums.get(g.id) or 0)) for g in self._grants(connection, customer_id)]

        return await asyncio.to_thread(self._read, work)

    async def list_transactions(self, customer_id: str, *, grant_id: str | None = None) -> list[CreditTransaction]:
        query = select(credit_ledger).where(credit_ledger.c.customer_id == customer_id).order_by(credit_ledger.c.seq)
        if grant_id is not None:
            query = query.where(credit_ledger.c.grant_id == grant_id)
        return await asyncio.to_thread(self._read, lambda c: [transaction_from_row(row) for row in c.execute(query)])

    async def expiring(self, before: datetime) -> list[CreditGrant]:
        query = (
            select(credit_grants)
            .where(
                credit_grants.c.status == "active",
                credit_grants.c.expires_us.is_not(None),
                credit_grants.c.expires_us <= to_micros(before),
            )
            .order_by(credit_grants.c.created_us, credit_grants.c.id)
        )
        return await asyncio.to_thread(self._read, lambda c: [grant_from_row(row) for row in c.execute(query)])

    def _one(self, connection: Connection, grant_id: str) -> CreditGrant:
        grant = _locked(connection, [grant_id], self._postgres).get(grant_id)
        if grant is None:
            raise NotFoundError(f"credit grant {grant_id!r} not found", field="id")
        return grant

    async def activate(self, grant_id: str, *, at: datetime) -> CreditGrant:
        def work(connection: Connection) -> CreditGrant:
            grant = self._one(connection, grant_id)
            if grant.status == "active":
                return grant
            if grant.status != "pending":
                raise ConflictError(
                    f"credit grant {grant_id} is {grant.status}: it cannot become active", field="status"
                )
            connection.execute(update(credit_grants).where(credit_grants.c.id == grant_id).values(status="active"))
            connection.execute(credit_ledger.insert().values(**row_values(funded_row(grant, at))))
            return self._one(connection, grant_id)

        return await asyncio.to_thread(self._tx, work)

    async def end(self, grant_id: str, kind: str, *, at: datetime) -> CreditGrant:
        def work(connection: Connection) -> CreditGrant:
            grant = self._one(connection, grant_id)
            changed = ended(grant, kind, at)
            if changed is None:
                return grant
            row = ending_row(grant, kind, _balance(connection, grant_id), at)
            if row is not None:
                connection.execute(credit_ledger.insert().values(**row_values(row)))
            connection.execute(
                update(credit_grants)
                .where(credit_grants.c.id == grant_id)
                .values(status=changed.status, voided_us=_us(changed.voided_at), expired_us=_us(changed.expired_at))
            )
            return changed

        return await asyncio.to_thread(self._tx, work)

    async def restore(self, invoice_id: str, *, at: datetime) -> list[CreditTransaction]:
        def work(connection: Connection) -> list[CreditTransaction]:
            consumed = [
                transaction_from_row(r)
                for r in connection.execute(
                    select(credit_ledger)
                    .where(credit_ledger.c.invoice_id == invoice_id, credit_ledger.c.kind == "consumed")
                    .order_by(credit_ledger.c.seq)
                )
            ]
            grants = _locked(connection, [r.grant_id for r in consumed], self._postgres) if consumed else {}
            made = []
            for row in consumed:
                grant = grants.get(row.grant_id)
                if grant is None or grant.status != "active":
                    continue
                back = restored_row(row, _balance(connection, row.grant_id), at)
                values = row_values(back) | {"once_key": f"{row.grant_id}:restored:{row.invoice_line_id}"}
                inserted = connection.execute(
                    self._insert(credit_ledger).values(**values).on_conflict_do_nothing().returning(credit_ledger.c.id)
                ).first()
                if inserted is not None:
                    made.append(back)
            return made

        return await asyncio.to_thread(self._tx, work)

    async def list_pending(self) -> list[CreditGrant]:
        query = select(credit_grants).where(credit_grants.c.status == "pending").order_by(credit_grants.c.created_us)
        return await asyncio.to_thread(self._read, lambda c: [grant_from_row(r) for r in c.execute(query)])

    @staticmethod
    def _rule(row: Any) -> RechargeRule:
        return RechargeRule(
            customer_id=row.customer_id,
            currency=row.currency,
            threshold_minor=int(row.threshold_minor),
            recharge_to_minor=None if row.recharge_to_minor is None else int(row.recharge_to_minor),
            amount_minor=None if row.amount_minor is None else int(row.amount_minor),
            armed=bool(row.armed),
            crossings=int(row.crossings),
        )

    async def get_recharge(self, customer_id: str) -> RechargeRule | None:
        def work(connection: Connection) -> RechargeRule | None:
            row = connection.execute(
                select(credit_recharge).where(credit_recharge.c.customer_id == customer_id)
            ).first()
            return None if row is None else self._rule(row)

        return await asyncio.to_thread(self._read, work)

    async def list_recharges(self) -> list[RechargeRule]:
        query = select(credit_recharge).order_by(credit_recharge.c.customer_id)
        return await asyncio.to_thread(self._read, lambda c: [self._rule(r) for r in c.execute(query)])

    async def set_recharge(self, rule: RechargeRule) -> RechargeRule:
        values = {
            "customer_id": rule.customer_id,
            "currency": rule.currency,
            "threshold_minor": rule.threshold_minor,
            "recharge_to_minor": rule.recharge_to_minor,
            "amount_minor": rule.amount_minor,
            "armed": 1,
            "crossings": 0,
        }

        def work(connection: Connection) -> RechargeRule:
            upsert = (
                self._insert(credit_recharge)
                .values(**values)
                .on_conflict_do_update(
                    index_elements=["customer_id"],
                    set_={k: v for k, v in values.items() if k not in ("customer_id", "crossings")},
                )
            )
            connection.execute(upsert)
            row = connection.execute(
                select(credit_recharge).where(credit_recharge.c.customer_id == rule.customer_id)
            ).one()
            return self._rule(row)

        return await asyncio.to_thread(self._tx, work)

    async def delete_recharge(self, customer_id: str) -> None:
        def work(connection: Connection) -> None:
            connection.execute(credit_recharge.delete().where(credit_recharge.c.customer_id == customer_id))

        await asyncio.to_thread(self._tx, work)

    async def disarm(self, customer_id: str) -> int | None:
        def work(connection: Connection) -> int | None:
            won = connection.execute(
                update(credit_recharge)
                .where(credit_recharge.c.customer_id == customer_id, credit_recharge.c.armed == 1)
                .values(armed=0, crossings=credit_recharge.c.crossings + 1)
                .returning(credit_recharge.c.crossings)
            ).first()
            return None if won is None else int(won[0])

        return await asyncio.to_thread(self._tx, work)

    async def arm(self, customer_id: str) -> None:
        def work(connection: Connection) -> None:
            connection.execute(
                update(credit_recharge)
                .where(credit_recharge.c.customer_id == customer_id, credit_recharge.c.armed == 0)
                .values(armed=1)
            )

        await asyncio.to_thread(self._tx, work)

    async def close(self) -> None:
        return None

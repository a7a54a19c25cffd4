"""SqlInvoiceStore: the InvoiceStore port on SQLite or PostgreSQL (blocking calls in threads).

Every write is one short transaction. Exactly-once rests on the database: the unique billing key
(`INSERT ... ON CONFLICT DO NOTHING`), the number series bumped by one upsert inside the issuing
transaction (its row lock serializes issuers on PostgreSQL; SQLite has one writer, taken up front with
BEGIN IMMEDIATE), and claims read with `FOR UPDATE SKIP LOCKED` on PostgreSQL so concurrent workers
take disjoint work without waiting on each other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, and_, delete, or_, select, update
from sqlalchemy.exc import IntegrityError

from tollway.adapters.memory.invoices import check_new, with_line_ids
from tollway.adapters.sql.credits import write_consumption_in
from tollway.adapters.sql.invoice_rows import invoice_from_row, invoice_values, line_from_row, line_values
from tollway.adapters.sql.schema import (
    billing_claims,
    invoice_lines,
    invoice_number_series,
    invoice_outbox,
    invoices,
    stripe_webhook_events,
)
from tollway.adapters.sql.transactions import Transactions
from tollway.billing.credits.model import CreditTransaction
from tollway.billing.invoicing.lifecycle import check_transition, invoice_number, number_series
from tollway.billing.invoicing.model import Invoice, InvoiceStatus
from tollway.billing.invoicing.ports import IssueRequest, OutboxItem
from tollway.clock import Clock
from tollway.errors import ConflictError, NotFoundError, UnavailableError, ValidationError
from tollway.ids import new_id
from tollway.metering.events import from_micros, to_micros

T = TypeVar("T")
CHUNK = 500  # ids per IN list
STAMPS = {"paid": "paid_us", "void": "voided_us", "uncollectible": "uncollectible_us"}


class SqlInvoiceStore:
    def __init__(self, engine: Engine, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock
        self._sql = Transactions(engine, "invoice store")
        self._postgres = self._sql.postgres
        self._insert, self._tx, self._read = self._sql.insert, self._sql.write, self._sql.read

    @property
    def engine(self) -> Engine:
        return self._engine

    async def _run(self, work: Callable[[], T]) -> T:
        return await asyncio.to_thread(work)

    # -- reads ----------------------------------------------------------------------------------

    @staticmethod
    def _load(connection: Connection, rows: Sequence[Any]) -> list[Invoice]:
        ids = [row.id for row in rows]
        lines: dict[str, list[Any]] = {invoice_id: [] for invoice_id in ids}
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            for line in connection.execute(
                select(invoice_lines)
                .where(invoice_lines.c.invoice_id.in_(chunk))
                .order_by(invoice_lines.c.invoice_id, invoice_lines.c.position)
            ):
                lines[line.invoice_id].append(line_from_row(line))
        return [invoice_from_row(row, tuple(lines[row.id])) for row in rows]

    def _one(self, connection: Connection, invoice_id: str, *, lock: bool = False) -> Invoice:
        query = select(invoices).where(invoices.c.id == invoice_id)
        if lock:
            query = query.with_for_update()
        row = connection.execute(query).first()
        if row is None:
            raise NotFoundError(f"invoice {invoice_id!r} not found", field="id")
        return self._load(connection, [row])[0]

    async def get_invoice(self, invoice_id: str) -> Invoice | None:
        def work(connection: Connection) -> Invoice | None:
            row = connection.execute(select(invoices).where(invoices.c.id == invoice_id)).first()
            return None if row is None else self._load(connection, [row])[0]

        return await self._run(lambda: self._read(work))

    async def get_invoice_by_key(self, billing_key: str) -> Invoice | None:
        def work(connection: Connection) -> Invoice | None:
            row = connection.execute(select(invoices).where(invoices.c.billing_key == billing_key)).first()
            return None if row is None else self._load(connection, [row])[0]

        return await self._run(lambda: self._read(work))

    async def list_invoices(
        self,
        *,
        customer_id: str | None = None,
        status: InvoiceStatus | None = None,
        subscription_id: str | None = None,
        period_end_from: datetime | None = None,
    ) -> list[Invoice]:
        query = select(invoices).order_by(invoices.c.created_us, invoices.c.id)
        if customer_id is not None:
            query = query.where(invoices.c.customer_id == customer_id)
        if status is not None:
            query = query.where(invoices.c.status == status)
        if subscription_id is not None:
            query = query.where(invoices.c.subscription_id == subscription_id)
        if period_end_from is not None:
            query = query.where(invoices.c.period_end_us >= to_micros(period_end_from))
        return await self._run(lambda: self._read(lambda c: self._load(c, c.execute(query).all())))

    async def existing_billing_keys(self, keys: Sequence[str]) -> set[str]:
        def work(connection: Connection) -> set[str]:
            found: set[str] = set()
            unique = list(dict.fromkeys(keys))
            for start in range(0, len(unique), CHUNK):
                chunk = unique[start : start + CHUNK]
                found.update(
                    connection.execute(select(invoices.c.billing_key).where(invoices.c.billing_key.in_(chunk)))
                    .scalars()
                    .all()
                )
            return found

        return await self._run(lambda: self._read(work))

    # -- writes ---------------------------------------------------------------------------------

    def _issue_in(self, connection: Connection, invoice: Invoice, issue: IssueRequest) -> Invoice:
        check_transition(invoice.id, invoice.status, "issued")
        series = number_series(issue.issued_at)
        bump = (
            self._insert(invoice_number_series)
            .values(series=series, last_number=1)
            .on_conflict_do_update(
                index_elements=["series"], set_={"last_number": invoice_number_series.c.last_number + 1}
            )
            .returning(invoice_number_series.c.last_number)
        )
        n = int(connection.execute(bump).scalar_one())
        issued = replace(
            invoice,
            status="issued",
            number=invoice_number(series, n),
            issued_at=issue.issued_at,
            due_at=issue.due_at,
            updated_at=issue.issued_at,
        )
        connection.execute(
            update(invoices)
            .where(invoices.c.id == invoice.id)
            .values(
                status="issued",
                number=issued.number,
                issued_us=to_micros(issue.issued_at),
                due_us=to_micros(issue.due_at),
                updated_us=to_micros(issue.issued_at),
            )
        )
        for kind in issue.enqueue:
            self._enqueue_in(connection, invoice.id, kind, issue.issued_at)
        return issued

    async def create_invoice(
        self, invoice: Invoice, *, issue: IssueRequest | None = None, ledger: Sequence[CreditTransaction] = ()
    ) -> Invoice | None:
        check_new(invoice)
        now = self._clock.now()
        stored = with_line_ids(replace(invoice, created_at=invoice.created_at or now, updated_at=now))

        def work(connection: Connection) -> Invoice | None:
            inserted = connection.execute(
                self._insert(invoices)
                .values(**invoice_values(stored))
                .on_conflict_do_nothing(index_elements=["billing_key"])
                .returning(invoices.c.id)
            ).first()
            if inserted is None:
                connection.rollback()
                return None
            if stored.lines:
                connection.execute(
                    invoice_lines.insert(),
                    [line_values(stored.id, n, line) for n, line in enumerate(stored.lines, start=1)],
                )
            connection.execute(delete(billing_claims).where(billing_claims.c.billing_key == stored.billing_key))
            write_consumption_in(connection, ledger, postgres=self._postgres)
            return self._issue_in(connection, stored, issue) if issue is not None else stored

        try:
            return await self._run(lambda: self._tx(work))
        except UnavailableError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                raise ConflictError(
                    f"invoice {invoice.id!r} (or one of its line ids) already exists", field="id"
                ) from exc
            raise

    async def issue_invoice(self, invoice_id: str, issue: IssueRequest) -> Invoice:
        def work(connection: Connection) -> Invoice:
            invoice = self._one(connection, invoice_id, lock=True)
            if invoice.status != "draft":
                raise ConflictError(f"invoice {invoice_id} is {invoice.status}: only a draft is issued", field="status")
            return self._issue_in(connection, invoice, issue)

        return await self._run(lambda: self._tx(work))

    async def set_status(
        self, invoice_id: str, status: InvoiceStatus, *, at: datetime, enqueue: Sequence[str] = ()
    ) -> Invoice:
        if status not in STAMPS:
            raise ValidationError(f"set_status cannot make an invoice {status}", field="status")

        def work(connection: Connection) -> Invoice:
            invoice = self._one(connection, invoice_id, lock=True)
            if not check_transition(invoice_id, invoice.status, status):
                return invoice
            connection.execute(
                update(invoices)
                .where(invoices.c.id == invoice_id)
                .values(status=status, updated_us=to_micros(at), **{STAMPS[status]: to_micros(at)})
            )
            for kind in enqueue:
                self._enqueue_in(connection, invoice_id, kind, at)
            return self._one(connection, invoice_id)

        return await self._run(lambda: self._tx(work))

    async def record_stripe_ids(
        self,
        invoice_id: str,
        *,
        stripe_invoice_id: str | None = None,
        stripe_status: str | None = None,
        line_item_ids: Mapping[str, str] | None = None,
    ) -> Invoice:
        def work(connection: Connection) -> Invoice:
            invoice = self._one(connection, invoice_id, lock=True)
            items = dict(line_item_ids or {})
            unknown = set(items) - {line.id for line in invoice.lines}
            if unknown:
                raise NotFoundError(f"invoice {invoice_id} has no line {sorted(unknown)[0]!r}", field="line_item_ids")
            values = {
                k: v
                for k, v in {"stripe_invoice_id": stripe_invoice_id, "stripe_status": stripe_status}.items()
                if v is not None
            }
            if values:
                connection.execute(update(invoices).where(invoices.c.id == invoice_id).values(**values))
            for line_id, item_id in items.items():
                connection.execute(
                    update(invoice_lines)
                    .where(and_(invoice_lines.c.invoice_id == invoice_id, invoice_lines.c.id == line_id))
                    .values(stripe_invoice_item_id=item_id)
                )
            return self._one(connection, invoice_id)

        return await self._run(lambda: self._tx(work))

    # -- claims ---------------------------------------------------------------------------------

    async def claim_billing_keys(self, keys: Sequence[str], *, owner: str, now: datetime, lease_s: float) -> list[str]:
        now_us = to_micros(now)
        until_us = to_micros(now + timedelta(seconds=lease_s))
        wanted = list(dict.fromkeys(keys))

        def work(connection: Connection) -> list[str]:
            claimed: list[str] = []
            for start in range(0, len(wanted), CHUNK):
                chunk = wanted[start : start + CHUNK]
                invoiced = set(
                    connection.execute(select(invoices.c.billing_key).where(invoices.c.billing_key.in_(chunk)))
                    .scalars()
                    .all()
                )
                fresh = [key for key in chunk if key not in invoiced]
                if not fresh:
                    continue
                connection.execute(
                    self._insert(billing_claims)
                    .values([{"billing_key": k, "owner": owner, "claimed_until_us": now_us - 1} for k in fresh])
                    .on_conflict_do_nothing(index_elements=["billing_key"])
                )
                free = (
                    connection.execute(
                        select(billing_claims.c.billing_key)
                        .where(
                            billing_claims.c.billing_key.in_(fresh),
                            or_(billing_claims.c.claimed_until_us < now_us, billing_claims.c.owner == owner),
                        )
                        .with_for_update(skip_locked=True)
                    )
                    .scalars()
                    .all()
                )
                if free:
                    connection.execute(
                        update(billing_claims)
                        .where(billing_claims.c.billing_key.in_(free))
                        .values(owner=owner, claimed_until_us=until_us)
                    )
                    taken = set(free)
                    claimed.extend(key for key in fresh if key in taken)
            return claimed

        return await self._run(lambda: self._tx(work))

    async def release_billing_claims(self, keys: Sequence[str], *, owner: str) -> None:
        unique = list(dict.fromkeys(keys))

        def work(connection: Connection) -> None:
            for start in range(0, len(unique), CHUNK):
                connection.execute(
                    delete(billing_claims).where(
                        billing_claims.c.billing_key.in_(unique[start : start + CHUNK]), billing_claims.c.owner == owner
                    )
                )

        await self._run(lambda: self._tx(work))

    async def release_claims_of(self, owner: str) -> None:
        await self._run(
            lambda: self._tx(lambda c: c.execute(delete(billing_claims).where(billing_claims.c.owner == owner)))
        )

    # -- outbox ---------------------------------------------------------------------------------

    def _enqueue_in(self, connection: Connection, invoice_id: str, kind: str, at: datetime) -> bool:
        at_us = to_micros(at)
        inserted = connection.execute(
            self._insert(invoice_outbox)
            .values(
                id=new_id(at),
                invoice_id=invoice_id,
                kind=kind,
                attempts=0,
                next_attempt_us=at_us,
                created_us=at_us,
            )
            .on_conflict_do_nothing(index_elements=["invoice_id", "kind"])
            .returning(invoice_outbox.c.id)
        ).first()
        return inserted is not None

    async def enqueue(self, invoice_id: str, kind: str, *, at: datetime) -> bool:
        def work(connection: Connection) -> bool:
            exists = connection.execute(select(invoices.c.id).where(invoices.c.id == invoice_id)).first()
            if exists is None:
                raise NotFoundError(f"invoice {invoice_id!r} not found", field="id")
            return self._enqueue_in(connection, invoice_id, kind, at)

        return await self._run(lambda: self._tx(work))

    @staticmethod
    def _item(row: Any) -> OutboxItem:
        return OutboxItem(
            id=row.id,
            invoice_id=row.invoice_id,
            kind=row.kind,
            attempts=int(row.attempts),
            next_attempt_at=from_micros(row.next_attempt_us),
            created_at=from_micros(row.created_us),
            last_error=row.last_error,
            done_at=None if row.done_us is None else from_micros(row.done_us),
        )

    async def claim_outbox(
        self, *, now: datetime, limit: int = 10, lease_s: float = 300.0, kinds: Sequence[str] | None = None
    ) -> list[OutboxItem]:
        now_us = to_micros(now)
        until_us = to_micros(now + timedelta(seconds=lease_s))

        def work(connection: Connection) -> list[OutboxItem]:
            query = (
                select(invoice_outbox)
                .where(invoice_outbox.c.done_us.is_(None), invoice_outbox.c.next_attempt_us <= now_us)
                .order_by(invoice_outbox.c.next_attempt_us, invoice_outbox.c.created_us, invoice_outbox.c.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            if kinds is not None:
                query = query.where(invoice_outbox.c.kind.in_(list(kinds)))
            rows = connection.execute(query).all()
            if not rows:
                return []
            connection.execute(
                update(invoice_outbox)
                .where(invoice_outbox.c.id.in_([row.id for row in rows]))
                .values(attempts=invoice_outbox.c.attempts + 1, next_attempt_us=until_us)
            )
            return [
                replace(self._item(row), attempts=int(row.attempts) + 1, next_attempt_at=from_micros(until_us))
                for row in rows
            ]

        return await self._run(lambda: self._tx(work))

    def _update_item(self, item_id: str, **values: Any) -> Callable[[Connection], None]:
        def work(connection: Connection) -> None:
            changed = connection.execute(
                update(invoice_outbox).where(invoice_outbox.c.id == item_id).values(**values)
            ).rowcount
            if not changed:
                raise NotFoundError(f"outbox item {item_id!r} not found", field="id")

        return work

    async def complete_outbox(self, item_id: str, *, at: datetime) -> None:
        await self._run(lambda: self._tx(self._update_item(item_id, done_us=to_micros(at), last_error=None)))

    async def release_outbox(self, item_ids: Sequence[str], *, at: datetime) -> None:
        ids = list(item_ids)

        def work(connection: Connection) -> None:
            for start in range(0, len(ids), CHUNK):
                connection.execute(
                    update(invoice_outbox)
                    .where(invoice_outbox.c.id.in_(ids[start : start + CHUNK]), invoice_outbox.c.done_us.is_(None))
                    .values(next_attempt_us=to_micros(at))
                )

        await self._run(lambda: self._tx(work))

    async def fail_outbox(self, item_id: str, *, error: str, next_attempt_at: datetime) -> None:
        work = self._update_item(item_id, last_error=error, next_attempt_us=to_micros(next_attempt_at))
        await self._run(lambda: self._tx(work))

    async def get_outbox(self, invoice_id: str) -> list[OutboxItem]:
        query = (
            select(invoice_outbox)
            .where(invoice_outbox.c.invoice_id == invoice_id)
            .order_by(invoice_outbox.c.created_us, invoice_outbox.c.id)
        )
        return await self._run(lambda: self._read(lambda c: [self._item(r) for r in c.execute(query)]))

    # -- webhooks -------------------------------------------------------------------------------

    async def record_webhook_event(self, event_id: str, *, received_at: datetime) -> bool:
        def work(connection: Connection) -> bool:
            inserted = connection.execute(
                self._insert(stripe_webhook_events)
                .values(event_id=event_id, received_us=to_micros(received_at))
                .on_conflict_do_nothing(index_elements=["event_id"])
                .returning(stripe_webhook_events.c.event_id)
            ).first()
            return inserted is not None

        return await self._run(lambda: self._tx(work))

    async def close(self) -> None:
        """The engine is shared with the other stores; whoever built it disposes of it."""
        return

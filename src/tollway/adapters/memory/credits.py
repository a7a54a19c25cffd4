"""MemoryCreditStore: the CreditStore port in memory (the contract suite holds it to the SQL adapter's rules).
Each method completes without awaiting, so calls on one event loop are atomic."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from tollway.billing.credits.model import CreditGrant, CreditTransaction, GrantBalance, RechargeRule
from tollway.billing.credits.ports import check_ledger
from tollway.errors import ConflictError, NotFoundError, ValidationError
from tollway.ids import new_id


def funded_row(grant: CreditGrant, at: datetime) -> CreditTransaction:
    return CreditTransaction(
        id=new_id(at),
        grant_id=grant.id,
        customer_id=grant.customer_id,
        kind="funded",
        amount_minor=grant.amount_minor,
        currency=grant.currency,
        balance_before_minor=0,
        balance_after_minor=grant.amount_minor,
        at=at,
    )


def ending_row(grant: CreditGrant, kind: str, balance: int, at: datetime) -> CreditTransaction | None:
    if balance <= 0:
        return None
    return CreditTransaction(
        id=new_id(at),
        grant_id=grant.id,
        customer_id=grant.customer_id,
        kind="voided" if kind == "voided" else "expired",
        amount_minor=-balance,
        currency=grant.currency,
        balance_before_minor=balance,
        balance_after_minor=0,
        at=at,
    )


def restored_row(consumed: CreditTransaction, balance: int, at: datetime) -> CreditTransaction:
    return CreditTransaction(
        id=new_id(at),
        grant_id=consumed.grant_id,
        customer_id=consumed.customer_id,
        kind="restored",
        amount_minor=-consumed.amount_minor,
        currency=consumed.currency,
        balance_before_minor=balance,
        balance_after_minor=balance - consumed.amount_minor,
        at=at,
        invoice_id=consumed.invoice_id,  # the voided invoice (its line stays on the consumed row)
    )


def ended(grant: CreditGrant, kind: str, at: datetime) -> CreditGrant | None:
    """The grant after `kind` (voided | expired); None when it already has that status. ConflictError else."""
    if kind not in ("voided", "expired"):
        raise ValidationError(f"a grant ends voided or expired, not {kind!r}", field="status")
    if grant.status == kind:
        return None
    if grant.status in ("voided", "expired"):
        raise ConflictError(f"credit grant {grant.id} is {grant.status}: it cannot become {kind}", field="status")
    if kind == "voided":
        return replace(grant, status="voided", voided_at=at)
    return replace(grant, status="expired", expired_at=at)


class MemoryCreditStore:
    def __init__(self) -> None:
        self._grants: dict[str, CreditGrant] = {}
        self._keys: dict[tuple[str, str], str] = {}
        self._ledger: list[CreditTransaction] = []
        self._recharges: dict[str, RechargeRule] = {}

    def _balance(self, grant_id: str) -> int:
        return sum(row.amount_minor for row in self._ledger if row.grant_id == grant_id)

    def _get(self, grant_id: str) -> CreditGrant:
        grant = self._grants.get(grant_id)
        if grant is None:
            raise NotFoundError(f"credit grant {grant_id!r} not found", field="id")
        return grant

    async def create_grant(self, grant: CreditGrant) -> tuple[CreditGrant, bool]:
        if grant.key is not None and (grant.customer_id, grant.key) in self._keys:
            return self._grants[self._keys[(grant.customer_id, grant.key)]], False
        if grant.id in self._grants:
            raise ConflictError(f"credit grant {grant.id!r} already exists", field="id")
        self._grants[grant.id] = grant
        if grant.key is not None:
            self._keys[(grant.customer_id, grant.key)] = grant.id
        if grant.status == "active":
            self._ledger.append(funded_row(grant, grant.created_at))
        return grant, True

    async def get_grant(self, grant_id: str) -> CreditGrant | None:
        return self._grants.get(grant_id)

    async def list_grants(self, customer_id: str) -> list[CreditGrant]:
        return [g for g in self._grants.values() if g.customer_id == customer_id]

    async def balances(self, customer_id: str) -> list[GrantBalance]:
        return [GrantBalance(g, self._balance(g.id)) for g in await self.list_grants(customer_id)]

    async def list_transactions(self, customer_id: str, *, grant_id: str | None = None) -> list[CreditTransaction]:
        return [
            row
            for row in self._ledger
            if row.customer_id == customer_id and (grant_id is None or row.grant_id == grant_id)
        ]

    async def expiring(self, before: datetime) -> list[CreditGrant]:
        return [
            g
            for g in self._grants.values()
            if g.status == "active" and g.expires_at is not None and g.expires_at <= before
        ]

    async def activate(self, grant_id: str, *, at: datetime) -> CreditGrant:
        grant = self._get(grant_id)
        if grant.status == "active":
            return grant
        if grant.status != "pending":
            raise ConflictError(f"credit grant {grant_id} is {grant.status}: it cannot become active", field="status")
        grant = self._grants[grant_id] = replace(grant, status="active")
        self._ledger.append(funded_row(grant, at))
        return grant

    async def end(self, grant_id: str, kind: str, *, at: datetime) -> CreditGrant:
        grant = self._get(grant_id)
        changed = ended(grant, kind, at)
        if changed is None:
            return grant
        row = ending_row(grant, kind, self._balance(grant_id), at)
        if row is not None:
            self._ledger.append(row)
        self._grants[grant_id] = changed
        return changed

    def write_consumption(self, rows: Sequence[CreditTransaction]) -> None:
        """Called by MemoryInvoiceStore.create_invoice (no await in between: atomic with the invoice)."""
        balances = {row.grant_id: self._balance(row.grant_id) for row in rows}
        for row in rows:
            grant = self._get(row.grant_id)
            if grant.status != "active":
                raise ConflictError(f"credit grant {grant.id} is {grant.status}", field="credits")
        check_ledger(rows, balances)
        self._ledger.extend(rows)

    async def restore(self, invoice_id: str, *, at: datetime) -> list[CreditTransaction]:
        done = {(r.grant_id, r.invoice_id) for r in self._ledger if r.kind == "restored"}
        made = []
        for row in [r for r in self._ledger if r.kind == "consumed" and r.invoice_id == invoice_id]:
            grant = self._grants.get(row.grant_id)
            if grant is None or grant.status != "active" or (row.grant_id, row.invoice_id) in done:
                continue
            made.append(restored_row(row, self._balance(row.grant_id), at))
            self._ledger.append(made[-1])
        return made

    async def list_pending(self) -> list[CreditGrant]:
        return [g for g in self._grants.values() if g.status == "pending"]

    async def get_recharge(self, customer_id: str) -> RechargeRule | None:
        return self._recharges.get(customer_id)

    async def list_recharges(self) -> list[RechargeRule]:
        return list(self._recharges.values())

    async def set_recharge(self, rule: RechargeRule) -> RechargeRule:
        old = self._recharges.get(rule.customer_id)
        stored = replace(rule, armed=True, crossings=old.crossings if old is not None else 0)
        self._recharges[rule.customer_id] = stored
        return stored

    async def delete_recharge(self, customer_id: str) -> None:
        self._recharges.pop(customer_id, None)

    async def disarm(self, customer_id: str) -> int | None:
        rule = self._recharges.get(customer_id)
        if rule is None or not rule.armed:
            return None
        self._recharges[customer_id] = replace(rule, armed=False, crossings=rule.crossings + 1)
        return rule.crossings + 1

    async def arm(self, customer_id: str) -> None:
        rule = self._recharges.get(customer_id)
        if rule is not None and not rule.armed:
            self._recharges[customer_id] = replace(rule, armed=True)

    async def close(self) -> None:
        return None

"""CreditStore: the storage port of money credits. Adapters: tollway.adapters.sql.credits (SQLite, PostgreSQL)
and tollway.adapters.memory.credits, held to the same rules by tests/contract/test_credit_store.py.

Invariants the store enforces:
- a grant's balance is the sum of its ledger rows, and never goes below zero;
- an idempotency key is unique per customer: a second grant with the same key stores nothing and the
  existing grant comes back;
- pending -> active writes the `funded` row once; void and expiry write their row once, with what was left;
- consumption is written by the invoice store in the transaction that stores the invoice
  (`InvoiceStore.create_invoice(..., ledger=...)`): each row's `balance_before_minor` must equal the grant's
  balance at that moment, or the whole invoice is refused (ConflictError) and nothing is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from tollway.billing.credits.model import CreditGrant, CreditTransaction, GrantBalance, RechargeRule
from tollway.errors import ConflictError


class CreditStore(Protocol):
    async def create_grant(self, grant: CreditGrant) -> tuple[CreditGrant, bool]:
        """Store the grant (with its `funded` row when it is created active). (existing, False) when the
        customer already has a grant with the same key."""
        ...

    async def get_grant(self, grant_id: str) -> CreditGrant | None: ...

    async def list_grants(self, customer_id: str) -> list[CreditGrant]:
        """Oldest first."""
        ...

    async def balances(self, customer_id: str) -> list[GrantBalance]:
        """Every grant of the customer with its ledger balance, oldest first."""
        ...

    async def list_transactions(self, customer_id: str, *, grant_id: str | None = None) -> list[CreditTransaction]:
        """Oldest first."""
        ...

    async def expiring(self, before: datetime) -> list[CreditGrant]:
        """Active grants whose expiry is at or before `before`."""
        ...

    async def activate(self, grant_id: str, *, at: datetime) -> CreditGrant:
        """pending -> active with its `funded` row; a no-op when already active. ConflictError when void or
        expired, NotFoundError when unknown."""
        ...

    async def end(self, grant_id: str, kind: str, *, at: datetime) -> CreditGrant:
        """`voided` or `expired`: the status changes and a row takes what was left (none when nothing was).
        A no-op when it already has that status; ConflictError when it ended the other way."""
        ...

    async def restore(self, invoice_id: str, *, at: datetime) -> list[CreditTransaction]:
        """The invoice was voided: each consumed row of it comes back to its grant as a `restored` row, once, to
        grants still active (an expired or voided grant keeps nothing)."""
        ...

    async def list_pending(self) -> list[CreditGrant]:
        """Grants waiting for their payment (status pending), oldest first."""
        ...

    async def get_recharge(self, customer_id: str) -> RechargeRule | None: ...

    async def list_recharges(self) -> list[RechargeRule]: ...

    async def set_recharge(self, rule: RechargeRule) -> RechargeRule:
        """Create or replace the customer's rule (armed, keeping its crossings count)."""
        ...

    async def delete_recharge(self, customer_id: str) -> None: ...

    async def disarm(self, customer_id: str) -> int | None:
        """Atomically: if armed, disarm and count one more crossing, answering its number; else None (another
        process, or an earlier call, took this crossing)."""
        ...

    async def arm(self, customer_id: str) -> None: ...

    async def close(self) -> None: ...


def check_ledger(rows: Sequence[CreditTransaction], balances: dict[str, int]) -> None:
    """Each consumed row must start from the grant's current balance (rows of one grant chained in order)
    and leave it at zero or above. Raises ConflictError; `balances` is updated as the rows apply."""
    for row in rows:
        current = balances.get(row.grant_id, 0)
        if row.balance_before_minor != current or row.balance_after_minor != current + row.amount_minor:
            raise ConflictError(
                f"credit grant {row.grant_id} changed while the invoice was made (balance {current}, "
                f"expected {row.balance_before_minor}): invoiced again next round",
                field="credits",
            )
        if row.balance_after_minor < 0:
            raise ConflictError(f"credit grant {row.grant_id} would go below zero", field="credits")
        balances[row.grant_id] = row.balance_after_minor

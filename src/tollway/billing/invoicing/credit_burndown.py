"""Burn-down (pure): which grants pay which invoice lines, and how much.

Order: priority (lower first), then earliest expiry (never-expiring last), then oldest (effective, then
created). Each grant pays, line by line in invoice order, the positive lines its features allow
(a grant without features pays every line; one with features pays only lines of those features) whose
service period ends by its expiry, as far as its balance goes. The credits applied never exceed the
invoice's subtotal (negative lines included), so the total due is never negative. Everything is integer
minor units: each ledger row is exact, and each grant's "credits applied" line is minus the sum of its rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import MAXYEAR, UTC, datetime

from tollway.billing.credits.model import (
    CREDIT_RATE_CARD,
    CreditGrant,
    CreditTransaction,
    GrantBalance,
    pays_line_ending,
)
from tollway.billing.invoicing.model import InvoiceLine
from tollway.ids import new_id
from tollway.money import from_minor_units

_NEVER = datetime(MAXYEAR, 12, 31, tzinfo=UTC)


@dataclass(frozen=True)
class Application:
    lines: tuple[InvoiceLine, ...]  # one "credits applied" line per grant that paid something
    transactions: tuple[CreditTransaction, ...]  # one consumed row per (grant, line paid)

    @property
    def applied_minor(self) -> int:
        return -sum(line.amount_minor for line in self.lines)


def burn_order(grant: CreditGrant) -> tuple[int, datetime, datetime, datetime, str]:
    return (grant.priority, grant.expires_at or _NEVER, grant.effective_at, grant.created_at, grant.id)


def usable(grant: CreditGrant, currency: str, at: datetime) -> bool:
    """Active, in the invoice's currency and effective by `at` (its expiry is judged per line)."""
    return grant.status == "active" and grant.currency == currency and grant.effective_at <= at


def apply_credits(
    lines: Sequence[InvoiceLine],
    grants: Sequence[GrantBalance],
    *,
    invoice_id: str,
    currency: str,
    at: datetime,
    period_start: datetime,
    period_end: datetime,
    first_position: int | None = None,
) -> Application:
    """The credits that pay `lines` (each with an id) of an invoice made at `at`. Credit lines get ids
    `{invoice_id}-{n}` from `first_position` (default: after the last line)."""
    remaining = {line.id: line.amount_minor for line in lines if line.kind != "credit" and line.amount_minor > 0}
    budget = max(0, sum(line.amount_minor for line in lines))
    position = (len(lines) + 1) if first_position is None else first_position
    credit_lines: list[InvoiceLine] = []
    rows: list[CreditTransaction] = []
    ordered = sorted(
        (g for g in grants if g.balance_minor > 0 and usable(g.grant, currency, at)), key=lambda g: burn_order(g.grant)
    )
    for entry in ordered:
        grant, balance = entry.grant, entry.balance_minor
        paid: dict[str, int] = {}
        for line in lines:
            if budget <= 0 or balance <= 0:
                break
            left = remaining.get(line.id, 0)
            if left <= 0 or not _allows(grant, line):
                continue
            take = min(left, balance, budget)
            rows.append(
                CreditTransaction(
                    id=new_id(at),
                    grant_id=grant.id,
                    customer_id=grant.customer_id,
                    kind="consumed",
                    amount_minor=-take,
                    currency=currency,
                    balance_before_minor=balance,
                    balance_after_minor=balance - take,
                    at=at,
                    invoice_id=invoice_id,
                    invoice_line_id=line.id,
                )
            )
            remaining[line.id] = left - take
            balance -= take
            budget -= take
            paid[line.id] = take
        if paid:
            total = sum(paid.values())
            credit_lines.append(
                InvoiceLine(
                    kind="credit",
                    rate_card_key=CREDIT_RATE_CARD,
                    description=f"Credits applied: {grant.name}",
                    period_start=period_start,
                    period_end=period_end,
                    amount=-from_minor_units(total, currency),
                    amount_minor=-total,
                    id=f"{invoice_id}-{position}",
                    metadata={"rating": "credits", "grant_id": grant.id, "paid_lines": paid},
                )
            )
            position += 1
    return Application(tuple(credit_lines), tuple(rows))


def _allows(grant: CreditGrant, line: InvoiceLine) -> bool:
    if not pays_line_ending(grant, line.period_end):
        return False
    return grant.features is None or (line.feature_key is not None and line.feature_key in grant.features)

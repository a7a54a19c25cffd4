"""Money credit grants and their ledger. Amounts are integer minor units of the grant's currency (a grant's
amount must be exact in that unit), so the ledger and the invoice's credit lines can never drift apart.

A grant's balance is the sum of its ledger rows: `funded` (+amount, when it becomes active), `consumed`
(-what it paid of one invoice line), `expired` and `voided` (-what was left), `restored` (+what a consumed
row took, when its invoice is voided)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

FundingMethod = Literal["none", "invoice", "external"]
GrantStatus = Literal["pending", "active", "expired", "voided"]
TransactionKind = Literal["funded", "consumed", "expired", "voided", "restored"]
FUNDING_METHODS: tuple[FundingMethod, ...] = ("none", "invoice", "external")
CREDIT_RATE_CARD = "credits"  # rate_card_key of a "credits applied" invoice line


@dataclass(frozen=True)
class CreditGrant:
    id: str
    customer_id: str
    name: str
    amount_minor: int  # the credit given, in minor units of `currency`
    currency: str
    funding_method: FundingMethod
    priority: int  # 1-255, lower pays first
    effective_at: datetime
    status: GrantStatus
    created_at: datetime
    expires_after: str | None = None  # ISO-8601 duration from effective_at
    expires_at: datetime | None = None
    key: str | None = None  # idempotency key, unique per customer
    features: tuple[str, ...] | None = None  # the features whose lines it may pay; None = every line
    price_minor: int | None = None  # what a bought grant costs (funding "invoice"); None = its amount
    invoice_id: str | None = None  # the top-up invoice of a bought grant
    metadata: dict[str, Any] = field(default_factory=dict)
    voided_at: datetime | None = None
    expired_at: datetime | None = None


@dataclass(frozen=True)
class CreditTransaction:
    id: str
    grant_id: str
    customer_id: str
    kind: TransactionKind
    amount_minor: int  # signed: funded > 0, the others < 0
    currency: str
    balance_before_minor: int  # the grant's balance before and after this row
    balance_after_minor: int
    at: datetime
    invoice_id: str | None = None  # consumed: the invoice and the line it paid
    invoice_line_id: str | None = None


@dataclass(frozen=True)
class RechargeRule:
    """Auto-recharge: when the live balance falls below `threshold_minor`, one top-up (a grant funded by
    invoice) of `amount_minor`, or up to `recharge_to_minor`; armed again once the balance is back at or above
    the threshold. `crossings` numbers the top-ups: the n-th has the grant key auto-recharge:<n>."""

    customer_id: str
    currency: str
    threshold_minor: int
    recharge_to_minor: int | None = None
    amount_minor: int | None = None
    armed: bool = True
    crossings: int = 0


@dataclass(frozen=True)
class GrantBalance:
    grant: CreditGrant
    balance_minor: int


def pays_line_ending(grant: CreditGrant, period_end: datetime) -> bool:
    """A grant pays usage whose service period ends at or before its expiry (usage invoiced after it expired,
    nothing)."""
    return grant.expires_at is None or period_end <= grant.expires_at

"""What the pages (and `GET /v1/usage`) read, each answered from meter rollups and bounded lists: usage by
model and type, entitlement balances, budgets with what is left. No page scans events (the Live view reads the
newest N request events by an index)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from tollway.billing.catalog import Catalog
from tollway.billing.credit_accounts.service import CreditBalance, CreditService
from tollway.billing.customers import Customer
from tollway.billing.subscriptions import Subscription
from tollway.errors import DomainError
from tollway.metering.aggregation import MeterQuery, QueryRow
from tollway.metering.service import MeteringService
from tollway.notifications.model import Event as NotificationEvent
from tollway.notifications.model import EventFilter
from tollway.notifications.service import NotificationService
from tollway.spend.budgets import Budget, BudgetStatus
from tollway.spend.budgets_service import BudgetService

BudgetStatusOf = Callable[[Budget], Awaitable[BudgetStatus]]


@dataclass(frozen=True)
class Bar:
    """A quantity toward its limit: an entitlement or a budget."""

    name: str
    used: Decimal
    limit: Decimal
    unit: str  # "tokens", a currency code, or a feature's unit
    hard: bool
    detail: str = ""
    remaining: Decimal | None = None

    @property
    def percent(self) -> int:
        """0-100 for the bar's width (past the limit: 100)."""
        if self.limit <= 0:
            return 100 if self.used > 0 else 0
        return int(min(Decimal(100), self.used * 100 / self.limit))

    @property
    def level(self) -> str:
        return "over" if self.percent >= 100 else "warn" if self.percent >= 80 else "ok"


@dataclass
class UsageTotals:
    """Tokens by type and by model over a range (and the rows they came from, for charts)."""

    by_type: dict[str, Decimal] = field(default_factory=dict)
    by_model: dict[str, Decimal] = field(default_factory=dict)
    rows: list[QueryRow] = field(default_factory=list)

    @property
    def total(self) -> Decimal:
        return sum(self.by_type.values(), Decimal(0))


def totals_of(rows: Sequence[QueryRow]) -> UsageTotals:
    totals = UsageTotals(rows=list(rows))
    for row in rows:
        kind = row.group_by.get("type") or "unknown"
        model = row.group_by.get("model") or "unknown"
        totals.by_type[kind] = totals.by_type.get(kind, Decimal(0)) + row.value
        totals.by_model[model] = totals.by_model.get(model, Decimal(0)) + row.value
    return totals


async def token_usage(
    metering: MeteringService,
    query: MeterQuery,
    *,
    customer: str | None = None,
) -> UsageTotals:
    """llm_tokens grouped by type and model (windows as the query asks), narrowed to a customer's subjects."""
    grouped = MeterQuery(
        start=query.start,
        end=query.end,
        window_size=query.window_size,
        window_tz=query.window_tz,
        subjects=query.subjects,
        group_by=("type", "model"),
    )
    if customer is not None:
        return totals_of(await metering.query("llm_tokens", grouped, customer=customer))
    if grouped.subjects == ():
        return UsageTotals()
    return totals_of(await metering.query("llm_tokens", grouped))


def active_subscription(subscriptions: Sequence[Subscription], at: datetime) -> Subscription | None:
    for subscription in subscriptions:
        if subscription.active_from <= at and (subscription.active_to is None or at < subscription.active_to):
            return subscription
    return None


async def entitlement_bars(catalog: Catalog, customer: Customer, at: datetime) -> list[Bar]:
    """The metered entitlements of the customer's current plan, each as used / limit."""
    subscription = active_subscription(await catalog.subscriptions.subscriptions(customer=customer.key), at)
    if subscription is None:
        return []
    plan = await catalog.plans.plan(subscription.plan_id)
    cards = [
        card
        for phase in plan.phases
        for card in phase.rate_cards
        if card.entitlement is not None and card.entitlement.type == "metered" and card.feature_key
    ]
    values = await asyncio.gather(
        *(catalog.entitlements.entitlement_value(customer.key, card.feature_key or "", at) for card in cards),
        return_exceptions=True,
    )
    bars = []
    for card, value in zip(cards, values, strict=True):
        if isinstance(value, BaseException) or card.entitlement is None:
            continue
        limit = card.entitlement.limit or Decimal(0)
        bars.append(
            Bar(
                name=card.feature_key or card.key,
                used=value.usage or Decimal(0),
                limit=limit,
                unit="units",
                hard=card.entitlement.hard,
                detail="hard limit: calls past it are refused" if card.entitlement.hard else "soft limit",
                remaining=value.balance,
            )
        )
    return bars


async def budget_bars(
    budgets: BudgetService | None,
    status_of: BudgetStatusOf | None,
    *,
    customers: Sequence[str] = (),
    consumers: Sequence[str] = (),
    key_ids: Sequence[str] = (),
) -> list[Bar]:
    """The budgets on these customers, consumers and keys, each with what its window used and has left."""
    if budgets is None or status_of is None:
        return []
    wanted = {("customer", c) for c in customers} | {("consumer", c) for c in consumers}
    wanted |= {("key", k) for k in key_ids}
    chosen = [b for b in await budgets.all() if (b.scope, b.target) in wanted]
    bars = []
    for budget in chosen:
        try:
            status = await status_of(budget)
        except DomainError:
            continue
        unit = (status.currency or "USD") if budget.kind == "money" else "tokens"
        resets = f", resets {status.resets_at:%Y-%m-%d %H:%M} UTC" if status.resets_at else ""
        bars.append(
            Bar(
                name=budget.name or budget.key,
                used=status.used + status.reserved,
                limit=budget.limit,
                unit=unit,
                hard=budget.hard,
                detail=f"{budget.scope} {budget.target}, per {budget.window.replace('_', ' ')}{resets}",
                remaining=status.remaining,
            )
        )
    return bars


async def credit_balance(credits: CreditService | None, customer: Customer) -> CreditBalance | None:
    """The customer's money credits (live, settled, pending) when it has any grant; None otherwise."""
    if credits is None:
        return None
    try:
        balance = await credits.balance(customer.key)
    except DomainError:
        return None
    return balance if balance.grants or balance.pending_minor else None


async def recent_notifications(
    notifications: NotificationService | None, customer: Customer, limit: int = 10
) -> list[NotificationEvent] | None:
    """The newest webhook events about the customer or its subjects; None where notifications are off."""
    if notifications is None:
        return None
    subjects = tuple(dict.fromkeys((customer.key, *customer.subjects)))
    return await notifications.events(EventFilter(subject_keys=subjects, limit=limit))

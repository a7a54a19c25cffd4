"""A budget's current window and its metered use, off the request path (for alerts: the notification worker).

`budget_limit` is the one place a budget becomes a `Governed` outside a call: the admission's budget status and
the alerts both use it, so the window, the subjects counted and the pricing are the gateway's own. `used` here is
the metered usage of the window (`Governed.metered`: what counters are seeded and reconciled from), read from
the event store: usage counts once it is stored, whichever process served the calls.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from tollway.clock import Clock
from tollway.errors import UnavailableError
from tollway.spend.budgets import Budget
from tollway.spend.limits import Governed, LimitsBuilder, PricedFeature
from tollway.spend.rules import SpendRules
from tollway.spend.usage import UsageReader
from tollway.spend.windows import Window


@dataclass(frozen=True)
class BudgetReading:
    budget: Budget
    used: Decimal  # metered use in the window (money in `currency`, or tokens)
    window: Window
    currency: str | None  # money budgets: the customer's plan currency, else USD; tokens: None

    @property
    def remaining(self) -> Decimal:
        return max(self.budget.limit - self.used, Decimal(0))


def budget_limit(limits: LimitsBuilder, rules: SpendRules, budget: Budget, now: datetime) -> tuple[Governed, str]:
    """The budget as a limit at `now` (its window, what it counts and how), and its currency (money budgets)."""
    if budget.scope == "customer":
        customer = next((c for c in rules.by_subject.values() if c.customer.key == budget.target), None)
        subjects: tuple[str, ...] = customer.customer.subjects if customer is not None else ()
    else:
        customer = rules.by_subject.get(budget.target)
        subjects = (budget.target,)
    subscription = rules.subscription_at(customer, now) if customer is not None else None
    customer_subjects = customer.customer.subjects if customer is not None else subjects
    priced: list[PricedFeature] = []
    currency = "USD"
    if subscription is not None:
        currency = rules.plans[subscription.plan_id].currency
        if budget.kind == "money":
            priced = limits.priced_features(rules, subscription, now)
    if rules.tokens is None or rules.provider_cost is None:
        raise UnavailableError("the built-in meters are not loaded yet")
    governed = limits.budget(
        budget,
        subjects,
        "",
        subscription,
        customer_subjects,
        priced,
        {},
        rules.tokens,
        rules.provider_cost,
        [],
        now,
    )
    return governed, currency


class BudgetUsage:
    """Every budget's metered use in its current window, from the current rules snapshot."""

    def __init__(self, rules: Callable[[], SpendRules], usage: UsageReader, clock: Clock) -> None:
        self._rules = rules
        self._limits = LimitsBuilder(usage)
        self._clock = clock

    async def readings(self) -> list[BudgetReading]:
        rules, now = self._rules(), self._clock.now()
        if rules.tokens is None or rules.provider_cost is None:
            return []
        budgets = [b for found in (*rules.customer_budgets.values(), *rules.consumer_budgets.values()) for b in found]
        found: list[BudgetReading] = []
        for budget in sorted(budgets, key=lambda b: b.key):
            governed, currency = budget_limit(self._limits, rules, budget, now)
            used = await governed.metered(now)
            found.append(BudgetReading(budget, used, governed.window, currency if budget.kind == "money" else None))
        return found

"""Which budgets and rate limits apply to a caller (its subject, API key and model), worked out once per rules
snapshot rather than per call: the gateway's hot path reads them from a dict."""

from __future__ import annotations

from dataclasses import dataclass

from tollway.spend.budgets import Budget
from tollway.spend.hold import prepaid_budget
from tollway.spend.rate_limits import RateLimit
from tollway.spend.rules import CustomerRules, SpendRules

Rated = tuple[RateLimit, str, str]  # a rate limit, the entity it counts, how a refusal names that entity


@dataclass(frozen=True, slots=True)
class Selection:
    customer: CustomerRules | None
    budgets: tuple[Budget, ...]  # the customer's (prepaid credits first), the consumer's and the key's
    budgeted: bool  # a budget of its own (not only prepaid credits) applies
    rates: tuple[Rated, ...]


def select(rules: SpendRules, subject: str, key_id: str | None, model: str | None) -> Selection:
    customer = rules.by_subject.get(subject)
    budgets = rules.consumer_budgets.get(subject, ())
    if key_id is not None:
        budgets = budgets + rules.key_budgets.get(key_id, ())
    if customer is not None:
        budgets = rules.customer_budgets.get(customer.customer.key, ()) + budgets
    budgeted = bool(budgets)
    if customer is not None:
        balance = rules.credits.get(customer.customer.key)
        if balance is not None:  # prepaid-only: the open period's spend may not pass the credit balance
            budgets = (prepaid_budget(customer.customer.key, balance), *budgets)
    rates: list[Rated] = []
    if rules.rate_limits:
        rates += [(rate, subject, f"consumer '{subject}'") for rate in rules.rates_for("consumer", subject)]
        if key_id is not None:
            rates += [(rate, key_id, f"API key '{key_id}'") for rate in rules.rates_for("key", key_id)]
        if customer is not None:
            key = customer.customer.key
            rates += [(rate, key, f"customer '{key}'") for rate in rules.rates_for("customer", key)]
        if model is not None:
            rates += [(rate, model, f"model '{model}'") for rate in rules.rates_for("model", model)]
    return Selection(customer, budgets, budgeted, tuple(rates))


class Selections:
    """`select` memoised per rules snapshot (a new snapshot starts afresh)."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self._rules: SpendRules | None = None
        self._found: dict[tuple[str, str | None, str | None], Selection] = {}
        self._max = max_entries

    def of(self, rules: SpendRules, subject: str, key_id: str | None, model: str | None) -> Selection:
        if rules is not self._rules:
            self._rules, self._found = rules, {}
        found = self._found.get((subject, key_id, model))
        if found is None:
            found = select(rules, subject, key_id, model)
            if len(self._found) >= self._max:
                self._found.clear()
            self._found[(subject, key_id, model)] = found
        return found

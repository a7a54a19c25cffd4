"""Budgets and rate limits in memory: the fake of the BudgetStore and RateLimitStore ports."""

from __future__ import annotations

from dataclasses import replace

from tollway.errors import ConflictError, NotFoundError
from tollway.spend.budgets import Budget
from tollway.spend.rate_limits import RateLimit


class MemoryBudgetStore:
    def __init__(self) -> None:
        self._budgets: dict[str, Budget] = {}
        self._rates: dict[str, RateLimit] = {}
        self._version = 0

    async def insert_budget(self, budget: Budget) -> None:
        if budget.id in self._budgets:
            raise ConflictError(f"budget id {budget.id!r} exists", field="id")
        if any(b.key == budget.key for b in self._budgets.values()):
            raise ConflictError(f"budget {budget.key!r} already exists", field="key")
        self._budgets[budget.id] = replace(budget)
        self._version += 1

    async def update_budget(self, budget: Budget) -> None:
        if budget.id not in self._budgets:
            raise NotFoundError(f"budget {budget.id!r} not found", field="budget")
        if any(b.key == budget.key and b.id != budget.id for b in self._budgets.values()):
            raise ConflictError(f"budget {budget.key!r} already exists", field="key")
        self._budgets[budget.id] = budget
        self._version += 1

    async def delete_budget(self, budget_id: str) -> bool:
        found = self._budgets.pop(budget_id, None) is not None
        self._version += found
        return found

    async def get_budget(self, id_or_key: str) -> Budget | None:
        return self._budgets.get(id_or_key) or next((b for b in self._budgets.values() if b.key == id_or_key), None)

    async def list_budgets(self) -> list[Budget]:
        return sorted(self._budgets.values(), key=lambda b: b.key)

    async def budgets_version(self) -> int:
        return self._version

    async def insert_rate_limit(self, limit: RateLimit) -> None:
        if any(r.key == limit.key for r in self._rates.values()):
            raise ConflictError(f"rate limit {limit.key!r} already exists", field="key")
        self._rates[limit.id] = limit
        self._version += 1

    async def update_rate_limit(self, limit: RateLimit) -> None:
        if limit.id not in self._rates:
            raise NotFoundError(f"rate limit {limit.id!r} not found", field="rate_limit")
        if any(r.key == limit.key and r.id != limit.id for r in self._rates.values()):
            raise ConflictError(f"rate limit {limit.key!r} already exists", field="key")
        self._rates[limit.id] = limit
        self._version += 1

    async def delete_rate_limit(self, limit_id: str) -> bool:
        found = self._rates.pop(limit_id, None) is not None
        self._version += found
        return found

    async def get_rate_limit(self, id_or_key: str) -> RateLimit | None:
        return self._rates.get(id_or_key) or next((r for r in self._rates.values() if r.key == id_or_key), None)

    async def list_rate_limits(self) -> list[RateLimit]:
        return sorted(self._rates.values(), key=lambda r: r.key)

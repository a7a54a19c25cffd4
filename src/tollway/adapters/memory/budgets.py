"""Budgets in memory: the fake of the BudgetStore port."""

from __future__ import annotations

from dataclasses import replace

from tollway.errors import ConflictError, NotFoundError
from tollway.spend.budgets import Budget


class MemoryBudgetStore:
    def __init__(self) -> None:
        self._budgets: dict[str, Budget] = {}
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

"""Budget use cases: create, list, read (with what is used, held and left now), update, delete."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any

from tollway.clock import Clock
from tollway.errors import NotFoundError, ValidationError
from tollway.ids import new_id
from tollway.spend.budgets import Budget, check_budget
from tollway.spend.config_sync import sync_config_rules
from tollway.spend.ports import SpendLimitStore
from tollway.spend.rate_limits_service import RateLimitService

CHANGEABLE = (
    "scope",
    "target",
    "kind",
    "limit",
    "window",
    "hard",
    "name",
    "on_exceeded",
    "route_to",
    "on_redis_failure",
)


class BudgetService:
    def __init__(self, store: SpendLimitStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self.rate_limits = RateLimitService(store, clock)  # kept in the same store, under the same version

    @property
    def store(self) -> SpendLimitStore:
        return self._store

    async def create(self, **fields: Any) -> Budget:
        now = self._clock.now()
        budget = check_budget(
            Budget(
                id=new_id(now),
                key=fields.get("key"),  # type: ignore[arg-type]
                scope=fields.get("scope"),  # type: ignore[arg-type]
                target=fields.get("target"),  # type: ignore[arg-type]
                kind=fields.get("kind"),  # type: ignore[arg-type]
                limit=fields.get("limit"),  # type: ignore[arg-type]
                window=fields.get("window", "billing_period"),
                hard=_boolean(fields.get("hard", True)),
                on_exceeded=fields.get("on_exceeded", "refuse"),
                route_to=fields.get("route_to"),
                on_redis_failure=fields.get("on_redis_failure"),
                name=str(fields.get("name") or ""),
                managed_by=str(fields.get("managed_by") or "api"),
                created_at=now,
                updated_at=now,
            )
        )
        budget = replace(budget, limit=Decimal(str(budget.limit)))
        await self._store.insert_budget(budget)
        return budget

    async def get(self, id_or_key: str) -> Budget:
        found = await self._store.get_budget(id_or_key)
        if found is None:
            raise NotFoundError(f"budget {id_or_key!r} not found", field="budget")
        return found

    async def all(self) -> list[Budget]:
        return await self._store.list_budgets()

    async def update(self, id_or_key: str, **changes: Any) -> Budget:
        budget = await self.get(id_or_key)
        unknown = sorted(set(changes) - set(CHANGEABLE))
        if unknown:
            raise ValidationError(f"{unknown[0]} cannot be changed", field=unknown[0])
        if "hard" in changes:
            changes["hard"] = _boolean(changes["hard"])
        if "name" in changes:
            changes["name"] = str(changes["name"] or "")
        changed = check_budget(replace(budget, **changes, updated_at=self._clock.now()))
        changed = replace(changed, limit=Decimal(str(changed.limit)))
        await self._store.update_budget(changed)
        return changed

    async def delete(self, id_or_key: str) -> None:
        budget = await self.get(id_or_key)
        await self._store.delete_budget(budget.id)

    async def sync_config(self, desired: Sequence[Budget]) -> list[str]:
        """Make the config file's budgets (managed_by config) what `desired` says (`sync_config_rules`)."""
        return await sync_config_rules(
            "budget",
            desired,
            await self._store.list_budgets(),
            fields=_fields,
            create=lambda wanted: self.create(**_fields(wanted), key=wanted.key, managed_by="config"),
            update=lambda found, wanted: self.update(found.id, **_fields(wanted)),
            delete=lambda found: self._store.delete_budget(found.id),
        )


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValidationError("hard must be true or false", field="hard")
    return value


def _fields(budget: Budget) -> dict[str, Any]:
    return {name: getattr(budget, name) for name in CHANGEABLE}

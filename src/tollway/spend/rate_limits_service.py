"""Rate limit use cases: create, list, read, update, delete; and the config file's `rate_limits:` applied."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any

from tollway.clock import Clock
from tollway.errors import ConflictError, NotFoundError, ValidationError
from tollway.ids import new_id
from tollway.spend.ports import RateLimitStore
from tollway.spend.rate_limits import RateLimit, check_rate_limit

CHANGEABLE = ("scope", "target", "metric", "limit", "window", "name")


class RateLimitService:
    def __init__(self, store: RateLimitStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def create(self, **fields: Any) -> RateLimit:
        now = self._clock.now()
        metric = fields.get("metric")
        limit = check_rate_limit(
            RateLimit(
                id=new_id(now),
                key=fields.get("key"),  # type: ignore[arg-type]
                scope=fields.get("scope"),  # type: ignore[arg-type]
                target=fields.get("target"),  # type: ignore[arg-type]
                metric=metric,  # type: ignore[arg-type]
                limit=fields.get("limit"),  # type: ignore[arg-type]
                window=fields.get("window", None if metric == "in_flight" else "minute"),
                name=str(fields.get("name") or ""),
                managed_by=str(fields.get("managed_by") or "api"),
                created_at=now,
                updated_at=now,
            )
        )
        limit = replace(limit, limit=Decimal(str(limit.limit)))
        await self._store.insert_rate_limit(limit)
        return limit

    async def get(self, id_or_key: str) -> RateLimit:
        found = await self._store.get_rate_limit(id_or_key)
        if found is None:
            raise NotFoundError(f"rate limit {id_or_key!r} not found", field="rate_limit")
        return found

    async def all(self) -> list[RateLimit]:
        return await self._store.list_rate_limits()

    async def update(self, id_or_key: str, **changes: Any) -> RateLimit:
        limit = await self.get(id_or_key)
        unknown = sorted(set(changes) - set(CHANGEABLE))
        if unknown:
            raise ValidationError(f"{unknown[0]} cannot be changed", field=unknown[0])
        if "name" in changes:
            changes["name"] = str(changes["name"] or "")
        if changes.get("metric") == "in_flight" and "window" not in changes:
            changes["window"] = None
        changed = check_rate_limit(replace(limit, **changes, updated_at=self._clock.now()))
        changed = replace(changed, limit=Decimal(str(changed.limit)))
        await self._store.update_rate_limit(changed)
        return changed

    async def delete(self, id_or_key: str) -> None:
        limit = await self.get(id_or_key)
        await self._store.delete_rate_limit(limit.id)

    async def sync_config(self, desired: Sequence[RateLimit]) -> list[str]:
        """Make the config file's rate limits (managed_by config) what `desired` says; those made through the API
        are left alone (a key the API already uses is a conflict). One line per change."""
        stored = {limit.key: limit for limit in await self._store.list_rate_limits()}
        lines: list[str] = []
        wanted = {limit.key for limit in desired}
        for limit in desired:
            found = stored.get(limit.key)
            if found is None:
                await self.create(**_fields(limit), key=limit.key, managed_by="config")
                lines.append(f"+ rate limit {limit.key}")
            elif found.managed_by != "config":
                raise ConflictError(f"rate limit {limit.key!r} exists and was made through the API", field="key")
            elif _fields(found) != _fields(limit):
                await self.update(found.id, **_fields(limit))
                lines.append(f"~ rate limit {limit.key}")
        for limit in stored.values():
            if limit.managed_by == "config" and limit.key not in wanted:
                await self._store.delete_rate_limit(limit.id)
                lines.append(f"- rate limit {limit.key}")
        return lines


def _fields(limit: RateLimit) -> dict[str, Any]:
    return {name: getattr(limit, name) for name in CHANGEABLE}

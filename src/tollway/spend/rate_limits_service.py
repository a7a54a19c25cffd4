"""Rate limit use cases: create, list, read, update, delete; and the config file's `rate_limits:` applied."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any

from tollway.clock import Clock
from tollway.errors import NotFoundError, ValidationError
from tollway.ids import new_id
from tollway.spend.config_sync import sync_config_rules
from tollway.spend.ports import RateLimitStore
from tollway.spend.rate_limits import RateLimit, check_rate_limit

CHANGEABLE = ("scope", "target", "metric", "limit", "window", "name", "on_redis_failure")


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
                on_redis_failure=fields.get("on_redis_failure"),
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
        """Make the config file's rate limits (managed_by config) what `desired` says (`sync_config_rules`)."""
        return await sync_config_rules(
            "rate limit",
            desired,
            await self._store.list_rate_limits(),
            fields=_fields,
            create=lambda wanted: self.create(**_fields(wanted), key=wanted.key, managed_by="config"),
            update=lambda found, wanted: self.update(found.id, **_fields(wanted)),
            delete=lambda found: self._store.delete_rate_limit(found.id),
        )


def _fields(limit: RateLimit) -> dict[str, Any]:
    return {name: getattr(limit, name) for name in CHANGEABLE}

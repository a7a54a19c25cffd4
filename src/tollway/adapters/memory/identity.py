"""MemoryIdentityStore: the IdentityStore port in memory, with the same rules as the SQL adapter."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import replace
from datetime import date, datetime

from tollway.errors import ConflictError, NotFoundError, UnavailableError
from tollway.identity.consumers import Consumer
from tollway.identity.keys import ApiKey
from tollway.identity.ports import IdentitySnapshot, SyncResult
from tollway.identity.sync import plan_sync


class MemoryIdentityStore:
    def __init__(self) -> None:
        self._consumers: dict[str, Consumer] = {}
        self._keys: dict[str, ApiKey] = {}
        self._version = 0
        self.available = True
        self.snapshots_read = 0

    def _check(self) -> None:
        if not self.available:
            raise UnavailableError("memory identity store set unavailable")

    def _bump(self) -> None:
        self._version += 1

    async def version(self) -> int:
        self._check()
        return self._version

    async def snapshot(self, now: datetime) -> IdentitySnapshot:
        self._check()
        self.snapshots_read += 1
        return IdentitySnapshot(
            version=self._version,
            consumers=sorted(self._consumers.values(), key=lambda c: c.username),
            keys=[k for k in self._ordered_keys() if k.active_at(now)],
        )

    async def insert_consumer(self, consumer: Consumer) -> None:
        self._check()
        if consumer.username in self._consumers:
            raise ConflictError(f"consumer {consumer.username!r} already exists", field="username")
        self._drop_keys(consumer.username)
        self._consumers[consumer.username] = consumer
        self._bump()

    async def update_consumer(self, consumer: Consumer) -> None:
        self._check()
        if consumer.username not in self._consumers:
            raise NotFoundError(f"consumer {consumer.username!r} not found", field="username")
        kept = self._consumers[consumer.username]
        self._consumers[consumer.username] = replace(consumer, created_at=kept.created_at)
        self._bump()

    async def delete_consumer(self, username: str) -> bool:
        self._check()
        if self._consumers.pop(username, None) is None:
            return False
        self._drop_keys(username)
        self._bump()
        return True

    def _drop_keys(self, username: str) -> None:
        for key in [k for k in self._keys.values() if k.username == username]:
            del self._keys[key.id]

    async def get_consumer(self, username: str) -> Consumer | None:
        self._check()
        return self._consumers.get(username)

    async def list_consumers(self) -> list[Consumer]:
        self._check()
        return sorted(self._consumers.values(), key=lambda c: c.username)

    async def sync_config_consumers(self, consumers: Sequence[Consumer], at: datetime) -> SyncResult:
        self._check()
        plan = plan_sync(list(self._consumers.values()), consumers, at)
        for consumer in (*plan.insert, *plan.update):
            self._consumers[consumer.username] = consumer
        for username in plan.remove:  # their keys stay as they are (see the port)
            del self._consumers[username]
        result = SyncResult(
            created=tuple(c.username for c in plan.insert),
            updated=tuple(c.username for c in plan.update),
            removed=plan.remove,
        )
        if result.changed:
            self._bump()
        return result

    async def insert_key(self, key: ApiKey) -> None:
        self._check()
        if key.username not in self._consumers:
            raise NotFoundError(f"consumer {key.username!r} not found", field="username")
        if key.id in self._keys:
            raise ConflictError(f"key {key.id!r} already exists", field="id")
        if any(k.digest == key.digest for k in self._keys.values()):
            raise ConflictError("this key is already in use", field="key")
        self._keys[key.id] = key
        self._bump()

    async def get_key(self, key_id: str) -> ApiKey | None:
        self._check()
        return self._keys.get(key_id)

    def _ordered_keys(self) -> list[ApiKey]:
        return sorted(self._keys.values(), key=lambda k: (k.created_at, k.id))

    async def list_keys(self, username: str | None = None) -> list[ApiKey]:
        self._check()
        return [k for k in self._ordered_keys() if username is None or k.username == username]

    async def revoke_key(self, key_id: str, at: datetime) -> ApiKey | None:
        self._check()
        key = self._keys.get(key_id)
        if key is None:
            return None
        if key.revoked_at is None:
            key = self._keys[key_id] = replace(key, revoked_at=at)
            self._bump()
        return key

    async def record_key_use(self, key_ids: Collection[str], day: date) -> int:
        self._check()
        changed = 0
        for key_id in key_ids:
            key = self._keys.get(key_id)
            if key is not None and (key.last_used_day is None or key.last_used_day < day):
                self._keys[key_id] = replace(key, last_used_day=day)
                changed += 1
        return changed

    async def close(self) -> None:
        return None

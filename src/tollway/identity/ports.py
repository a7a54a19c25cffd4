"""The storage port identity depends on. Adapters: tollway.adapters.sql.identity (SQLite, PostgreSQL) and
tollway.adapters.memory.identity (the fake the contract suite holds to the same rules)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

from tollway.identity.consumers import Consumer
from tollway.identity.keys import ApiKey


@dataclass(frozen=True)
class IdentitySnapshot:
    """Every consumer and every key usable at the time of the read, with the version they were read at
    (or a later one: the rows are read after the version, so a change in between is seen again)."""

    version: int
    consumers: Sequence[Consumer]
    keys: Sequence[ApiKey]


@dataclass(frozen=True)
class SyncResult:
    created: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.removed)


class IdentityStore(Protocol):
    """Consumers and their keys. Every change to either bumps one version counter in the same transaction,
    so gateways notice it by reading one number. Recording the day a key was used changes no version."""

    async def version(self) -> int: ...
    async def snapshot(self, now: datetime) -> IdentitySnapshot:
        """The version, then every consumer and every key neither revoked nor expired at `now`."""
        ...

    # -- consumers: username unique
    async def insert_consumer(self, consumer: Consumer) -> None:
        """ConflictError (field username) when the username exists. Keys left under the username (by a consumer
        a config reload removed) are deleted in the same change: a new consumer starts with no keys."""
        ...

    async def update_consumer(self, consumer: Consumer) -> None:
        """Replace models, metadata, managed_by and updated_at. NotFoundError when absent."""
        ...

    async def delete_consumer(self, username: str) -> bool:
        """Remove the consumer and its keys (they stop working, and a consumer created later under the same
        username does not inherit them). False when absent."""
        ...

    async def get_consumer(self, username: str) -> Consumer | None: ...
    async def list_consumers(self) -> list[Consumer]:
        """Ordered by username."""
        ...

    async def sync_config_consumers(self, consumers: Sequence[Consumer], at: datetime) -> SyncResult:
        """In one transaction: make the config-managed consumers exactly `consumers` (created, updated where
        models or metadata differ, taken over when an api-managed one has the name); config-managed ones
        not listed are deleted, their keys left as they are: never revoked, unusable while the consumer is
        absent, and usable again when the file lists it again. The version moves only when something changed."""
        ...

    # -- keys: id unique, digest unique
    async def insert_key(self, key: ApiKey) -> None:
        """NotFoundError (field username) when the consumer does not exist; ConflictError on a digest in use."""
        ...

    async def get_key(self, key_id: str) -> ApiKey | None: ...
    async def list_keys(self, username: str | None = None) -> list[ApiKey]:
        """Revoked ones included, ordered by creation (then id)."""
        ...

    async def revoke_key(self, key_id: str, at: datetime) -> ApiKey | None:
        """Set `revoked_at` unless already set (idempotent; the first revocation time stays). None when absent."""
        ...

    async def record_key_use(self, key_ids: Collection[str], day: date) -> int:
        """Set `last_used_day` to `day` where it is earlier or unset. Returns the keys changed."""
        ...

    async def close(self) -> None: ...

"""Identity use cases: consumers and their API keys, as the management API and the CLI change them."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final

from tollway.clock import Clock
from tollway.errors import ConflictError, NotFoundError, ValidationError
from tollway.identity.consumers import ConfiguredConsumer, Consumer, check_metadata, check_models, check_username
from tollway.identity.keys import (
    MAX_NAME_CHARS,
    ApiKey,
    NewKey,
    check_imported_key,
    digest_of,
    generate_key,
    shown_prefix,
)
from tollway.identity.ports import IdentityStore, SyncResult
from tollway.ids import new_id

log = logging.getLogger("tollway.identity")


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()
CONFIG_KEY_NAME = "config"


@dataclass(frozen=True)
class ConsumerSummary:
    consumer: Consumer
    key_count: int  # keys usable now (not revoked, not expired), config keys included


class IdentityService:
    """`known_models`: the model names of the running config (None where no config is loaded, as in the
    CLI): names given for a consumer or a key must be among them."""

    def __init__(self, store: IdentityStore, clock: Clock, *, known_models: frozenset[str] | None = None) -> None:
        self._store = store
        self._clock = clock
        self.known_models = known_models
        self._config_keys: dict[str, list[ApiKey]] = {}

    @property
    def store(self) -> IdentityStore:
        return self._store

    # -- consumers --------------------------------------------------------------------------------

    async def list_consumers(self) -> list[ConsumerSummary]:
        now = self._clock.now()
        counts: dict[str, int] = {}
        for key in await self._store.list_keys():
            if key.active_at(now):
                counts[key.username] = counts.get(key.username, 0) + 1
        return [
            ConsumerSummary(c, counts.get(c.username, 0) + len(self._config_keys_of(c)))
            for c in await self._store.list_consumers()
        ]

    async def consumer(self, username: str) -> ConsumerSummary:
        consumer = await self._existing(username)
        now = self._clock.now()
        stored = sum(1 for k in await self._store.list_keys(username) if k.active_at(now))
        return ConsumerSummary(consumer, stored + len(self._config_keys_of(consumer)))

    async def create_consumer(
        self, username: str, *, models: Sequence[str] | None = None, metadata: Mapping[str, Any] | None = None
    ) -> Consumer:
        now = self._clock.now()
        consumer = Consumer(
            username=check_username(username),
            managed_by="api",
            models=check_models(models, known=self.known_models),
            metadata=check_metadata(metadata),
            created_at=now,
            updated_at=now,
        )
        await self._store.insert_consumer(consumer)
        return consumer

    async def update_consumer(
        self,
        username: str,
        *,
        models: Sequence[str] | _Unset | None = UNSET,
        metadata: Mapping[str, Any] | _Unset | None = UNSET,
    ) -> Consumer:
        """Change the allowed models (None: every model) and/or replace the metadata; UNSET leaves a field."""
        consumer = self._api_managed(await self._existing(username), "changed")
        changed = consumer
        if not isinstance(models, _Unset):
            changed = replace(changed, models=check_models(models, known=self.known_models))
        if not isinstance(metadata, _Unset):
            changed = replace(changed, metadata=check_metadata(metadata))
        if changed == consumer:
            return consumer
        changed = replace(changed, updated_at=self._clock.now())
        await self._store.update_consumer(changed)
        return changed

    async def delete_consumer(self, username: str) -> None:
        """Remove the consumer and its keys in one change (a consumer created later under the same username
        starts with no keys)."""
        self._api_managed(await self._existing(username), "deleted")
        if not await self._store.delete_consumer(username):
            raise NotFoundError(f"consumer {username!r} not found", field="username")

    # -- keys -------------------------------------------------------------------------------------

    async def create_key(
        self,
        username: str,
        *,
        name: str | None = None,
        expires_at: datetime | None = None,
        models: Sequence[str] | None = None,
        value: str | None = None,
    ) -> NewKey:
        """A new key. The plain text is in the result and nowhere else; the store keeps its digest.

        `value`: a key the caller already holds (moved from another gateway): taken as is, within
        IMPORTED_KEY_CHARS visible ASCII characters; it gets no shown prefix (a short key would be half shown).
        """
        now = self._clock.now()
        if value is not None:
            check_imported_key(value)
        if name is not None and (not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_CHARS):
            raise ValidationError(f"name must be 1-{MAX_NAME_CHARS} characters", field="name")
        if expires_at is not None:
            if expires_at.tzinfo is None:
                raise ValidationError("expiresAt must carry a UTC offset or Z", field="expiresAt")
            if expires_at <= now:
                raise ValidationError(f"expiresAt must be in the future (now is {now.isoformat()})", field="expiresAt")
        consumer = await self._existing(username)
        allowed = check_models(models, known=self.known_models)
        if allowed is not None and consumer.models is not None:
            outside = sorted(allowed - consumer.models)
            if outside:
                raise ValidationError(
                    f"models: {outside[0]!r} is not among the models consumer {username!r} may use"
                    f" ({', '.join(sorted(consumer.models)) or 'none'})",
                    field="models",
                )
        plain = generate_key() if value is None else value
        key = ApiKey(
            id=new_id(now),
            username=consumer.username,
            name=name,
            prefix=shown_prefix(plain) if value is None else None,
            digest=digest_of(plain),
            created_at=now,
            expires_at=expires_at,
            models=allowed,
        )
        await self._store.insert_key(key)
        return NewKey(key=key, plain=plain)

    async def keys(self, username: str) -> list[ApiKey]:
        """The consumer's keys, revoked ones included, config keys first (metadata only: no plain key)."""
        consumer = await self._existing(username)
        return [*self._config_keys_of(consumer), *await self._store.list_keys(username)]

    async def revoke_key(self, username: str, key_id: str) -> ApiKey:
        """Revoke one key of the consumer (idempotent: revoking a revoked key changes nothing)."""
        for config_key in self._config_keys.get(username, ()):
            if config_key.id == key_id:
                raise ConflictError(
                    f"key {key_id!r} comes from the config file (managedBy: config); remove it there",
                    field="managedBy",
                )
        key = await self._store.get_key(key_id)
        if key is None or key.username != username:
            raise NotFoundError(f"consumer {username!r} has no key {key_id!r}", field="id")
        revoked = await self._store.revoke_key(key_id, self._clock.now())
        if revoked is None:
            raise NotFoundError(f"consumer {username!r} has no key {key_id!r}", field="id")
        return revoked

    # -- config -----------------------------------------------------------------------------------

    async def sync_config(self, configured: Sequence[ConfiguredConsumer]) -> SyncResult:
        """Make the config-managed consumers those of the config file (at start and on reload)."""
        now = self._clock.now()
        desired = [
            Consumer(
                username=c.username,
                managed_by="config",
                models=c.models,
                created_at=now,
                updated_at=now,
            )
            for c in configured
        ]
        result = await self._store.sync_config_consumers(desired, now)
        self._config_keys = {c.username: _config_keys(c, now) for c in configured}
        if result.changed:
            log.warning(
                "config consumers synced: %d created, %d updated, %d removed",
                len(result.created),
                len(result.updated),
                len(result.removed),
            )
        return result

    # -- helpers ----------------------------------------------------------------------------------

    async def _existing(self, username: str) -> Consumer:
        consumer = await self._store.get_consumer(username)
        if consumer is None:
            raise NotFoundError(f"consumer {username!r} not found", field="username")
        return consumer

    @staticmethod
    def _api_managed(consumer: Consumer, verb: str) -> Consumer:
        if consumer.managed_by != "api":
            raise ConflictError(
                f"consumer {consumer.username!r} is managed by {consumer.managed_by} (managedBy: "
                f"{consumer.managed_by}) and cannot be {verb} through the API; change the config file",
                field="managedBy",
            )
        return consumer

    def _config_keys_of(self, consumer: Consumer) -> list[ApiKey]:
        if consumer.managed_by != "config":
            return []
        return [replace(k, created_at=consumer.created_at) for k in self._config_keys.get(consumer.username, ())]


def _config_keys(consumer: ConfiguredConsumer, now: datetime) -> list[ApiKey]:
    """The config file's keys as listed by the API: an id from the digest, no prefix (config keys are chosen
    by people and may be short: even a few characters of one would say too much)."""
    digests = consumer.digests
    return [
        ApiKey(
            id="config-" + digest.removeprefix("sha256:")[:16],
            username=consumer.username,
            name=CONFIG_KEY_NAME,
            prefix=None,
            digest=digest,
            created_at=now,
            managed_by="config",
        )
        for digest in dict.fromkeys(digests)
    ]

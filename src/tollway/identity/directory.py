"""KeyDirectory: keeps a gateway process's KeyIndex equal to the config file's keys plus the stored keys.

It polls the store's version counter (one small SELECT every `poll_interval_s`) and rebuilds the index
only when the number moved; requests never read the database. Off the request path it also writes the
UTC day each stored key was last used, at most once per `usage_interval_s` and once a day per key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from datetime import date

from tollway.clock import Clock
from tollway.errors import DomainError
from tollway.identity.consumers import ConfiguredConsumer
from tollway.identity.key_index import NEVER, Identity, KeyIndex, StoredKey
from tollway.identity.keys import effective_models
from tollway.identity.ports import IdentitySnapshot, IdentityStore

log = logging.getLogger("tollway.identity")

POLL_INTERVAL_S = 0.25
USAGE_INTERVAL_S = 60.0


def config_entries(consumers: Sequence[ConfiguredConsumer]) -> list[tuple[str, Identity]]:
    """(digest, identity) for every key of the config file's consumers."""
    entries: list[tuple[str, Identity]] = []
    for consumer in consumers:
        identity = Identity(username=consumer.username, models=consumer.models)
        entries.extend((digest, identity) for digest in consumer.digests)
    return entries


def stored_entries(snapshot: IdentitySnapshot) -> list[StoredKey]:
    """One entry per usable stored key, each with an identity that names the key (spend limits on one key)."""
    models = {c.username: c.models for c in snapshot.consumers}
    entries: list[StoredKey] = []
    for key in snapshot.keys:
        if key.username not in models:
            continue  # the consumer is gone (its keys are revoked in the same change)
        allowed = effective_models(models[key.username], key.models)
        identity = Identity(username=key.username, models=allowed, key_id=key.id)
        expires_at = key.expires_at.timestamp() if key.expires_at is not None else NEVER
        entries.append(StoredKey(digest=key.digest, consumer=identity, key_id=key.id, expires_at=expires_at))
    return entries


class KeyDirectory:
    def __init__(
        self,
        store: IdentityStore,
        clock: Clock,
        publish: Callable[[KeyIndex], None],
        *,
        poll_interval_s: float = POLL_INTERVAL_S,
        usage_interval_s: float = USAGE_INTERVAL_S,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._clock = clock
        self._publish = publish
        self._poll_interval_s = poll_interval_s
        self._usage_interval_s = usage_interval_s
        self._now = now
        self._config: list[tuple[str, Identity]] = []
        self._stored: list[StoredKey] = []
        self._version: int | None = None
        self._recorded_day: dict[str, date] = {}
        self._failing = False
        self._task: asyncio.Task[None] | None = None
        self._refreshing = asyncio.Lock()  # the poll and a refresh after an API write: one at a time, in order
        self.used: set[str] = set()  # ids of stored keys used since the last write (filled by the index)
        self.rebuilds = 0

    @property
    def failing(self) -> bool:
        """True while the last poll of the store failed (the last known keys are served)."""
        return self._failing

    @property
    def version(self) -> int | None:
        return self._version

    def index(self) -> KeyIndex:
        return KeyIndex.build(self._config, stored=self._stored, used=self.used, now=self._now)

    def set_config(self, consumers: Sequence[ConfiguredConsumer]) -> KeyIndex:
        """Take the config file's keys (at start and on reload); returns the index to serve with them."""
        self._config = config_entries(consumers)
        return self.index()

    async def refresh(self) -> bool:
        """Rebuild and publish the index if the store changed since the last look. True when rebuilt."""
        async with self._refreshing:
            return await self._refresh()

    async def _refresh(self) -> bool:
        version = await self._store.version()
        if version == self._version:
            return False
        snapshot = await self._store.snapshot(self._clock.now())
        self._stored = stored_entries(snapshot)
        self._recorded_day = {k.id: k.last_used_day for k in snapshot.keys if k.last_used_day is not None}
        self._version = snapshot.version
        self.rebuilds += 1
        self._publish(self.index())
        return True

    async def record_usage(self) -> int:
        """Write today's date for the stored keys used since the last call (once a day per key)."""
        if not self.used:
            return 0
        today = self._clock.now().date()
        used = set(self.used)
        self.used.clear()  # the same set the index adds to: clear it, never replace it
        due = sorted(key_id for key_id in used if self._recorded_day.get(key_id) != today)
        if not due:
            return 0
        try:
            await self._store.record_key_use(due, today)
        except DomainError:
            self.used.update(due)  # try again next time
            raise
        for key_id in due:
            self._recorded_day[key_id] = today
        return len(due)

    # -- the background task -------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="tollway-key-directory")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(DomainError):
            await self.record_usage()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_usage = loop.time() + self._usage_interval_s
        while True:
            await asyncio.sleep(self._poll_interval_s)
            try:
                await self.refresh()
                if loop.time() >= next_usage:
                    next_usage = loop.time() + self._usage_interval_s
                    await self.record_usage()
            except DomainError as exc:
                if not self._failing:
                    log.error("key refresh failed (serving the last known keys): %s", exc.message)
                self._failing = True
                continue
            except Exception:
                log.exception("key refresh failed (serving the last known keys)")
                self._failing = True
                continue
            if self._failing:
                log.warning("key refresh works again")
                self._failing = False

"""KeyIndex expiry and KeyDirectory: the gateway's key index follows the store without a read per request."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

import pytest

from tollway.adapters.memory.identity import MemoryIdentityStore
from tollway.clock import FrozenClock
from tollway.config.schema import ConsumerConfig
from tollway.errors import UnavailableError
from tollway.identity.directory import KeyDirectory
from tollway.identity.key_index import Identity, KeyIndex, StoredKey, hash_key
from tollway.identity.service import IdentityService

NOW = datetime(2026, 12, 2, 23, 59, 30, tzinfo=UTC)
EPOCH_NOW = 1_796_255_970.0  # NOW as epoch seconds, by hand: 2026-12-02T23:59:30Z


def test_now_is_the_epoch_figure_used_below() -> None:
    assert NOW.timestamp() == EPOCH_NOW


def test_a_stored_key_is_refused_from_its_expiry_without_a_rebuild() -> None:
    moment = [EPOCH_NOW]
    acme = Identity("acme", None)
    index = KeyIndex.build(
        [(hash_key("config-key-1"), acme)],
        stored=[
            StoredKey(hash_key("tw_expiring"), acme, "K1", expires_at=EPOCH_NOW + 2),
            StoredKey(hash_key("tw_forever"), acme, "K2"),
        ],
        now=lambda: moment[0],
    )
    assert index.authenticate(b"tw_expiring") is acme
    moment[0] = EPOCH_NOW + 1.999
    assert index.authenticate(b"tw_expiring") is acme
    moment[0] = EPOCH_NOW + 2
    assert index.authenticate(b"tw_expiring") is None
    assert index.authenticate(b"tw_forever") is acme
    assert index.authenticate(b"config-key-1") is acme
    assert index.authenticate(b"tw_unknown") is None
    assert index.used == {"K1", "K2"}, "config keys are not tracked; refused ones not counted again"


class Published:
    def __init__(self) -> None:
        self.indexes: list[KeyIndex] = []

    def __call__(self, index: KeyIndex) -> None:
        self.indexes.append(index)

    @property
    def last(self) -> KeyIndex:
        return self.indexes[-1]


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def store() -> MemoryIdentityStore:
    return MemoryIdentityStore()


@pytest.fixture
def service(store: MemoryIdentityStore, clock: FrozenClock) -> IdentityService:
    return IdentityService(store, clock)


async def test_refresh_rebuilds_only_when_the_version_moved(
    store: MemoryIdentityStore, service: IdentityService, clock: FrozenClock
) -> None:
    published = Published()
    directory = KeyDirectory(store, clock, published, now=lambda: clock.now().timestamp())
    await service.create_consumer("acme", models=["demo", "smart"])
    key = await service.create_key("acme", models=["demo"])
    assert await directory.refresh()
    reads = store.snapshots_read
    assert not await directory.refresh()
    assert not await directory.refresh()
    assert store.snapshots_read == reads, "an unchanged version reads no rows"
    found = published.last.authenticate(key.plain.encode())
    assert found == Identity("acme", frozenset({"demo"}), key.key.id), "the key's models narrow the consumer's"

    await service.revoke_key("acme", key.key.id)
    assert await directory.refresh()
    assert published.last.authenticate(key.plain.encode()) is None
    assert len(published.indexes) == 2


async def test_config_keys_are_merged_and_consumer_changes_apply(
    store: MemoryIdentityStore, service: IdentityService, clock: FrozenClock
) -> None:
    published = Published()
    directory = KeyDirectory(store, clock, published)
    index = directory.set_config(
        [ConsumerConfig(username="acme-corp", keys=["acme-secret-key"], models=["demo"]).configured()]
    )
    assert index.authenticate(b"acme-secret-key") == Identity("acme-corp", frozenset({"demo"}))
    await service.create_consumer("globex")
    key = await service.create_key("globex")
    await directory.refresh()
    assert published.last.authenticate(b"acme-secret-key") == Identity("acme-corp", frozenset({"demo"}))
    assert published.last.authenticate(key.plain.encode()) == Identity("globex", None, key.key.id)
    await service.update_consumer("globex", models=["smart"])
    await directory.refresh()
    assert published.last.authenticate(key.plain.encode()) == Identity("globex", frozenset({"smart"}), key.key.id)
    await service.delete_consumer("globex")
    await directory.refresh()
    assert published.last.authenticate(key.plain.encode()) is None


async def test_use_is_recorded_once_a_day_per_key(
    store: MemoryIdentityStore, service: IdentityService, clock: FrozenClock
) -> None:
    published = Published()
    directory = KeyDirectory(store, clock, published)
    await service.create_consumer("acme")
    first = await service.create_key("acme")
    second = await service.create_key("acme")
    await directory.refresh()
    assert await directory.record_usage() == 0
    for _ in range(3):
        assert published.last.authenticate(first.plain.encode()) is not None
    assert await directory.record_usage() == 1
    assert (await store.get_key(first.key.id)).last_used_day == date(2026, 12, 2)  # type: ignore[union-attr]
    assert (await store.get_key(second.key.id)).last_used_day is None  # type: ignore[union-attr]
    published.last.authenticate(first.plain.encode())
    assert await directory.record_usage() == 0, "already recorded today"
    clock.advance(timedelta(minutes=1))  # past midnight UTC
    published.last.authenticate(first.plain.encode())
    assert await directory.record_usage() == 1
    assert (await store.get_key(first.key.id)).last_used_day == date(2026, 12, 3)  # type: ignore[union-attr]
    version = await store.version()
    assert not await directory.refresh(), "recording use does not make gateways rebuild"
    assert await store.version() == version


async def test_a_failed_usage_write_is_retried(
    store: MemoryIdentityStore, service: IdentityService, clock: FrozenClock
) -> None:
    published = Published()
    directory = KeyDirectory(store, clock, published)
    await service.create_consumer("acme")
    key = await service.create_key("acme")
    await directory.refresh()
    published.last.authenticate(key.plain.encode())
    store.available = False
    with pytest.raises(UnavailableError):
        await directory.record_usage()
    store.available = True
    assert await directory.record_usage() == 1


async def test_the_background_task_picks_up_changes_and_survives_an_outage(
    store: MemoryIdentityStore, service: IdentityService, clock: FrozenClock
) -> None:
    published = Published()
    directory = KeyDirectory(store, clock, published, poll_interval_s=0.01, usage_interval_s=0.01)
    await service.create_consumer("acme")
    await directory.refresh()
    directory.start()
    try:
        key = await service.create_key("acme")
        await _until(lambda: published.last.authenticate(key.plain.encode()) is not None)
        store.available = False
        await asyncio.sleep(0.05)
        store.available = True
        await service.revoke_key("acme", key.key.id)
        await _until(lambda: published.last.authenticate(key.plain.encode()) is None)
    finally:
        await directory.stop()


async def test_stop_writes_the_last_use(
    store: MemoryIdentityStore, service: IdentityService, clock: FrozenClock
) -> None:
    published = Published()
    directory = KeyDirectory(store, clock, published, poll_interval_s=0.01)
    await service.create_consumer("acme")
    key = await service.create_key("acme")
    await directory.refresh()
    directory.start()
    published.last.authenticate(key.plain.encode())
    await directory.stop()
    assert (await store.get_key(key.key.id)).last_used_day == date(2026, 12, 2)  # type: ignore[union-attr]


async def _until(predicate: object, timeout_s: float = 2.0) -> None:
    assert callable(predicate)
    for _ in range(int(timeout_s / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met")

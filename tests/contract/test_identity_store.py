"""One contract suite for the identity store: memory fake, SQLite and PostgreSQL follow the same rules."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.databases import BACKENDS, database_url, migrated_engine
from tollway.adapters.memory.identity import MemoryIdentityStore
from tollway.adapters.sql.identity import SqlIdentityStore
from tollway.errors import ConflictError, NotFoundError
from tollway.identity.consumers import Consumer
from tollway.identity.keys import ApiKey
from tollway.identity.ports import IdentityStore

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[IdentityStore]:
    if request.param == "memory":
        yield MemoryIdentityStore()
        return
    url = database_url(request, tmp_path, "identity.db")
    engine = await migrated_engine(url)
    sql = SqlIdentityStore(engine)
    yield sql
    await sql.close()


def consumer(username: str = "acme", **changes: object) -> Consumer:
    values: dict[str, object] = {
        "username": username,
        "managed_by": "api",
        "models": None,
        "metadata": {},
        "created_at": NOW,
        "updated_at": NOW,
    }
    values.update(changes)
    return Consumer(**values)  # type: ignore[arg-type]


def key(key_id: str, username: str = "acme", **changes: object) -> ApiKey:
    values: dict[str, object] = {
        "id": key_id,
        "username": username,
        "name": f"name of {key_id}",
        "prefix": "tw_" + key_id[:8],
        "digest": "sha256:" + key_id.encode().hex().ljust(64, "0")[:64],
        "created_at": NOW,
    }
    values.update(changes)
    return ApiKey(**values)  # type: ignore[arg-type]


async def test_consumers_round_trip_and_username_is_unique(store: IdentityStore) -> None:
    acme = consumer("acme", models=frozenset({"demo", "gpt-4o"}), metadata={"team": "growth", "tier": "gold"})
    await store.insert_consumer(acme)
    await store.insert_consumer(consumer("globex"))
    assert await store.get_consumer("acme") == acme
    assert await store.get_consumer("nobody") is None
    assert [c.username for c in await store.list_consumers()] == ["acme", "globex"]
    with pytest.raises(ConflictError) as raised:
        await store.insert_consumer(consumer("acme", metadata={"other": "x"}))
    assert raised.value.field == "username"
    assert await store.get_consumer("acme") == acme, "a refused insert changes nothing"


async def test_update_replaces_models_and_metadata_but_keeps_created_at(store: IdentityStore) -> None:
    await store.insert_consumer(consumer("acme"))
    changed = consumer("acme", models=frozenset({"demo"}), metadata={"a": "b"}, created_at=LATER, updated_at=LATER)
    await store.update_consumer(changed)
    got = await store.get_consumer("acme")
    assert got == consumer("acme", models=frozenset({"demo"}), metadata={"a": "b"}, updated_at=LATER)
    with pytest.raises(NotFoundError):
        await store.update_consumer(consumer("nobody"))


async def test_every_change_moves_the_version_and_recording_use_does_not(store: IdentityStore) -> None:
    versions = [await store.version()]

    async def moved() -> bool:
        versions.append(await store.version())
        return versions[-1] > versions[-2]

    await store.insert_consumer(consumer("acme"))
    assert await moved()
    await store.update_consumer(consumer("acme", models=frozenset({"demo"})))
    assert await moved()
    await store.insert_key(key("K1"))
    assert await moved()
    assert await store.record_key_use(["K1"], date(2026, 11, 23)) == 1
    assert not await moved()
    await store.revoke_key("K1", LATER)
    assert await moved()
    await store.revoke_key("K1", LATER + timedelta(hours=1))
    assert not await moved(), "revoking a revoked key changes nothing"
    with pytest.raises(ConflictError):
        await store.insert_consumer(consumer("acme"))
    assert not await moved(), "a refused change does not move the version"
    assert await store.delete_consumer("acme")
    assert await moved()
    assert not await store.delete_consumer("acme")
    assert not await moved()


async def test_keys_need_their_consumer_and_a_digest_not_in_use(store: IdentityStore) -> None:
    with pytest.raises(NotFoundError) as missing:
        await store.insert_key(key("K1", "nobody"))
    assert missing.value.field == "username"
    await store.insert_consumer(consumer("acme"))
    first = key("K1", models=frozenset({"demo"}), expires_at=NOW + timedelta(days=30))
    await store.insert_key(first)
    with pytest.raises(ConflictError):
        await store.insert_key(key("K2", digest=first.digest))
    assert await store.get_key("K1") == first
    assert await store.get_key("K2") is None
    assert await store.list_keys("acme") == [first]


async def test_keys_are_listed_in_creation_order_per_consumer(store: IdentityStore) -> None:
    await store.insert_consumer(consumer("acme"))
    await store.insert_consumer(consumer("globex"))
    await store.insert_key(key("K3", created_at=NOW + timedelta(seconds=2)))
    await store.insert_key(key("K1", created_at=NOW))
    await store.insert_key(key("K2", "globex", created_at=NOW + timedelta(seconds=1)))
    assert [k.id for k in await store.list_keys("acme")] == ["K1", "K3"]
    assert [k.id for k in await store.list_keys("globex")] == ["K2"]
    assert [k.id for k in await store.list_keys()] == ["K1", "K2", "K3"]


async def test_revoke_is_idempotent_and_keeps_the_first_time(store: IdentityStore) -> None:
    await store.insert_consumer(consumer("acme"))
    await store.insert_key(key("K1"))
    revoked = await store.revoke_key("K1", LATER)
    assert revoked is not None
    assert revoked.revoked_at == LATER
    again = await store.revoke_key("K1", LATER + timedelta(days=1))
    assert again is not None
    assert again.revoked_at == LATER
    assert await store.revoke_key("nope", LATER) is None


async def test_snapshot_holds_usable_keys_only(store: IdentityStore) -> None:
    await store.insert_consumer(consumer("acme", models=frozenset({"demo"})))
    await store.insert_consumer(consumer("globex"))
    await store.insert_key(key("K1"))
    await store.insert_key(key("K2", expires_at=NOW + timedelta(seconds=1)))
    await store.insert_key(key("K3", expires_at=NOW))  # expired exactly now
    await store.insert_key(key("K4", "globex"))
    await store.revoke_key("K4", NOW)
    snapshot = await store.snapshot(NOW)
    assert snapshot.version == await store.version()
    assert [c.username for c in snapshot.consumers] == ["acme", "globex"]
    assert sorted(k.id for k in snapshot.keys) == ["K1", "K2"]
    later = await store.snapshot(NOW + timedelta(seconds=1))
    assert [k.id for k in later.keys] == ["K1"]


async def test_deleting_a_consumer_deletes_its_keys_and_a_new_one_starts_with_none(store: IdentityStore) -> None:
    """Issue 19, finding 10: a consumer deleted and created again under the same username listed the old
    consumer's keys."""
    await store.insert_consumer(consumer("acme"))
    await store.insert_consumer(consumer("globex"))
    await store.insert_key(key("K1"))
    await store.insert_key(key("K2"))
    await store.revoke_key("K2", NOW)
    await store.insert_key(key("K3", "globex"))
    assert await store.delete_consumer("acme")
    assert await store.get_consumer("acme") is None
    assert await store.list_keys("acme") == []
    assert await store.get_key("K1") is None
    assert [k.id for k in (await store.snapshot(NOW)).keys] == ["K3"]
    await store.insert_consumer(consumer("acme", created_at=LATER, updated_at=LATER))
    assert await store.list_keys("acme") == [], "a re-created consumer starts with no keys"
    assert [k.id for k in await store.list_keys("globex")] == ["K3"]


async def test_record_key_use_only_moves_forward(store: IdentityStore) -> None:
    await store.insert_consumer(consumer("acme"))
    await store.insert_key(key("K1"))
    await store.insert_key(key("K2"))
    day = date(2026, 11, 23)
    assert await store.record_key_use(["K1", "K2", "unknown"], day) == 2
    assert await store.record_key_use(["K1"], day) == 0
    assert await store.record_key_use(["K1"], day - timedelta(days=1)) == 0
    assert await store.record_key_use(["K1"], day + timedelta(days=1)) == 1
    assert await store.record_key_use([], day) == 0
    days = {k.id: k.last_used_day for k in await store.list_keys("acme")}
    assert days == {"K1": date(2026, 11, 24), "K2": date(2026, 11, 23)}


async def test_config_sync_creates_updates_takes_over_and_removes(store: IdentityStore) -> None:
    await store.insert_consumer(consumer("api-made", metadata={"keep": "me"}))
    await store.insert_consumer(consumer("taken", metadata={"x": "y"}))
    first = await store.sync_config_consumers(
        [consumer("alpha", managed_by="config"), consumer("taken", managed_by="config", models=frozenset({"demo"}))],
        NOW,
    )
    assert (first.created, first.updated, first.removed) == (("alpha",), ("taken",), ())
    taken = await store.get_consumer("taken")
    assert taken == consumer("taken", managed_by="config", models=frozenset({"demo"}))
    version = await store.version()

    same = await store.sync_config_consumers(
        [consumer("alpha", managed_by="config"), consumer("taken", managed_by="config", models=frozenset({"demo"}))],
        LATER,
    )
    assert not same.changed
    assert await store.version() == version, "an unchanged config does not move the version"

    await store.insert_key(key("K1", "alpha"))
    last = await store.sync_config_consumers([consumer("taken", managed_by="config")], LATER)
    assert (last.created, last.updated, last.removed) == ((), ("taken",), ("alpha",))
    assert await store.version() > version
    assert [c.username for c in await store.list_consumers()] == ["api-made", "taken"]
    alpha_key = await store.get_key("K1")
    assert alpha_key is not None
    assert alpha_key.revoked_at is None, "a config sync never revokes an API-issued key (issue 19, finding 1)"
    assert [k.id for k in (await store.snapshot(LATER)).keys] == ["K1"]  # stored; the gateway skips it (no consumer)
    survivor = await store.get_consumer("taken")
    assert survivor is not None
    assert (survivor.models, survivor.created_at, survivor.updated_at) == (None, NOW, LATER)
    assert await store.get_consumer("api-made") == consumer("api-made", metadata={"keep": "me"})


async def test_a_consumer_back_in_the_config_gets_its_keys_back_and_an_api_one_does_not(store: IdentityStore) -> None:
    """Issue 19, finding 1: removing a consumer from the config file (a truncated file, say) and restoring it
    left its API-issued keys revoked for good."""
    await store.sync_config_consumers([consumer("alpha", managed_by="config")], NOW)
    await store.insert_key(key("K1", "alpha"))
    await store.revoke_key("K1", NOW)
    await store.insert_key(key("K2", "alpha"))
    removed = await store.sync_config_consumers([], LATER)
    assert removed.removed == ("alpha",)
    assert await store.get_consumer("alpha") is None
    restored = await store.sync_config_consumers([consumer("alpha", managed_by="config")], LATER)
    assert restored.created == ("alpha",)
    keys = {k.id: k.revoked_at for k in await store.list_keys("alpha")}
    assert keys == {"K1": NOW, "K2": None}, "the keys come back as they were"

    await store.sync_config_consumers([], LATER)
    await store.insert_consumer(consumer("alpha", created_at=LATER, updated_at=LATER))  # through the API
    assert await store.list_keys("alpha") == [], "an API-created consumer does not inherit them"
    assert (await store.snapshot(LATER)).keys == []

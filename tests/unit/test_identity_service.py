"""IdentityService: validation, config-managed consumers, key creation and revocation (memory store)."""

from __future__ import annotations

import hashlib
import string
from datetime import UTC, datetime, timedelta

import pytest

from tollway.adapters.memory.identity import MemoryIdentityStore
from tollway.clock import FrozenClock
from tollway.config.schema import ConsumerConfig
from tollway.errors import ConflictError, NotFoundError, ValidationError
from tollway.identity.service import UNSET, IdentityService

NOW = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)


@pytest.fixture
def store() -> MemoryIdentityStore:
    return MemoryIdentityStore()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def service(store: MemoryIdentityStore, clock: FrozenClock) -> IdentityService:
    return IdentityService(store, clock, known_models=frozenset({"demo", "gpt-4o", "smart"}))


@pytest.mark.parametrize("username", ["", "bad/name", "-leading-dash", "x" * 129, "semi;colon", "é "])
async def test_a_bad_username_is_refused_and_changes_nothing(
    service: IdentityService, store: MemoryIdentityStore, username: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        await service.create_consumer(username)
    assert raised.value.field == "username"
    assert await store.version() == 0
    assert await store.list_consumers() == []


async def test_usernames_of_the_config_pattern_are_accepted(service: IdentityService) -> None:
    for username in ["a", "acme-corp", "team.ai:bot_7@eu", "Jane Doe", "Zoë", "山田 太郎", "X" * 128]:
        created = await service.create_consumer(username)
        assert created.username == username
        assert created.managed_by == "api"
        assert created.created_at == created.updated_at == NOW


@pytest.mark.parametrize("username", ["team/a", " lead", "trail ", "_x", "", "X" * 129, "tab\tin"])
async def test_usernames_a_path_could_not_address_are_refused(service: IdentityService, username: str) -> None:
    with pytest.raises(ValidationError) as refused:
        await service.create_consumer(username)
    assert refused.value.field == "username"


async def test_models_must_be_configured_and_metadata_strings(service: IdentityService) -> None:
    with pytest.raises(ValidationError) as unknown:
        await service.create_consumer("acme", models=["demo", "gpt-5-imaginary"])
    assert unknown.value.field == "models"
    assert "gpt-5-imaginary" in unknown.value.message
    with pytest.raises(ValidationError) as metadata:
        await service.create_consumer("acme", metadata={"tier": 3})
    assert metadata.value.field == "metadata"
    created = await service.create_consumer("acme", models=["demo"], metadata={"tier": "gold"})
    assert created.models == frozenset({"demo"})
    assert dict(created.metadata) == {"tier": "gold"}


async def test_without_a_known_config_any_model_name_is_taken(store: MemoryIdentityStore, clock: FrozenClock) -> None:
    service = IdentityService(store, clock)  # the CLI: no config file loaded
    created = await service.create_consumer("acme", models=["whatever-model"])
    assert created.models == frozenset({"whatever-model"})


async def test_a_username_is_unique(service: IdentityService) -> None:
    await service.create_consumer("acme")
    with pytest.raises(ConflictError) as raised:
        await service.create_consumer("acme")
    assert raised.value.field == "username"


async def test_update_changes_only_given_fields(service: IdentityService, clock: FrozenClock) -> None:
    await service.create_consumer("acme", models=["demo"], metadata={"a": "1"})
    clock.advance(timedelta(minutes=5))
    changed = await service.update_consumer("acme", metadata={"b": "2"})
    assert changed.models == frozenset({"demo"})
    assert dict(changed.metadata) == {"b": "2"}
    assert changed.updated_at == NOW + timedelta(minutes=5)
    assert changed.created_at == NOW
    opened = await service.update_consumer("acme", models=None, metadata=UNSET)
    assert opened.models is None
    with pytest.raises(NotFoundError):
        await service.update_consumer("nobody", models=None)


async def test_config_managed_consumers_cannot_be_changed_or_deleted(service: IdentityService) -> None:
    await service.sync_config(
        [ConsumerConfig(username="acme-corp", keys=["acme-secret-key"], models=["demo"]).configured()]
    )
    for attempt in (
        service.update_consumer("acme-corp", models=None),
        service.delete_consumer("acme-corp"),
    ):
        with pytest.raises(ConflictError) as raised:
            await attempt
        assert raised.value.field == "managedBy"
        assert "config" in raised.value.message
    summary = await service.consumer("acme-corp")
    assert summary.consumer.models == frozenset({"demo"})
    assert summary.key_count == 1


async def test_a_key_is_generated_shown_once_and_stored_as_its_digest(
    service: IdentityService, store: MemoryIdentityStore
) -> None:
    await service.create_consumer("acme")
    created = await service.create_key("acme", name="ci", expires_at=NOW + timedelta(days=30))
    plain = created.plain
    assert plain.startswith("tw_")
    assert len(plain) == 43
    assert set(plain[3:]) <= set(string.ascii_letters + string.digits)
    stored = await store.get_key(created.key.id)
    assert stored is not None
    assert stored.digest == "sha256:" + hashlib.sha256(plain.encode()).hexdigest()
    assert stored.prefix == plain[:11]
    assert plain not in repr(stored)
    assert (stored.name, stored.expires_at, stored.revoked_at, stored.models) == (
        "ci",
        datetime(2027, 1, 1, 9, 30, tzinfo=UTC),
        None,
        None,
    )
    other = await service.create_key("acme")
    assert other.plain != plain


@pytest.mark.parametrize("expires_at", [NOW, NOW - timedelta(seconds=1), datetime(2020, 1, 1, tzinfo=UTC)])
async def test_an_expiry_not_in_the_future_is_refused(
    service: IdentityService, store: MemoryIdentityStore, expires_at: datetime
) -> None:
    await service.create_consumer("acme")
    version = await store.version()
    with pytest.raises(ValidationError) as raised:
        await service.create_key("acme", expires_at=expires_at)
    assert raised.value.field == "expiresAt"
    assert await store.version() == version
    assert await store.list_keys() == []


async def test_a_key_needs_an_existing_consumer_and_a_sane_name(service: IdentityService) -> None:
    with pytest.raises(NotFoundError) as missing:
        await service.create_key("nobody")
    assert missing.value.field == "username"
    await service.create_consumer("acme")
    for name in ["", "   ", "n" * 101]:
        with pytest.raises(ValidationError) as bad_name:
            await service.create_key("acme", name=name)
        assert bad_name.value.field == "name"


async def test_key_models_stay_within_the_consumers(service: IdentityService) -> None:
    await service.create_consumer("narrow", models=["demo", "smart"])
    with pytest.raises(ValidationError) as outside:
        await service.create_key("narrow", models=["gpt-4o"])
    assert outside.value.field == "models"
    with pytest.raises(ValidationError) as unknown:
        await service.create_key("narrow", models=["nope"])
    assert unknown.value.field == "models"
    created = await service.create_key("narrow", models=["demo"])
    assert created.key.models == frozenset({"demo"})
    await service.create_consumer("open")
    assert (await service.create_key("open", models=["gpt-4o"])).key.models == frozenset({"gpt-4o"})


async def test_revoke_is_idempotent_and_only_for_the_owner(
    service: IdentityService, store: MemoryIdentityStore, clock: FrozenClock
) -> None:
    await service.create_consumer("acme")
    await service.create_consumer("globex")
    key = (await service.create_key("acme")).key
    with pytest.raises(NotFoundError) as other:
        await service.revoke_key("globex", key.id)
    assert other.value.field == "id"
    with pytest.raises(NotFoundError):
        await service.revoke_key("acme", "01UNKNOWNKEY0000000000000")
    assert (await store.snapshot(NOW)).keys == [key], "refused revocations change nothing"
    clock.advance(timedelta(seconds=10))
    first = await service.revoke_key("acme", key.id)
    clock.advance(timedelta(seconds=10))
    again = await service.revoke_key("acme", key.id)
    assert first.revoked_at == again.revoked_at == NOW + timedelta(seconds=10)
    assert (await service.consumer("acme")).key_count == 0


async def test_deleting_a_consumer_deletes_its_keys(service: IdentityService, store: MemoryIdentityStore) -> None:
    await service.create_consumer("acme")
    key = (await service.create_key("acme")).key
    await service.delete_consumer("acme")
    with pytest.raises(NotFoundError):
        await service.consumer("acme")
    assert await store.get_key(key.id) is None
    with pytest.raises(NotFoundError):
        await service.delete_consumer("acme")
    await service.create_consumer("acme")
    assert await service.keys("acme") == [], "a re-created consumer starts with no keys (issue 19, finding 10)"


async def test_config_keys_are_listed_without_prefix_and_cannot_be_revoked(service: IdentityService) -> None:
    digest = "sha256:" + hashlib.sha256(b"second-secret-key").hexdigest()
    await service.sync_config(
        [ConsumerConfig(username="acme-corp", keys=["acme-secret-key"], key_hashes=[digest]).configured()]
    )
    stored = (await service.create_key("acme-corp", name="api-made")).key
    listed = await service.keys("acme-corp")
    first_digest = hashlib.sha256(b"acme-secret-key").hexdigest()
    assert [(k.id, k.name, k.prefix, k.managed_by) for k in listed] == [
        ("config-" + first_digest[:16], "config", None, "config"),
        ("config-" + digest[7:23], "config", None, "config"),
        (stored.id, "api-made", stored.prefix, "api"),
    ]
    with pytest.raises(ConflictError) as raised:
        await service.revoke_key("acme-corp", listed[0].id)
    assert raised.value.field == "managedBy"
    summaries = await service.list_consumers()
    assert [(s.consumer.username, s.key_count) for s in summaries] == [("acme-corp", 3)]


async def test_config_sync_removes_consumers_gone_from_the_file(
    service: IdentityService, store: MemoryIdentityStore
) -> None:
    await service.sync_config(
        [
            ConsumerConfig(username="a", keys=["key-aaaaaaaa"]).configured(),
            ConsumerConfig(username="b", keys=["key-bbbbbbbb"]).configured(),
        ]
    )
    key = (await service.create_key("a")).key
    result = await service.sync_config(
        [ConsumerConfig(username="b", keys=["key-bbbbbbbb"], models=["demo"]).configured()]
    )
    assert (result.created, result.updated, result.removed) == ((), ("b",), ("a",))
    assert [c.username for c in await store.list_consumers()] == ["b"]
    kept = await store.get_key(key.id)
    assert kept is not None
    assert kept.revoked_at is None, "a config sync never revokes an API-issued key (issue 19, finding 1)"

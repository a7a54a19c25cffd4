"""/api/v1/consumers in process (ASGI): shapes, status codes, RFC 7807 errors naming the field, admin auth."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from tollway.adapters.memory.identity import MemoryIdentityStore
from tollway.adapters.memory.store import MemoryEventStore
from tollway.api.app import create_management_app
from tollway.clock import FrozenClock
from tollway.config.schema import ConsumerConfig
from tollway.identity.consumers import Consumer
from tollway.identity.service import IdentityService
from tollway.metering.service import MeteringService

NOW = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)
TOKEN = "admin-token-for-tests"


@pytest.fixture
def store() -> MemoryIdentityStore:
    return MemoryIdentityStore()


@pytest.fixture
def identity(store: MemoryIdentityStore) -> IdentityService:
    return IdentityService(store, FrozenClock(NOW), known_models=frozenset({"demo", "smart"}))


@pytest.fixture
async def client(identity: IdentityService) -> AsyncIterator[httpx.AsyncClient]:
    clock = FrozenClock(NOW)
    app = create_management_app(
        metering=MeteringService(MemoryEventStore(clock), clock), admin_token=TOKEN, identity=identity
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://tollway", headers={"Authorization": f"Bearer {TOKEN}"}
    ) as client:
        yield client


ROUTES = [
    ("GET", "/api/v1/consumers"),
    ("POST", "/api/v1/consumers"),
    ("GET", "/api/v1/consumers/acme"),
    ("PATCH", "/api/v1/consumers/acme"),
    ("DELETE", "/api/v1/consumers/acme"),
    ("POST", "/api/v1/consumers/acme/keys"),
    ("GET", "/api/v1/consumers/acme/keys"),
    ("DELETE", "/api/v1/consumers/acme/keys/01KEY"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize("auth", [None, "Bearer wrong-token", "Basic " + TOKEN, TOKEN])
async def test_every_route_needs_the_admin_token(
    client: httpx.AsyncClient, store: MemoryIdentityStore, method: str, path: str, auth: str | None
) -> None:
    await store.insert_consumer(_acme())
    version = await store.version()
    headers = {"Authorization": auth} if auth is not None else {}
    client.headers.pop("Authorization")
    body = {"username": "other"} if method == "POST" else ({} if method == "PATCH" else None)
    response = await client.request(method, path, headers=headers, json=body)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 401
    assert await store.version() == version


def _acme() -> Consumer:
    return Consumer(username="acme", managed_by="api", models=None, created_at=NOW, updated_at=NOW)


async def test_consumer_lifecycle(client: httpx.AsyncClient) -> None:
    created = await client.post(
        "/api/v1/consumers", json={"username": "acme", "models": ["smart", "demo"], "metadata": {"tier": "gold"}}
    )
    assert created.status_code == 201
    assert created.json() == {
        "username": "acme",
        "managedBy": "api",
        "models": ["demo", "smart"],
        "metadata": {"tier": "gold"},
        "createdAt": "2026-12-02T09:30:00Z",
        "updatedAt": "2026-12-02T09:30:00Z",
        "keyCount": 0,
    }
    duplicate = await client.post("/api/v1/consumers", json={"username": "acme"})
    assert duplicate.status_code == 409
    assert duplicate.json()["field"] == "username"

    patched = await client.patch("/api/v1/consumers/acme", json={"models": None})
    assert patched.status_code == 200
    assert patched.json()["models"] is None
    assert patched.json()["metadata"] == {"tier": "gold"}, "an absent field is left alone"

    listed = await client.get("/api/v1/consumers")
    assert [c["username"] for c in listed.json()] == ["acme"]
    assert (await client.get("/api/v1/consumers/acme")).json()["models"] is None
    assert (await client.delete("/api/v1/consumers/acme")).status_code == 204
    missing = await client.get("/api/v1/consumers/acme")
    assert missing.status_code == 404
    assert missing.json()["field"] == "username"
    assert (await client.delete("/api/v1/consumers/acme")).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"username": "team/bad"}, "username"),
        ({"username": "acme", "models": ["unknown-model"]}, "models"),
        ({"username": "acme", "models": "demo"}, "models"),
        ({"username": "acme", "metadata": {"n": 1}}, "metadata.n"),
        ({"username": "acme", "color": "blue"}, "color"),
        ({}, "username"),
    ],
)
async def test_a_bad_consumer_is_refused_naming_the_field(
    client: httpx.AsyncClient, store: MemoryIdentityStore, body: dict[str, object], field: str
) -> None:
    response = await client.post("/api/v1/consumers", json=body)
    assert response.status_code == 400
    problem = response.json()
    assert problem["status"] == 400
    fields = {problem.get("field"), *(e["field"] for e in problem.get("errors", []))}
    assert field in fields, problem
    assert await store.list_consumers() == []


async def test_config_managed_consumers_are_read_only_here(
    client: httpx.AsyncClient, identity: IdentityService
) -> None:
    await identity.sync_config([ConsumerConfig(username="acme-corp", keys=["acme-secret-key"]).configured()])
    for response in (
        await client.patch("/api/v1/consumers/acme-corp", json={"metadata": {"a": "b"}}),
        await client.delete("/api/v1/consumers/acme-corp"),
    ):
        assert response.status_code == 409
        assert response.json()["field"] == "managedBy"
        assert "managedBy: config" in response.json()["detail"]
    listed = (await client.get("/api/v1/consumers/acme-corp/keys")).json()
    digest = hashlib.sha256(b"acme-secret-key").hexdigest()
    assert listed == [
        {
            "id": f"config-{digest[:16]}",
            "name": "config",
            "prefix": None,
            "managedBy": "config",
            "createdAt": "2026-12-02T09:30:00Z",
            "lastUsedDay": None,
            "expiresAt": None,
            "revokedAt": None,
            "models": None,
        }
    ]
    refused = await client.delete(f"/api/v1/consumers/acme-corp/keys/config-{digest[:16]}")
    assert refused.status_code == 409


async def test_keys_are_shown_once_and_listed_as_metadata(client: httpx.AsyncClient) -> None:
    await client.post("/api/v1/consumers", json={"username": "acme", "models": ["demo", "smart"]})
    created = await client.post(
        "/api/v1/consumers/acme/keys", json={"name": "ci", "expiresAt": "2027-01-01T00:00:00+01:00", "models": ["demo"]}
    )
    assert created.status_code == 201
    body = created.json()
    plain = body["key"]
    assert set(body) == {"id", "name", "prefix", "key", "createdAt", "expiresAt", "models"}
    assert (body["name"], body["prefix"], body["expiresAt"], body["models"]) == (
        "ci",
        plain[:11],
        "2026-12-31T23:00:00Z",
        ["demo"],
    )
    listed = await client.get("/api/v1/consumers/acme/keys")
    assert listed.status_code == 200
    assert listed.json() == [
        {
            "id": body["id"],
            "name": "ci",
            "prefix": plain[:11],
            "managedBy": "api",
            "createdAt": "2026-12-02T09:30:00Z",
            "lastUsedDay": None,
            "expiresAt": "2026-12-31T23:00:00Z",
            "revokedAt": None,
            "models": ["demo"],
        }
    ]
    digest = hashlib.sha256(plain.encode()).hexdigest()
    assert plain not in listed.text
    assert digest not in listed.text
    assert (await client.get("/api/v1/consumers/acme")).json()["keyCount"] == 1

    assert (await client.delete(f"/api/v1/consumers/acme/keys/{body['id']}")).status_code == 204
    assert (await client.delete(f"/api/v1/consumers/acme/keys/{body['id']}")).status_code == 204
    revoked = (await client.get("/api/v1/consumers/acme/keys")).json()[0]
    assert revoked["revokedAt"] == "2026-12-02T09:30:00Z"
    assert (await client.get("/api/v1/consumers/acme")).json()["keyCount"] == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"expiresAt": "2026-12-02T09:29:59Z"}, "expiresAt"),
        ({"expiresAt": "2026-12-02T09:30:00Z"}, "expiresAt"),
        ({"expiresAt": "2027-01-01T00:00:00"}, "expiresAt"),
        ({"expiresAt": "next week"}, "expiresAt"),
        ({"models": ["unknown-model"]}, "models"),
        ({"models": ["smart"]}, "models"),
        ({"name": ""}, "name"),
        ({"key": "short"}, "key"),  # an imported key: 8-256 characters
        ({"key": "has a space"}, "key"),  # visible ASCII only: it travels in a header
        ({"key": "x" * 257}, "key"),
        ({"key": 12345678}, "key"),
    ],
)
async def test_a_bad_key_request_is_refused_naming_the_field(
    client: httpx.AsyncClient, store: MemoryIdentityStore, body: dict[str, object], field: str
) -> None:
    await client.post("/api/v1/consumers", json={"username": "acme", "models": ["demo"]})
    version = await store.version()
    response = await client.post("/api/v1/consumers/acme/keys", json=body)
    assert response.status_code == 400
    problem = response.json()
    fields = {problem.get("field"), *(e["field"] for e in problem.get("errors", []))}
    assert field in fields, problem
    assert await store.version() == version
    assert await store.list_keys() == []


async def test_revoking_needs_the_owner_and_a_known_key(client: httpx.AsyncClient) -> None:
    await client.post("/api/v1/consumers", json={"username": "acme"})
    await client.post("/api/v1/consumers", json={"username": "globex"})
    key_id = (await client.post("/api/v1/consumers/acme/keys", json={})).json()["id"]
    assert (await client.delete(f"/api/v1/consumers/globex/keys/{key_id}")).status_code == 404
    assert (await client.delete("/api/v1/consumers/acme/keys/01NOSUCHKEY")).status_code == 404
    assert (await client.post("/api/v1/consumers/nobody/keys", json={})).status_code == 404
    assert (await client.get("/api/v1/consumers/nobody/keys")).status_code == 404
    assert (await client.get("/api/v1/consumers/acme/keys")).json()[0]["revokedAt"] is None

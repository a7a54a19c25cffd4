"""Keys managed at run time, end to end: the management API and the CLI create and revoke keys, the official
openai SDK uses them, and two `tollway serve` processes on one database refuse a revoked key within 1 second."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.support.cli import run_tollway
from tests.support.net import plain_http, wait_until
from tests.support.tollway_process import TollwayProcess

MESSAGES: Any = [{"role": "user", "content": "Hello"}]
CONFIG: dict[str, Any] = {
    "providers": [{"name": "local", "type": "simulator"}],
    "models": [
        {"name": "demo", "targets": [{"provider": "local", "model": "demo"}]},
        {"name": "smart", "targets": [{"provider": "local", "model": "demo"}]},
    ],
    "consumers": [{"username": "acme-corp", "keys": ["acme-secret-key"]}],
}
PROPAGATION_LIMIT_S = 1.0
ROUTES = [
    ("GET", "/api/v1/consumers"),
    ("POST", "/api/v1/consumers"),
    ("GET", "/api/v1/consumers/acme-corp"),
    ("PATCH", "/api/v1/consumers/acme-corp"),
    ("DELETE", "/api/v1/consumers/acme-corp"),
    ("POST", "/api/v1/consumers/acme-corp/keys"),
    ("GET", "/api/v1/consumers/acme-corp/keys"),
    ("DELETE", "/api/v1/consumers/acme-corp/keys/01ANYKEY"),
]


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, workdir: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{workdir / 'shared.db'}"


@pytest.fixture
def gateways(workdir: Path, database_url: str) -> Iterator[tuple[TollwayProcess, TollwayProcess]]:
    """Two gateway processes on two ports, one database, a journal each."""
    started: list[TollwayProcess] = []
    try:
        for name in ("a", "b"):
            (workdir / name).mkdir()
            started.append(TollwayProcess(workdir / name, CONFIG, database_url=database_url).start())
        yield started[0], started[1]
    finally:
        for gateway in started:
            gateway.stop()


def status_with(gateway: TollwayProcess, key: str, model: str = "demo") -> int:
    with plain_http(base_url=gateway.base_url, timeout=5) as http:
        body = {"model": model, "messages": MESSAGES}
        response = http.post("/v1/chat/completions", headers={"Authorization": f"Bearer {key}"}, json=body)
    return response.status_code


def models_status(client: httpx.Client, key: str) -> int:
    """An authenticated request that costs the gateway nothing but the key check (no upstream call)."""
    return client.get("/v1/models", headers={"Authorization": f"Bearer {key}"}).status_code


def seconds_until_refused(gateways: tuple[TollwayProcess, ...], key: str, since: float) -> list[float]:
    """Poll every gateway until the key gets 401; the time each took, counted from `since` (the moment the
    revocation was committed: its response had arrived)."""
    took: dict[int, float] = {}
    deadline = since + 5.0
    clients = [plain_http(base_url=gateway.base_url, timeout=5) for gateway in gateways]
    try:
        while len(took) < len(gateways) and time.monotonic() < deadline:
            for i, client in enumerate(clients):
                if i not in took and models_status(client, key) == 401:
                    took[i] = time.monotonic() - since
            time.sleep(0.01)
    finally:
        for client in clients:
            client.close()
    assert len(took) == len(gateways), f"still accepted after 5 s by gateways {set(range(len(gateways))) - set(took)}"
    return [took[i] for i in range(len(gateways))]


def sdk(gateway: TollwayProcess, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url + "/v1", api_key=key, max_retries=0)


def test_an_api_key_works_on_every_gateway_and_revocation_reaches_all_within_a_second(
    gateways: tuple[TollwayProcess, TollwayProcess],
) -> None:
    a, b = gateways
    with httpx.Client(base_url=a.base_url, headers={"Authorization": "Bearer not-the-token"}) as client:
        for method, path in ROUTES:
            response = client.request(method, path, json={"username": "mallory"})
            assert (response.status_code, response.headers["content-type"]) == (401, "application/problem+json"), path
    with a.admin() as admin:
        created = admin.post("/api/v1/consumers", json={"username": "globex", "metadata": {"plan": "pro"}})
        assert created.status_code == 201, created.text
        issued = admin.post("/api/v1/consumers/globex/keys", json={"name": "prod", "models": ["demo"]})
        assert issued.status_code == 201, issued.text
    key = issued.json()["key"]
    key_id = issued.json()["id"]

    # A new key works on both processes within a second (they poll the database's identity version).
    wait_until(lambda: status_with(a, key) == 200 and status_with(b, key) == 200, timeout_s=PROPAGATION_LIMIT_S)
    for gateway in gateways:
        with sdk(gateway, key) as client:
            completion = client.chat.completions.create(model="demo", messages=MESSAGES)
            assert completion.choices[0].message.content
            assert completion.usage is not None
            assert completion.usage.total_tokens > 0
            with pytest.raises(openai.NotFoundError):
                client.chat.completions.create(model="smart", messages=MESSAGES)  # not among the key's models
    with sdk(a, "acme-secret-key") as client:
        assert client.chat.completions.create(model="smart", messages=MESSAGES).choices, "config keys still work"

    with b.admin() as admin:
        listed = admin.get("/api/v1/consumers").json()
        assert {c["username"]: (c["managedBy"], c["keyCount"]) for c in listed} == {
            "acme-corp": ("config", 1),
            "globex": ("api", 1),
        }
        keys = admin.get("/api/v1/consumers/globex/keys")
        assert [k["id"] for k in keys.json()] == [key_id]
        assert key not in keys.text
        assert hashlib.sha256(key.encode()).hexdigest() not in keys.text

    with a.admin() as admin:
        assert admin.delete(f"/api/v1/consumers/globex/keys/{key_id}").status_code == 204
        started = time.monotonic()
    took = seconds_until_refused(gateways, key, started)
    assert max(took) < PROPAGATION_LIMIT_S, f"revocation took {took} s on the two gateways"
    for gateway in gateways:
        with sdk(gateway, key) as client, pytest.raises(openai.AuthenticationError):
            client.chat.completions.create(model="demo", messages=MESSAGES)
    with b.admin() as admin:
        assert admin.delete(f"/api/v1/consumers/globex/keys/{key_id}").status_code == 204, "idempotent"

    # The day of use is written off the request path; a graceful stop writes what is pending.
    a.stop()
    with b.admin() as admin:
        day = admin.get("/api/v1/consumers/globex/keys").json()[0]["lastUsedDay"]
    assert day == datetime.now(UTC).date().isoformat()


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_deleting_a_consumer_and_expiry_refuse_keys_on_every_gateway(
    gateways: tuple[TollwayProcess, TollwayProcess],
) -> None:
    a, b = gateways
    with a.admin() as admin:
        assert admin.post("/api/v1/consumers", json={"username": "initech"}).status_code == 201
        expires = datetime.now(UTC) + timedelta(seconds=2)
        short = admin.post("/api/v1/consumers/initech/keys", json={"expiresAt": expires.isoformat()}).json()["key"]
        other = admin.post("/api/v1/consumers/initech/keys", json={}).json()["key"]
    wait_until(lambda: all(status_with(g, short) == 200 for g in gateways), timeout_s=PROPAGATION_LIMIT_S)

    took = seconds_until_refused(gateways, short, time.monotonic())
    refused_at = datetime.now(UTC)
    assert refused_at >= expires, "refused only once expired"
    assert refused_at - expires < timedelta(seconds=PROPAGATION_LIMIT_S), took
    assert all(status_with(g, other) == 200 for g in gateways), "the consumer's other key still works"

    with b.admin() as admin:
        assert admin.delete("/api/v1/consumers/initech").status_code == 204
        started = time.monotonic()
    took = seconds_until_refused(gateways, other, started)
    assert max(took) < PROPAGATION_LIMIT_S, took
    with a.admin() as admin:
        assert admin.get("/api/v1/consumers/initech").status_code == 404
        refused = admin.delete("/api/v1/consumers/acme-corp")
        assert refused.status_code == 409
        assert refused.json()["field"] == "managedBy"


def test_cli_commands_manage_keys_that_running_gateways_pick_up(workdir: Path) -> None:
    url = f"sqlite:///{workdir / 'shared.db'}"
    gateway = TollwayProcess(workdir, CONFIG, database_url=url).start()
    env = {"TOLLWAY_DATABASE_URL": url}
    try:
        made = run_tollway("consumers", "create", "hooli", "--model", "demo", cwd=workdir, env=env)
        assert made.returncode == 0, made.stderr
        assert made.stdout.strip() == "consumer hooli created (models: demo)"

        issued = run_tollway("keys", "create", "hooli", "--name", "laptop", "--expires-in", "30d", cwd=workdir, env=env)
        assert issued.returncode == 0, issued.stderr
        key = issued.stdout.strip()
        assert key.startswith("tw_")
        assert len(key) == 43
        assert "shown only once" in issued.stderr
        wait_until(lambda: status_with(gateway, key) == 200, timeout_s=PROPAGATION_LIMIT_S)
        with sdk(gateway, key) as client:
            assert client.chat.completions.create(model="demo", messages=MESSAGES).choices

        listed = run_tollway("keys", "list", "hooli", cwd=workdir, env=env)
        assert listed.returncode == 0, listed.stderr
        assert key[:11] in listed.stdout
        assert key not in listed.stdout
        with gateway.admin() as admin:
            key_id = admin.get("/api/v1/consumers/hooli/keys").json()[0]["id"]
        assert key_id in listed.stdout

        consumers = run_tollway("consumers", "list", cwd=workdir, env=env)
        assert consumers.returncode == 0, consumers.stderr
        assert "hooli" in consumers.stdout
        assert "acme-corp" in consumers.stdout

        revoked = run_tollway("keys", "revoke", "hooli", key_id, cwd=workdir, env=env)
        assert revoked.returncode == 0, revoked.stderr
        started = time.monotonic()
        assert seconds_until_refused((gateway,), key, started)[0] < PROPAGATION_LIMIT_S

        for args, message in [
            (("consumers", "create", "team/bad"), "username must be"),
            (("keys", "create", "nobody"), "consumer 'nobody' not found"),
            (("keys", "create", "hooli", "--expires-in", "soon"), "--expires-in"),
            (("keys", "create", "hooli", "--expires-at", "2020-01-01T00:00:00Z"), "expiresAt must be in the future"),
        ]:
            failed = run_tollway(*args, cwd=workdir, env=env)
            assert failed.returncode == 2, (args, failed.stdout, failed.stderr)
            assert failed.stderr.startswith("error: ")
            assert message in failed.stderr, failed.stderr
            assert len(failed.stderr.strip().splitlines()) == 1, failed.stderr
        with gateway.admin() as admin:
            assert len(admin.get("/api/v1/consumers/hooli/keys").json()) == 1, "failed commands changed nothing"
    finally:
        gateway.stop()

"""Key guessing is throttled per client address, on the gateway and on the management API.

With TOLLWAY_AUTH_FAILURE_LIMIT=5, five wrong credentials from one address are answered 401, counted in
/metrics and logged once; from then on that address is answered 429 with Retry-After (in the caller's
API shape) for the rest of the minute, the right credential included, so the answer tells a guesser
nothing. Another address, with the right credential, is served as before.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import openai
import pytest

from tests.support.in_process import InProcess, in_process
from tests.support.scenario import prometheus_value

KEY = "tw-consumer-key-for-tests"
ADMIN = "tw-admin-token-for-tests"
GUESSER = ("198.51.100.7", 40000)
NEIGHBOUR = ("198.51.100.8", 40000)
CONFIG = {
    "providers": [{"name": "local", "type": "simulator"}],
    "models": [{"name": "demo", "targets": [{"provider": "local", "model": "demo"}]}],
    "consumers": [{"username": "acme-corp", "keys": [KEY]}],
}
MESSAGES: list[dict[str, str]] = [{"role": "user", "content": "Hi"}]


@pytest.fixture
async def tollway(tmp_path: Path) -> AsyncIterator[InProcess]:
    async with in_process(tmp_path, CONFIG, admin_token=ADMIN, auth_failure_limit=5) as running:
        yield running


@asynccontextmanager
async def sdk_for(tollway: InProcess, address: tuple[str, int], key: str) -> AsyncIterator[openai.AsyncOpenAI]:
    """The OpenAI SDK from `address` with `key` (it closes its HTTP client when it is closed)."""
    async with openai.AsyncOpenAI(
        base_url="http://tollway/v1", api_key=key, http_client=tollway.http2(address), max_retries=0
    ) as sdk:
        yield sdk


async def test_gateway_key_guessing_is_answered_429_after_the_limit(
    tollway: InProcess, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="tollway.auth")
    for n in range(5):
        async with sdk_for(tollway, GUESSER, f"tw-guess-{n:04}") as sdk:
            with pytest.raises(openai.AuthenticationError):
                await sdk.chat.completions.create(model="demo", messages=MESSAGES)  # type: ignore[arg-type]
    async with sdk_for(tollway, GUESSER, KEY) as sdk:
        with pytest.raises(openai.RateLimitError) as caught:
            await sdk.chat.completions.create(model="demo", messages=MESSAGES)  # type: ignore[arg-type]
    error = caught.value
    assert error.status_code == 429
    assert error.code == "too_many_auth_failures"
    assert 1 <= int(error.response.headers["retry-after"]) <= 60
    assert "Too many failed authentications from this address" in error.message
    async with sdk_for(tollway, NEIGHBOUR, KEY) as sdk:
        served = await sdk.chat.completions.create(model="demo", messages=MESSAGES)  # type: ignore[arg-type]
        assert served.choices[0].message.content
    async with tollway.http(NEIGHBOUR) as http:
        metrics = (await http.get("/metrics")).text
    assert prometheus_value(metrics, 'tollway_auth_failures_total{surface="gateway"}') == 5
    logged = [r.getMessage() for r in caplog.records if r.name == "tollway.auth"]
    assert logged == ["authentication failed from 198.51.100.7 on the gateway surface"]


async def test_admin_token_guessing_is_answered_429_after_the_limit(tollway: InProcess) -> None:
    async with tollway.http(GUESSER) as http:
        statuses = []
        for n in range(5):
            response = await http.get("/api/v1/meters", headers={"Authorization": f"Bearer wrong-{n:04}"})
            statuses.append(response.status_code)
        assert statuses == [401] * 5
        blocked = await http.get("/api/v1/meters", headers={"Authorization": f"Bearer {ADMIN}"})
        assert blocked.status_code == 429
        assert blocked.headers["content-type"] == "application/problem+json"
        assert 1 <= int(blocked.headers["retry-after"]) <= 60
        assert blocked.json()["detail"].startswith("too many failed authentications from this address")
    async with tollway.http(NEIGHBOUR) as http:
        assert (await http.get("/api/v1/meters", headers={"Authorization": f"Bearer {ADMIN}"})).status_code == 200
        metrics = (await http.get("/metrics")).text
    assert prometheus_value(metrics, 'tollway_auth_failures_total{surface="admin"}') == 5

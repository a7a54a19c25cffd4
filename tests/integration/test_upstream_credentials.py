"""An upstream that refuses Tollway's credentials is the gateway's 502, and upstream rate limits reach the client.

An upstream's 401 or 403 is about the provider key Tollway holds, not the consumer's key, and its body may
echo that key: the client gets the gateway's own 502 (`upstream_auth_failed`, naming the provider) in its
API's shape, never the upstream's body, and /metrics counts it by provider. An upstream's Retry-After and
rate-limit headers (OpenAI's x-ratelimit-*, Anthropic's anthropic-ratelimit-*) reach the client on a
relayed 429 and on success answers, unary and streamed. Clients are the official SDKs, in process.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.support.fake_scripted import Scripted, ScriptedUpstream
from tests.support.in_process import InProcess, in_process
from tests.support.scenario import prometheus_value

KEY = "tw-consumer-key-for-tests"
OPENAI_KEY = "sk-provider-openai-0123456789"
ANTHROPIC_KEY = "sk-ant-provider-0123456789"
ECHO_OPENAI = b'{"error": {"message": "Incorrect API key provided: {auth}", "type": "invalid_request_error"}}'
ECHO_ANTHROPIC = b'{"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key {auth}"}}'
MESSAGES: Any = [{"role": "user", "content": "Hi"}]
OPENAI_LIMITS = {
    "x-ratelimit-limit-requests": "500",
    "x-ratelimit-remaining-requests": "0",
    "x-ratelimit-reset-requests": "7s",
    "x-ratelimit-limit-tokens": "30000",
    "x-ratelimit-remaining-tokens": "29000",
    "x-ratelimit-reset-tokens": "2ms",
}
ANTHROPIC_LIMITS = {
    "anthropic-ratelimit-requests-limit": "50",
    "anthropic-ratelimit-requests-remaining": "0",
    "anthropic-ratelimit-requests-reset": "2026-12-07T00:00:07Z",
}


@pytest.fixture(scope="module")
def upstream() -> Iterator[ScriptedUpstream]:
    fake = ScriptedUpstream().start()
    yield fake
    fake.stop()


@pytest.fixture
async def tollway(tmp_path: Path, upstream: ScriptedUpstream) -> AsyncIterator[InProcess]:
    upstream.reset()
    config = {
        "providers": [
            {"name": "up", "type": "openai", "base_url": upstream.base_url, "api_key": OPENAI_KEY},
            {"name": "claude-api", "type": "anthropic", "base_url": upstream.base_url, "api_key": ANTHROPIC_KEY},
        ],
        "models": [
            {"name": "gpt-4o", "targets": [{"provider": "up", "model": "gpt-4o"}]},
            {"name": "claude", "targets": [{"provider": "claude-api", "model": "claude-sonnet-4-5"}]},
        ],
        "consumers": [{"username": "acme-corp", "keys": [KEY]}],
    }
    async with in_process(tmp_path, config) as running:
        yield running


@pytest.fixture
async def sdk(tollway: InProcess) -> AsyncIterator[openai.AsyncOpenAI]:
    async with (
        tollway.http2() as http,
        openai.AsyncOpenAI(base_url="http://tollway/v1", api_key=KEY, http_client=http, max_retries=0) as client,
    ):
        yield client


@pytest.fixture
async def claude(tollway: InProcess) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with (
        tollway.http2() as http,
        anthropic.AsyncAnthropic(base_url="http://tollway", api_key=KEY, http_client=http, max_retries=0) as client,
    ):
        yield client


async def metric(tollway: InProcess, name: str) -> float:
    async with tollway.http() as http:
        return prometheus_value((await http.get("/metrics")).text, name)


def no_secret(text: str) -> None:
    for secret in (OPENAI_KEY, ANTHROPIC_KEY, KEY):
        assert secret not in text


async def test_openai_sdk_sees_the_gateways_502_for_an_upstream_401_unary_and_streamed(
    tollway: InProcess, sdk: openai.AsyncOpenAI, upstream: ScriptedUpstream
) -> None:
    upstream.enqueue(Scripted(status=401, body=ECHO_OPENAI), Scripted(status=403, body=ECHO_OPENAI))
    with pytest.raises(openai.InternalServerError) as unary:
        await sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    with pytest.raises(openai.InternalServerError) as streamed:
        await sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    assert upstream.received[-1].headers["Authorization"] == f"Bearer {OPENAI_KEY}"  # the echo had the key
    for caught in (unary.value, streamed.value):
        assert caught.status_code == 502
        assert caught.code == "upstream_auth_failed"
        assert "The provider rejected Tollway's credentials for provider 'up'" in caught.message
        assert "Incorrect API key" not in caught.response.text  # the upstream's body is not relayed
        no_secret(caught.response.text)
    assert await metric(tollway, 'tollway_upstream_auth_failures_total{provider="up"}') == 2
    assert (
        await metric(tollway, 'tollway_requests_total{route="/v1/chat/completions",model="gpt-4o",status="502"}') == 2
    )


async def test_anthropic_sdk_sees_the_502_natively_translated_and_on_count_tokens(
    tollway: InProcess, claude: anthropic.AsyncAnthropic, upstream: ScriptedUpstream
) -> None:
    upstream.enqueue(
        Scripted(status=401, body=ECHO_ANTHROPIC),  # Claude natively
        Scripted(status=403, body=ECHO_OPENAI),  # an OpenAI model through /v1/messages, translated
        Scripted(status=401, body=ECHO_ANTHROPIC),  # count_tokens
    )
    caught: list[anthropic.APIStatusError] = []
    for model in ("claude", "gpt-4o"):
        with pytest.raises(anthropic.InternalServerError) as error:
            await claude.messages.create(model=model, max_tokens=16, messages=MESSAGES)
        caught.append(error.value)
    with pytest.raises(anthropic.InternalServerError) as counted:
        await claude.messages.count_tokens(model="claude", messages=MESSAGES)
    caught.append(counted.value)
    providers = ["claude-api", "up", "claude-api"]
    for refused, provider in zip(caught, providers, strict=True):
        assert refused.status_code == 502
        assert refused.body == {
            "type": "error",
            "error": {
                "type": "api_error",
                "message": f"The provider rejected Tollway's credentials for provider '{provider}'. This is a gateway "
                "configuration problem, not a problem with your API key; the gateway's operator has to fix it.",
            },
        }
        no_secret(refused.response.text)
    assert await metric(tollway, 'tollway_upstream_auth_failures_total{provider="claude-api"}') == 2
    assert await metric(tollway, 'tollway_upstream_auth_failures_total{provider="up"}') == 1


async def test_responses_api_gets_the_502_in_openai_shape(tollway: InProcess, upstream: ScriptedUpstream) -> None:
    upstream.enqueue(Scripted(status=403, body=ECHO_OPENAI))
    async with tollway.http() as http:
        response = await http.post(
            "/v1/responses", json={"model": "gpt-4o", "input": "Hi"}, headers={"Authorization": f"Bearer {KEY}"}
        )
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_auth_failed"
    no_secret(response.text)


async def test_an_upstream_429_reaches_the_openai_sdk_with_retry_after_and_its_rate_limits(
    sdk: openai.AsyncOpenAI, upstream: ScriptedUpstream
) -> None:
    body = (
        b'{"error": {"message": "Rate limit reached for requests", "type": "requests", "code": "rate_limit_exceeded"}}'
    )
    upstream.enqueue(Scripted(status=429, body=body, headers={"Retry-After": "7", **OPENAI_LIMITS}))
    with pytest.raises(openai.RateLimitError) as caught:
        await sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    headers = caught.value.response.headers
    assert headers["retry-after"] == "7"
    assert {name: headers[name] for name in OPENAI_LIMITS} == OPENAI_LIMITS
    assert caught.value.message == "Error code: 429 - Rate limit reached for requests"


async def test_a_streamed_request_refused_with_429_gets_retry_after_too(
    sdk: openai.AsyncOpenAI, upstream: ScriptedUpstream
) -> None:
    body = b'{"error": {"message": "Rate limit reached for tokens", "type": "tokens", "code": "rate_limit_exceeded"}}'
    upstream.enqueue(Scripted(status=429, body=body, headers={"retry-after": "3", **OPENAI_LIMITS}))
    with pytest.raises(openai.RateLimitError) as caught:
        await sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    headers = caught.value.response.headers
    assert headers["retry-after"] == "3"
    assert {name: headers[name] for name in OPENAI_LIMITS} == OPENAI_LIMITS


async def test_rate_limits_reach_the_client_on_success_unary_and_streamed(
    sdk: openai.AsyncOpenAI, upstream: ScriptedUpstream
) -> None:
    upstream.enqueue(Scripted(headers=OPENAI_LIMITS), Scripted(headers=OPENAI_LIMITS))
    unary = await sdk.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
    completion = unary.parse()  # openai's with_raw_response parses synchronously
    assert completion.choices[0].message.content == "Hello from the fake upstream."
    streamed = await sdk.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES, stream=True)
    stream = streamed.parse()
    pieces = [chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices]
    assert "".join(pieces) == "Hello"
    for raw in (unary, streamed):
        assert {name: raw.headers[name] for name in OPENAI_LIMITS} == OPENAI_LIMITS
        assert "retry-after" not in raw.headers


async def test_anthropic_sdk_sees_retry_after_and_anthropic_rate_limits(
    claude: anthropic.AsyncAnthropic, upstream: ScriptedUpstream
) -> None:
    body = b'{"type": "error", "error": {"type": "rate_limit_error", "message": "Number of requests has exceeded"}}'
    # the success first: after a 429 the gateway cools the target down for its Retry-After (routing)
    upstream.enqueue(
        Scripted(headers=ANTHROPIC_LIMITS),
        Scripted(status=429, body=body, headers={"retry-after": "12", **ANTHROPIC_LIMITS}),
    )
    raw = await claude.messages.with_raw_response.create(model="claude", max_tokens=16, messages=MESSAGES)
    message = await raw.parse()
    assert message.content[0].text == "Hello."  # type: ignore[union-attr]
    with pytest.raises(anthropic.RateLimitError) as caught:
        await claude.messages.create(model="claude", max_tokens=16, messages=MESSAGES)
    assert caught.value.response.headers["retry-after"] == "12"
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "Number of requests has exceeded"},
    }
    for response_headers in (caught.value.response.headers, raw.headers):
        assert {name: response_headers[name] for name in ANTHROPIC_LIMITS} == ANTHROPIC_LIMITS


async def test_an_upstream_error_that_echoes_a_key_is_relayed_scrubbed(
    sdk: openai.AsyncOpenAI, upstream: ScriptedUpstream
) -> None:
    """A 400 is the upstream's answer to the request and is relayed, but without the credential it echoed."""
    body = b'{"error": {"message": "Bad request from {auth}", "type": "invalid_request_error"}}'
    upstream.enqueue(Scripted(status=400, body=body))
    with pytest.raises(openai.BadRequestError) as caught:
        await sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert caught.value.message == "Error code: 400 - Bad request from Bearer [REDACTED]"


async def test_http_client_sees_no_upstream_header_but_the_relayed_ones(
    tollway: InProcess, upstream: ScriptedUpstream
) -> None:
    upstream.enqueue(Scripted(headers={"x-upstream-internal": "secret-route", "Retry-After-Ms": "250"}))
    async with tollway.http() as http:
        response = await http.post(
            "/v1/chat/completions",
            json={"model": "gpt-4o", "messages": MESSAGES},
            headers={"Authorization": f"Bearer {KEY}"},
        )
    assert response.status_code == 200
    assert "x-upstream-internal" not in response.headers
    assert response.headers["retry-after-ms"] == "250"
    assert isinstance(response, httpx.Response)

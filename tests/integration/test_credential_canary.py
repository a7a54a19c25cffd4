"""Canary keys down every error path: no credential appears in any response, log line, journal or row.

Tollway holds known canary credentials (two provider keys, a provider that times out and one that is
unreachable, each with its own key, and the admin token); a consumer calls with a canary key of its own.
Every error path is taken: upstream 401/403 (whose bodies echo the credential the upstream got), 400, 429
and 500 bodies that echo it, a stream whose error event echoes it, answers translated between formats,
a timeout, an unreachable upstream, translation errors, bad input, and wrong credentials (each canary
presented where it does not belong). Then every response (status, headers, body), the process log, the
access log, the journal files and every database row are searched for each canary.
"""

from __future__ import annotations

import io
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.fake_scripted import Scripted, ScriptedUpstream
from tests.support.in_process import in_process
from tests.support.net import free_port

CONSUMER = "tw-canary-consumer-3e5f7a9b"
OPENAI_KEY = "sk-canary-openai-5d1c0e7a"
ANTHROPIC_KEY = "sk-ant-canary-9b8f2e11"
SLOW_KEY = "sk-canary-slow-71c4d2e0"
GONE_KEY = "sk-canary-gone-0a9e3f55"
ADMIN = "tw-canary-admin-6f2d8c14"
CANARIES = (CONSUMER, OPENAI_KEY, ANTHROPIC_KEY, SLOW_KEY, GONE_KEY, ADMIN)

ECHO_OPENAI = b'{"error": {"message": "Incorrect API key provided: {auth}", "type": "invalid_request_error"}}'
ECHO_ANTHROPIC = b'{"type": "error", "error": {"type": "api_error", "message": "bad x-api-key: {auth}"}}'
ECHO_PLAIN = b"upstream failure while serving credential {auth}"
ECHO_EVENT = b'data: {"error": {"message": "stream failed for {auth}", "type": "server_error"}}\n\n'
ECHO_SUCCESS = (
    b'{"id": "c1", "object": "chat.completion", "model": "gpt-4o", "choices": [{"index": 0, "finish_reason": "stop",'
    b' "message": {"role": "assistant", "content": "You called me with {auth}"}}],'
    b' "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}}'
)
MESSAGES: list[dict[str, Any]] = [{"role": "user", "content": "Hi"}]


@pytest.fixture(scope="module")
def upstream() -> Iterator[ScriptedUpstream]:
    fake = ScriptedUpstream().start()
    yield fake
    fake.stop()


def config(upstream: ScriptedUpstream) -> dict[str, Any]:
    nobody = f"http://127.0.0.1:{free_port()}/v1"
    providers = [
        {"name": "up", "type": "openai", "base_url": upstream.base_url, "api_key": OPENAI_KEY},
        {"name": "claude-api", "type": "anthropic", "base_url": upstream.base_url, "api_key": ANTHROPIC_KEY},
        {"name": "slow", "type": "openai", "base_url": upstream.base_url, "api_key": SLOW_KEY, "timeout_s": 0.3},
        {"name": "gone", "type": "openai", "base_url": nobody, "api_key": GONE_KEY},
    ]
    models = [
        {"name": name, "targets": [{"provider": provider, "model": name}]}
        for name, provider in (("gpt-4o", "up"), ("claude", "claude-api"), ("slow", "slow"), ("gone", "gone"))
    ]
    return {"providers": providers, "models": models, "consumers": [{"username": "acme-corp", "keys": [CONSUMER]}]}


def chat(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": MESSAGES, **extra}


def message(model: str) -> dict[str, Any]:
    return {"model": model, "max_tokens": 16, "messages": MESSAGES}


# (what the upstream is scripted to answer, path, body, the status the client must get)
PATHS: list[tuple[Scripted | None, str, dict[str, Any] | bytes, int]] = [
    (Scripted(status=401, body=ECHO_OPENAI), "/v1/chat/completions", chat("gpt-4o"), 502),
    (Scripted(status=403, body=ECHO_OPENAI), "/v1/chat/completions", chat("gpt-4o", stream=True), 502),
    (Scripted(status=500, body=ECHO_OPENAI), "/v1/chat/completions", chat("gpt-4o"), 500),
    (
        Scripted(status=500, body=ECHO_PLAIN, headers={"Content-Type": "text/plain"}),
        "/v1/embeddings",
        {"model": "gpt-4o", "input": "x"},
        500,
    ),
    (Scripted(status=400, body=ECHO_OPENAI), "/v1/responses", {"model": "gpt-4o", "input": "Hi"}, 400),
    (Scripted(stream_error=ECHO_EVENT), "/v1/chat/completions", chat("gpt-4o", stream=True), 200),
    (Scripted(body=ECHO_SUCCESS), "/v1/chat/completions", chat("gpt-4o"), 200),  # a success that echoes
    (Scripted(status=401, body=ECHO_ANTHROPIC), "/v1/messages", message("claude"), 502),
    (Scripted(status=500, body=ECHO_ANTHROPIC), "/v1/messages", message("claude"), 500),
    (Scripted(status=401, body=ECHO_ANTHROPIC), "/v1/messages/count_tokens", message("claude"), 502),
    (Scripted(status=500, body=ECHO_OPENAI), "/v1/messages", message("gpt-4o"), 500),  # translated
    (Scripted(status=500, body=ECHO_ANTHROPIC), "/v1/chat/completions", chat("claude"), 500),  # translated
    (Scripted(status=403, body=ECHO_ANTHROPIC), "/v1/responses", {"model": "claude", "input": "Hi"}, 502),
    (Scripted(delay_s=1.0), "/v1/chat/completions", chat("slow"), 504),  # timeout
    (None, "/v1/chat/completions", chat("gone"), 502),  # unreachable
    (None, "/v1/chat/completions", chat("claude", temperature=1.5), 400),  # translation error
    (None, "/v1/chat/completions", b'{"model": "gpt-4o", "messages": [', 400),  # bad JSON
    (None, "/v1/chat/completions", chat("no-such-model"), 404),
    (None, "/v1/messages", {"model": "claude", "messages": []}, 400),
    # last for gpt-4o: after a 429 the gateway cools the target down for its Retry-After (routing)
    (Scripted(status=429, body=ECHO_OPENAI, headers={"Retry-After": "1"}), "/v1/chat/completions", chat("gpt-4o"), 429),
]


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """Everything Tollway logs at DEBUG and above, through a root handler (filtered like the others)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root, tollway = logging.getLogger(), logging.getLogger("tollway")
    level = tollway.level
    root.addHandler(handler)
    tollway.setLevel(logging.DEBUG)
    yield stream
    tollway.setLevel(level)
    root.removeHandler(handler)


def shown(response: httpx.Response) -> str:
    headers = "\n".join(f"{name}: {value}" for name, value in response.headers.items())
    return f"{response.status_code}\n{headers}\n{response.text}"


async def test_no_canary_key_leaves_the_process(
    tmp_path: Path, upstream: ScriptedUpstream, log_output: io.StringIO
) -> None:
    upstream.reset()
    access_log = tmp_path / "access.log"
    seen: list[str] = []
    async with (
        in_process(
            tmp_path, config(upstream), admin_token=ADMIN, access_log="json", access_log_file=str(access_log)
        ) as tollway,
        tollway.http() as http,
    ):
        for scripted, path, body, status in PATHS:
            if scripted is not None:
                upstream.enqueue(scripted)
            content = body if isinstance(body, bytes) else None
            response = await http.post(
                path,
                json=None if content is not None else body,
                content=content,
                headers={"Authorization": f"Bearer {CONSUMER}", "content-type": "application/json"},
            )
            seen.append(shown(response))
            assert response.status_code == status, (path, body, response.text)
        # each canary where it does not belong: as a consumer key, as the admin token, on both surfaces
        for canary in CANARIES:
            for target in ("/v1/chat/completions", "/api/v1/meters"):
                response = await http.post(target, json=chat("gpt-4o"), headers={"x-api-key": canary})
                seen.append(shown(response))
                refused = await http.get(target, headers={"Authorization": f"Bearer {canary}"})
                seen.append(shown(refused))
        seen.append((await http.get("/metrics")).text)
    received = {r.headers.get("Authorization") or r.headers.get("x-api-key") for r in upstream.received}
    assert {f"Bearer {OPENAI_KEY}", ANTHROPIC_KEY, f"Bearer {SLOW_KEY}"} <= received  # the echoes held the keys
    redacted = [text for text in seen if "[REDACTED]" in text]
    assert len(redacted) >= 4, "the relayed echoes (500s, 400, 429, the stream's error event) are scrubbed"
    places = {"responses": "\n".join(seen), "log": log_output.getvalue(), "access log": access_log.read_text()}
    for file in sorted((tmp_path / "journal").rglob("*")):
        if file.is_file():
            places[f"journal {file.name}"] = file.read_bytes().decode("utf-8", "replace")
    with sqlite3.connect(tmp_path / "tollway.db") as database:
        places["database"] = "\n".join(database.iterdump())
    database.close()
    assert "llm.request" in places["database"]  # the calls were stored: the rows were searched
    leaks = [(canary, place) for canary in CANARIES for place, text in places.items() if canary in text]
    assert leaks == []

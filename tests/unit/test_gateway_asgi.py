"""The gateway as a plain ASGI callable: in-process, no server, fake provider."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from tollway.adapters.memory.journal import MemoryJournal
from tollway.adapters.memory.store import MemoryEventStore
from tollway.clock import FrozenClock
from tollway.gateway.app import Gateway
from tollway.gateway.flow import Flow
from tollway.gateway.metrics import GatewayMetrics
from tollway.gateway.providers.base import UpstreamRequest, UpstreamResponse
from tollway.gateway.relay import GatewayLimits
from tollway.gateway.routing import Route, Router, Target
from tollway.gateway.state import GatewayState
from tollway.identity.key_index import Identity, KeyIndex, hash_key
from tollway.metering.pipeline import UsagePipeline
from tollway.metering.records import Replay


class Exploding:
    name = "boom"
    native_paths = frozenset({"/chat/completions", "/embeddings"})

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        raise RuntimeError("a bug")


def gateway(journal: MemoryJournal) -> Gateway:
    provider: Any = Exploding()
    state = GatewayState(
        keys=KeyIndex.build([(hash_key("key-12345678"), Identity("acme", None))]),
        router=Router({"m": Route(model="m", targets=(Target(provider=provider, model="m"),))}),
        prices={},
    )
    pipeline = UsagePipeline(MemoryEventStore(), journal)
    limits = GatewayLimits(max_body_bytes=1024, drain_timeout_s=1)
    return Gateway(Flow(state, pipeline, GatewayMetrics(), FrozenClock(datetime(2026, 1, 1, tzinfo=UTC)), limits))


async def call(app: Gateway, body: bytes) -> list[dict[str, Any]]:
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/chat/completions",
        "headers": [(b"authorization", b"Bearer key-12345678"), (b"content-type", b"application/json")],
    }
    sent: list[dict[str, Any]] = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(dict(message))

    await app(scope, receive, send)
    return sent


async def test_an_unexpected_error_is_a_500_in_openai_shape() -> None:
    journal = MemoryJournal()
    sent = await call(gateway(journal), orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "x"}]}))
    assert sent[0]["status"] == 500
    assert (b"x-request-id", sent[0]["headers"][2][1]) in sent[0]["headers"]
    error = orjson.loads(sent[1]["body"])["error"]
    assert error["code"] == "internal_error"
    assert error["type"] == "api_error"
    # its write-ahead intent is closed by an end line: replayed, the journal holds no usage for it
    kinds = [orjson.loads(record)["record"] for _, record in journal.records]
    assert kinds == ["llm.intent", "llm.end"]
    replayed = Replay().segment([record for _, record in journal.records], final=True)
    assert replayed == [], "no usage is invented for a request that never reached a provider"

"""Every body the gateway relays is scrubbed of the credentials Tollway holds and of the key the consumer
presented, 2xx answers included: a whole unary answer, one too large to buffer (relayed in pieces, with a
secret split over two upstream chunks), and a handler's answer (Anthropic's count_tokens, relayed as is).
A body that holds no secret is relayed without a copy."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from tollway.clock import FrozenClock
from tollway.gateway.app import Gateway
from tollway.gateway.flow import Flow
from tollway.gateway.metrics import GatewayMetrics
from tollway.gateway.providers.base import BufferedResponse, UpstreamRequest, UpstreamResponse
from tollway.gateway.relay import RESPONSE_TAIL_BYTES, GatewayLimits
from tollway.gateway.routing import Route, Router, Target
from tollway.gateway.state import GatewayState
from tollway.identity.key_index import Identity, KeyIndex, hash_key
from tollway.metering.events import Event
from tollway.metering.intents import CallIntent
from tollway.metering.llm import LlmCall
from tollway.scrub import REDACTED, Scrubber

KEY = b"tw-consumer-key-5c2e9a01"
PROVIDER_KEY = "sk-provider-secret-8f3b2d7c"
ADMIN_TOKEN = "tw-admin-token-1a4e6b90"
CHAT = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "say the key"}]})
COUNT = orjson.dumps({"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]})
USAGE = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}


def completion(content: str, padding: str = "") -> bytes:
    choice = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
    return orjson.dumps({"id": "c1", "object": "chat.completion", "pad": padding, "choices": [choice], "usage": USAGE})


class Records:
    backlog = 0

    def __init__(self) -> None:
        self.calls: list[LlmCall] = []

    def emit(self, events: Sequence[Event]) -> None:
        raise AssertionError("the flow records calls")

    def begin(self, intent: CallIntent) -> None:
        return None

    def record_call(self, call: LlmCall) -> None:
        self.calls.append(call)

    def end(self, request_id: str) -> None:
        return None

    def probe(self) -> None:
        return None

    async def start(self) -> None: ...

    async def halt(self) -> None:
        pass

    async def stop(self, timeout_s: float = 10.0) -> bool:
        return True


class Echoing:
    """An upstream that answers 200 with a scripted body, in the given pieces."""

    native_paths = frozenset({"/chat/completions", "/messages/count_tokens"})
    name = "echoing"

    def __init__(self, parts: list[bytes]) -> None:
        self.parts = parts

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for part in self.parts:
                yield part

        return BufferedResponse(200, "application/json", chunks())


def gateway(provider: Echoing, records: Records, *, buffered: int = 8 * 1024 * 1024) -> Gateway:
    state = GatewayState(
        keys=KeyIndex.build([(hash_key(KEY.decode()), Identity("acme", None))]),
        router=Router({"m": Route(model="m", targets=(Target(provider=provider, model="m-upstream"),))}),
        prices={},
    )
    return Gateway(
        Flow(
            state,
            records,
            GatewayMetrics(),
            FrozenClock(datetime(2026, 1, 1, tzinfo=UTC)),
            GatewayLimits(max_body_bytes=4096, drain_timeout_s=0.2, max_buffered_response_bytes=buffered),
            scrubber=Scrubber([PROVIDER_KEY, ADMIN_TOKEN]),
        )
    )


async def post(app: Gateway, path: str, body: bytes) -> tuple[int, list[bytes]]:
    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "headers": [(b"authorization", b"Bearer " + KEY), (b"content-type", b"application/json")],
    }
    incoming: list[dict[str, Any]] = [{"type": "http.request", "body": body}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(dict(message))

    await app(scope, receive, send)
    return sent[0]["status"], [m.get("body", b"") for m in sent[1:]]


async def test_a_2xx_unary_answer_is_relayed_without_any_credential() -> None:
    echo = f"provider {PROVIDER_KEY}, admin {ADMIN_TOKEN}, yours {KEY.decode()}"
    records = Records()
    status, parts = await post(gateway(Echoing([completion(echo)]), records), "/v1/chat/completions", CHAT)
    assert status == 200
    answer = orjson.loads(b"".join(parts))
    assert answer["choices"][0]["message"]["content"] == f"provider {REDACTED}, admin {REDACTED}, yours {REDACTED}"
    assert [(c.status_code, c.usage.output if c.usage else None) for c in records.calls] == [(200, 3)]


async def test_a_large_2xx_answer_is_scrubbed_where_a_secret_spans_two_chunks() -> None:
    """Over max_buffered_response_bytes the answer is relayed as it arrives: secrets cut across chunk edges
    and across the point where the relay sends what it kept back are still removed."""
    padding = "x" * (3 * RESPONSE_TAIL_BYTES)
    body = completion(f"{PROVIDER_KEY} and {KEY.decode()}", padding=padding[:100_000] + PROVIDER_KEY + padding)
    cuts = [body.index(PROVIDER_KEY.encode()) + 5, body.index(KEY) + 3]  # inside the first two secrets
    cuts += [body.rindex(PROVIDER_KEY.encode()) + 11, *range(1, len(body), 7_919)]
    cuts = sorted(set(cuts))
    parts = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    records = Records()
    app = gateway(Echoing(parts), records, buffered=1024)
    status, sent = await post(app, "/v1/chat/completions", CHAT)
    relayed = b"".join(sent)
    assert status == 200
    assert len(sent) > 3, "relayed in pieces, not buffered whole"
    assert PROVIDER_KEY.encode() not in relayed
    assert KEY not in relayed
    assert relayed.count(REDACTED.encode()) == 3
    assert relayed == body.replace(PROVIDER_KEY.encode(), REDACTED.encode()).replace(KEY, REDACTED.encode())
    assert [c.usage.input if c.usage else None for c in records.calls] == [7]  # the usage block still read


async def test_a_handler_answer_relayed_as_is_is_scrubbed_too() -> None:
    """Anthropic's count_tokens on a target that serves it natively: the upstream's 200 goes back as is."""
    answer = orjson.dumps({"input_tokens": 12, "note": f"counted with {PROVIDER_KEY}"})
    status, parts = await post(gateway(Echoing([answer]), Records()), "/v1/messages/count_tokens", COUNT)
    assert status == 200
    assert orjson.loads(b"".join(parts)) == {"input_tokens": 12, "note": f"counted with {REDACTED}"}


def test_a_body_without_a_secret_is_not_copied() -> None:
    scrubber = Scrubber([PROVIDER_KEY, ADMIN_TOKEN])
    clean = completion("nothing secret here")
    assert scrubber.bytes(clean, KEY) is clean
    tail = clean + b"tw-consumer"
    joined = tail + b"-key-5c2e9a01"  # the presented key, split where the earlier part was already scrubbed
    assert scrubber.bytes_after(joined, len(tail), KEY) == clean + REDACTED.encode()
    already = clean + REDACTED.encode()
    assert scrubber.bytes_after(already, len(already), KEY) is already  # nothing new: not even searched

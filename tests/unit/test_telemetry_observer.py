"""The OpenTelemetry observer on its own: what it reads from an answer as it is sent (Anthropic's and the
Responses API's streams, a client that went away) and what it never keeps, with OpenTelemetry's in-memory
exporter. The whole path through a gateway is tests/integration/test_telemetry.py."""

from __future__ import annotations

import time
from typing import Any

import orjson
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tollway.gateway.call import Call
from tollway.gateway.endpoint import Endpoint
from tollway.gateway.endpoints.chat_completions import CHAT_COMPLETIONS
from tollway.gateway.endpoints.messages import MESSAGES
from tollway.gateway.endpoints.responses import RESPONSES
from tollway.gateway.http import Message
from tollway.gateway.telemetry import GenAiTelemetry, ProviderFacts
from tollway.identity.key_index import Identity
from tollway.metering.llm import TokenUsage


def sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\n".encode() + b"data: " + orjson.dumps(data) + b"\n\n"


async def run(endpoint: Endpoint, messages: list[Message], status: int | None = None) -> ReadableSpan:
    """One call through the observer: `messages` sent, then the call counted with `status`."""
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    telemetry = GenAiTelemetry(provider, MeterProvider(), lambda name: ProviderFacts("anthropic", "api", 443))
    call = Call(request_id="req_1", route=endpoint.path, started=time.perf_counter())
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    wrapped = telemetry.started(call, {"method": "POST", "headers": []}, endpoint, send)
    call.consumer = Identity("acme-corp", None)
    call.model = call.requested_model = "claude"
    call.provider, call.usage = "claude-api", TokenUsage(input=10, output=20, cache_read=5)
    for message in messages:
        await wrapped(message)
    call.status = status
    telemetry.ended(call)
    assert sent == messages  # passed on unchanged
    (span,) = spans.get_finished_spans()
    return span


STREAM_START: Message = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/event-stream; charset=utf-8")],
}


async def test_an_anthropic_stream_gives_its_model_id_and_stop_reason() -> None:
    events = [
        sse("message_start", {"type": "message_start", "message": {"id": "msg_1", "model": "claude-sonnet-4-5"}}),
        sse("content_block_delta", {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "Hi"}}),
        sse("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {}}),
        sse("message_stop", {"type": "message_stop"}),
    ]
    body = [{"type": "http.response.body", "body": e, "more_body": True} for e in events]
    span = await run(MESSAGES, [STREAM_START, *body, {"type": "http.response.body", "body": b"", "more_body": False}])
    attributes = span.attributes or {}
    assert span.name == "chat claude"
    assert attributes["gen_ai.response.model"] == "claude-sonnet-4-5"
    assert attributes["gen_ai.response.id"] == "msg_1"
    assert attributes["gen_ai.response.finish_reasons"] == ("end_turn",)
    assert attributes["gen_ai.provider.name"] == "anthropic"
    assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (15, 20)
    assert attributes["gen_ai.usage.cache_read.input_tokens"] == 5
    assert "Hi" not in str(dict(attributes))


async def test_a_responses_stream_gives_the_status_it_completed_with() -> None:
    done: dict[str, Any] = {"id": "resp_1", "object": "response", "model": "gpt-5", "status": "incomplete"}
    done["incomplete_details"] = {"reason": "max_output_tokens"}
    events = [
        sse("response.created", {"type": "response.created", "response": {**done, "status": "in_progress"}}),
        sse("response.incomplete", {"type": "response.incomplete", "response": done}),
    ]
    body = [{"type": "http.response.body", "body": e, "more_body": True} for e in events]
    span = await run(RESPONSES, [STREAM_START, *body, {"type": "http.response.body", "body": b"", "more_body": False}])
    attributes = span.attributes or {}
    assert attributes["gen_ai.response.model"] == "gpt-5"
    assert attributes["gen_ai.response.finish_reasons"] == ("max_output_tokens",)


async def test_a_stream_whose_client_went_away_is_the_499_it_is_counted_as() -> None:
    chunk = {"id": "c1", "model": "gpt-4o", "choices": [{"index": 0, "delta": {"content": "x"}, "finish_reason": None}]}
    body: Message = {"type": "http.response.body", "body": b"data: " + orjson.dumps(chunk) + b"\n\n", "more_body": True}
    span = await run(CHAT_COMPLETIONS, [STREAM_START, body], status=499)
    attributes = span.attributes or {}
    assert (attributes["http.response.status_code"], attributes["error.type"]) == (499, "499")
    assert attributes["gen_ai.response.model"] == "gpt-4o"
    assert "gen_ai.response.finish_reasons" not in attributes

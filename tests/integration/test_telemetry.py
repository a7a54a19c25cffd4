"""OpenTelemetry (optional, TOLLWAY_OTEL): one span per gateway call following the GenAI semantic conventions, a
child span per upstream try, the client's `traceparent` continued and carried upstream, the GenAI client metrics,
and nothing of a prompt or a completion recorded. The gateway runs in process from the composition root with
OpenTelemetry's in-memory span exporter and metric reader; the upstreams are fake OpenAI servers on loopback
(real HTTP), the client the official openai SDK. Then a real `tollway serve` exports to a local OTLP/HTTP
receiver configured by the standard OTEL_* variables; and with tracing off, OpenTelemetry is never imported."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import httpx2
import openai
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tests.support.fake_upstream import FakeOpenAI, Reply
from tests.support.net import wait_until
from tests.support.scenario import KEY, usage_block
from tests.support.tollway_process import TollwayProcess
from tollway.bootstrap import build_app, build_runtime
from tollway.config.loader import load_config
from tollway.settings import Settings
from tollway.wiring.telemetry import Telemetry

PROMPT = "Tell me about the secret garden"
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"


@pytest.fixture(scope="module")
def east() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def west() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


def config(east: FakeOpenAI, west: FakeOpenAI) -> dict[str, Any]:
    return {
        "providers": [
            {"name": "east", "type": "openai", "base_url": east.base_url, "api_key": "sk-upstream-east"},
            {"name": "west", "type": "openai", "base_url": west.base_url, "api_key": "sk-upstream-west"},
        ],
        "models": [
            {
                "name": "duo",
                "targets": [{"provider": "east", "model": "gpt-4o"}, {"provider": "west", "model": "gpt-4o-mini"}],
            },
            {"name": "solo", "targets": [{"provider": "west", "model": "gpt-4o-mini"}]},
        ],
        "consumers": [{"username": "acme-corp", "keys": [KEY]}],
    }


class Traced:
    def __init__(self, app: Any, spans: InMemorySpanExporter, metrics: InMemoryMetricReader) -> None:
        self.app, self.spans, self.metrics = app, spans, metrics

    def sdk(self, **headers: str) -> openai.AsyncOpenAI:
        transport = httpx2.ASGITransport(app=self.app)
        http = httpx2.AsyncClient(transport=transport, base_url="http://tollway")
        return openai.AsyncOpenAI(
            base_url="http://tollway/v1", api_key=KEY, http_client=http, max_retries=0, default_headers=headers
        )

    def finished(self) -> list[ReadableSpan]:
        found = list(self.spans.get_finished_spans())
        self.spans.clear()
        return found


@asynccontextmanager
async def traced_gateway(directory: Path, east: FakeOpenAI, west: FakeOpenAI) -> AsyncIterator[Traced]:
    path = directory / "tollway.yaml"
    path.write_text(json.dumps(config(east, west)))
    settings = Settings(
        config=str(path),
        database_url=f"sqlite:///{directory / 'tollway.db'}",
        journal_dir=str(directory / "journal"),
        billing_worker=False,
        otel="on",
    )
    spans, reader = InMemorySpanExporter(), InMemoryMetricReader()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    telemetry = Telemetry(tracer_provider, MeterProvider(metric_readers=[reader]))
    runtime = build_runtime(settings, load_config(path, {}), telemetry=telemetry)
    await runtime.start()
    try:
        yield Traced(build_app(runtime), spans, reader)
    finally:
        await runtime.stop()


@pytest.fixture
async def traced(tmp_path: Path, east: FakeOpenAI, west: FakeOpenAI) -> AsyncIterator[Traced]:
    async with traced_gateway(tmp_path, east, west) as gateway:
        yield gateway
    east.received.clear()
    west.received.clear()


def by_kind(spans: list[ReadableSpan], kind: SpanKind) -> list[ReadableSpan]:
    return sorted((s for s in spans if s.kind == kind), key=lambda s: s.start_time or 0)


def no_content(spans: list[ReadableSpan]) -> None:
    """No prompt, completion or key in any attribute of any span."""
    for span in spans:
        for value in (span.attributes or {}).values():
            text = str(value)
            for secret in (PROMPT, "Hello from the fake upstream", "from west", KEY, "sk-upstream"):
                assert secret not in text, (span.name, text)


async def test_a_failover_call_is_one_genai_span_with_a_child_per_try_continuing_the_clients_trace(
    traced: Traced, east: FakeOpenAI, west: FakeOpenAI
) -> None:
    east.enqueue(Reply(status=500, body={"error": {"message": "boom", "type": "server_error"}}))
    west.enqueue(Reply(content="from west", usage=usage_block(12, 5, cached=4)))
    async with traced.sdk(traceparent=f"00-{TRACE_ID}-{PARENT_ID}-01") as sdk:
        answer = await sdk.chat.completions.create(model="duo", messages=[{"role": "user", "content": PROMPT}])
    assert answer.choices[0].message.content == "from west"
    spans = traced.finished()
    (call,) = by_kind(spans, SpanKind.SERVER)
    first, second = by_kind(spans, SpanKind.CLIENT)
    assert call.name == "chat duo"
    assert format(call.context.trace_id, "032x") == TRACE_ID
    assert call.parent is not None
    assert format(call.parent.span_id, "016x") == PARENT_ID
    attributes = dict(call.attributes or {})
    assert {k: v for k, v in attributes.items() if k not in ("tollway.request_id", "http.route")} == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "duo",
        "gen_ai.response.model": "gpt-4o-mini",
        "gen_ai.response.id": "chatcmpl-fake123",
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": 12,
        "gen_ai.usage.output_tokens": 5,
        "gen_ai.usage.cache_read.input_tokens": 4,
        "http.request.method": "POST",
        "http.response.status_code": 200,
        "tollway.model": "duo",
        "tollway.consumer": "acme-corp",
        "tollway.provider": "west",
        "tollway.attempts": 2,
    }
    assert attributes["http.route"] == "/v1/chat/completions"
    assert str(attributes["tollway.request_id"]).startswith("req_")
    for attempt, (provider, model, fake) in zip(
        (first, second), (("east", "gpt-4o", east), ("west", "gpt-4o-mini", west)), strict=True
    ):
        assert attempt.parent is not None
        assert attempt.parent.span_id == call.context.span_id
        assert attempt.context.trace_id == call.context.trace_id
        assert attempt.name == "POST"
        assert attempt.attributes is not None
        assert attempt.attributes["tollway.provider"] == provider
        assert attempt.attributes["gen_ai.request.model"] == model
        assert attempt.attributes["server.address"] == "127.0.0.1"
        assert attempt.attributes["server.port"] == fake.port
        # the try's own context went upstream: the upstream's work joins the client's trace under this try
        (received,) = fake.received
        assert received.headers["traceparent"] == f"00-{TRACE_ID}-{format(attempt.context.span_id, '016x')}-01"
    assert first.attributes is not None
    assert second.attributes is not None
    assert (first.attributes["http.response.status_code"], first.attributes["error.type"]) == (500, "500")
    assert second.attributes["http.response.status_code"] == 200
    assert "error.type" not in second.attributes
    no_content(spans)


async def test_a_stream_without_traceparent_starts_a_trace_and_the_genai_metrics_count_it(
    traced: Traced, west: FakeOpenAI
) -> None:
    west.enqueue(Reply(stream_pieces=["Hel", "lo"], usage=usage_block(7, 2)))
    async with traced.sdk() as sdk:
        stream = await sdk.chat.completions.create(
            model="solo", messages=[{"role": "user", "content": PROMPT}], stream=True
        )
        pieces = [chunk.choices[0].delta.content async for chunk in stream if chunk.choices]
    assert "".join(p or "" for p in pieces).replace(" ", "") == "Hello"
    spans = traced.finished()
    (call,) = by_kind(spans, SpanKind.SERVER)
    (attempt,) = by_kind(spans, SpanKind.CLIENT)
    assert call.parent is None
    assert attempt.parent is not None
    assert attempt.parent.span_id == call.context.span_id
    assert call.attributes is not None
    assert call.attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert (call.attributes["gen_ai.usage.input_tokens"], call.attributes["gen_ai.usage.output_tokens"]) == (7, 2)
    assert call.attributes["gen_ai.response.model"] == "gpt-4o-mini"
    (received,) = west.received
    assert received.headers["traceparent"].split("-")[2] == format(attempt.context.span_id, "016x")
    no_content(spans)
    data = traced.metrics.get_metrics_data()
    assert data is not None
    found: dict[str, Any] = {m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    tokens = {p.attributes["gen_ai.token.type"]: p for p in found["gen_ai.client.token.usage"].data.data_points}
    assert (tokens["input"].sum, tokens["output"].sum) == (7, 2)
    assert tokens["input"].attributes["gen_ai.request.model"] == "solo"
    assert tokens["input"].attributes["gen_ai.provider.name"] == "openai"
    (duration,) = found["gen_ai.client.operation.duration"].data.data_points
    assert duration.count == 1
    assert duration.attributes["gen_ai.operation.name"] == "chat"


async def test_a_gemini_format_call_is_generate_content_with_googles_finish_reason(
    traced: Traced, west: FakeOpenAI
) -> None:
    west.enqueue(Reply(usage=usage_block(3, 4)))
    transport = httpx.ASGITransport(app=traced.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://tollway") as http:
        answer = await http.post(
            "/v1beta/models/solo:generateContent",
            json={"contents": [{"role": "user", "parts": [{"text": PROMPT}]}]},
            headers={"x-goog-api-key": KEY},
        )
    assert answer.status_code == 200, answer.text
    spans = traced.finished()
    (call,) = by_kind(spans, SpanKind.SERVER)
    assert call.name == "generate_content solo"
    assert call.attributes is not None
    assert call.attributes["gen_ai.response.finish_reasons"] == ("STOP",)
    assert call.attributes["http.route"] == "/v1beta/models/{model}:generateContent"
    assert (call.attributes["gen_ai.usage.input_tokens"], call.attributes["gen_ai.usage.output_tokens"]) == (3, 4)
    no_content(spans)


async def test_an_embeddings_call_is_an_embeddings_span_without_finish_reasons(traced: Traced) -> None:
    async with traced.sdk() as sdk:
        await sdk.embeddings.create(model="solo", input=[PROMPT])
    (call,) = by_kind(traced.finished(), SpanKind.SERVER)
    assert call.name == "embeddings solo"
    assert call.attributes is not None
    assert call.attributes["gen_ai.operation.name"] == "embeddings"
    assert call.attributes["gen_ai.usage.input_tokens"] == 1200  # the fake's default usage
    assert "gen_ai.response.finish_reasons" not in call.attributes


async def test_a_refused_call_is_a_span_with_its_error_and_no_try(traced: Traced) -> None:
    async with traced.sdk() as sdk:
        with pytest.raises(openai.NotFoundError):
            await sdk.chat.completions.create(model="nope", messages=[{"role": "user", "content": PROMPT}])
        await sdk.models.list()  # not a model call: no span
    (call,) = traced.finished()
    assert call.kind == SpanKind.SERVER
    assert call.attributes is not None
    assert (call.attributes["http.response.status_code"], call.attributes["error.type"]) == (404, "404")
    assert call.attributes["tollway.consumer"] == "acme-corp"


class OtlpReceiver(BaseHTTPRequestHandler):
    """A collector's OTLP/HTTP traces endpoint: keeps each export request's spans."""

    spans: ClassVar[list[Any]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path == "/v1/traces":
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            for resource in request.resource_spans:
                service = {a.key: a.value.string_value for a in resource.resource.attributes}["service.name"]
                for scope in resource.scope_spans:
                    OtlpReceiver.spans.extend((service, span) for span in scope.spans)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return None


def test_tollway_serve_exports_genai_spans_over_otlp_as_the_otel_variables_say(tmp_path: Path) -> None:
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), OtlpReceiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    config = {
        "providers": [{"name": "local", "type": "simulator"}],
        "models": [{"name": "demo", "targets": [{"provider": "local", "model": "demo"}]}],
        "consumers": [{"username": "acme-corp", "keys": [KEY]}],
    }
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.server_address[1]}",  # tracing on (auto)
        "OTEL_SERVICE_NAME": "gateway-under-test",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_BSP_SCHEDULE_DELAY": "50",
    }
    process = TollwayProcess(tmp_path, config, env=env).start()
    try:
        with httpx.Client(base_url=process.base_url, timeout=10) as http:
            body = {"model": "demo", "messages": [{"role": "user", "content": PROMPT}]}
            answered = http.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"})
            assert answered.status_code == 200

        def exported() -> bool:
            return any(span.name == "chat demo" for _, span in OtlpReceiver.spans)

        wait_until(exported, timeout_s=15)
    finally:
        process.stop()
        receiver.shutdown()
        receiver.server_close()
    service, span = next((service, span) for service, span in OtlpReceiver.spans if span.name == "chat demo")
    assert service == "gateway-under-test"
    attributes = {a.key: a.value for a in span.attributes}
    assert attributes["gen_ai.provider.name"].string_value == "tollway.simulator"
    assert attributes["gen_ai.usage.output_tokens"].int_value > 0
    assert attributes["tollway.consumer"].string_value == "acme-corp"
    assert any(s.parent_span_id == span.span_id for _, s in OtlpReceiver.spans), "the try's span"


def test_with_tracing_off_opentelemetry_is_never_imported(tmp_path: Path) -> None:
    """Neither Tollway's telemetry modules nor OpenTelemetry's exporters are loaded, so nothing is traced or asked
    per request. (Libraries load OpenTelemetry's API and SDK packages by themselves when they are installed:
    FastAPI 0.165's `fastapi.telemetry`, redis-py's `redis.observability`; neither configures anything.)"""
    script = f"""
import asyncio, sys
import httpx
import httpx2
from tollway.bootstrap import build_app, build_runtime
from tollway.config.loader import load_config
from tollway.settings import Settings

async def main():
    settings = Settings.from_env({{}}, config={str(tmp_path / "tollway.yaml")!r},
        database_url="sqlite:///{tmp_path / "tollway.db"}", journal_dir={str(tmp_path / "journal")!r},
        billing_worker=False)
    assert not settings.tracing
    runtime = build_runtime(settings, load_config(settings.config, {{}}))
    await runtime.start()
    transport = httpx.ASGITransport(app=build_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://tollway") as http:
        body = {{"model": "demo", "messages": [{{"role": "user", "content": "hi"}}]}}
        answer = await http.post("/v1/chat/completions", json=body, headers={{"Authorization": "Bearer {KEY}"}})
        assert answer.status_code == 200, answer.text
    await runtime.stop()
    loaded = ("opentelemetry.exporter", "tollway.gateway.telemetry", "tollway.wiring.telemetry")
    print(sorted(name for name in sys.modules if name.startswith(loaded)))

asyncio.run(main())
"""
    (tmp_path / "tollway.yaml").write_text(
        json.dumps(
            {
                "providers": [{"name": "local", "type": "simulator"}],
                "models": [{"name": "demo", "targets": [{"provider": "local", "model": "demo"}]}],
                "consumers": [{"username": "acme-corp", "keys": [KEY]}],
            }
        )
    )
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith(("OTEL_", "TOLLWAY_"))}
    ran = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip().splitlines()[-1] == "[]"

"""OpenTelemetry's providers and exporters, built from the standard OTEL_* variables; imported only when
tracing is on (Settings.tracing), so that with it off nothing of OpenTelemetry is loaded.

Traces: OTEL_TRACES_EXPORTER (otlp, the default; console; none), exported in batches (OTEL_BSP_*) over
OTLP/HTTP (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_EXPORTER_OTLP_HEADERS, ...,
read by the exporter). Metrics: OTEL_METRICS_EXPORTER (the same choices), every OTEL_METRIC_EXPORT_INTERVAL
(ms). The resource: OTEL_SERVICE_NAME (default `tollway`) and OTEL_RESOURCE_ATTRIBUTES.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

from tollway.config.schema import ProviderConfig
from tollway.gateway.telemetry import GenAiTelemetry, ProviderFacts

log = logging.getLogger("tollway")

SYSTEMS = {  # provider type -> gen_ai.provider.name (the conventions' names; the simulator is Tollway's own)
    "openai": "openai",
    "anthropic": "anthropic",
    "gemini": "gcp.gemini",
    "azure_openai": "azure.ai.openai",
    "simulator": "tollway.simulator",
}
DEFAULT_URLS = {"openai": "https://api.openai.com", "anthropic": "https://api.anthropic.com"}
DEFAULT_URLS["gemini"] = "https://generativelanguage.googleapis.com"


@dataclass
class Telemetry:
    tracer_provider: TracerProvider
    meter_provider: MeterProvider

    def observer(self, providers: Callable[[], Sequence[ProviderConfig]]) -> GenAiTelemetry:
        return GenAiTelemetry(self.tracer_provider, self.meter_provider, provider_facts(providers))

    def shutdown(self) -> None:
        """Export what is left (spans, metrics) and stop."""
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


def resource() -> Resource:
    """OTEL_SERVICE_NAME (default `tollway`) and OTEL_RESOURCE_ATTRIBUTES; `service.instance.id` is this
    process's own unless set (the workers of `serve --workers N` export apart: their metrics must not merge)."""
    found = Resource.create()
    if str(found.attributes.get("service.name", "")).startswith("unknown_service"):
        found = found.merge(Resource({"service.name": "tollway"}))
    if "service.instance.id" not in found.attributes:
        found = found.merge(Resource({"service.instance.id": f"{socket.gethostname()}-{os.getpid()}"}))
    return found


def from_env(env: Mapping[str, str]) -> Telemetry:
    """The providers the OTEL_* variables ask for (the exporters read their own variables)."""
    if env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf") != "http/protobuf":
        log.warning("OTEL_EXPORTER_OTLP_PROTOCOL: only http/protobuf is supported; exporting with it")
    tracer_provider = TracerProvider(resource=resource())
    for processor in _span_processors(env.get("OTEL_TRACES_EXPORTER", "otlp")):
        tracer_provider.add_span_processor(processor)
    readers: list[MetricReader] = []
    for name in _names(env.get("OTEL_METRICS_EXPORTER", "otlp")):
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

            readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
        elif name == "console":
            readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter()))
    return Telemetry(tracer_provider, MeterProvider(resource=tracer_provider.resource, metric_readers=readers))


def _span_processors(names: str) -> list[SpanProcessor]:
    processors: list[SpanProcessor] = []
    for name in _names(names):
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            processors.append(BatchSpanProcessor(OTLPSpanExporter()))
        elif name == "console":
            processors.append(BatchSpanProcessor(ConsoleSpanExporter()))
    return processors


def _names(value: str) -> list[str]:
    names = [n.strip().lower() for n in value.split(",") if n.strip()]
    for name in names:
        if name not in ("otlp", "console", "none"):
            log.warning("OpenTelemetry exporter %r is not supported (otlp, console, none): left out", name)
    return [n for n in names if n != "none"]


def provider_facts(providers: Callable[[], Sequence[ProviderConfig]]) -> Callable[[str], ProviderFacts | None]:
    """The conventions' facts of a configured provider by name, as the config (reloads included) has it."""
    cache: dict[int, dict[str, ProviderFacts]] = {}

    def facts(name: str) -> ProviderFacts | None:
        configs = providers()
        known = cache.get(id(configs))
        if known is None:
            cache.clear()
            known = cache[id(configs)] = {p.name: _facts(p) for p in configs}
        return known.get(name)

    return facts


def _facts(config: ProviderConfig) -> ProviderFacts:
    system = SYSTEMS.get(config.type, config.type)
    url = config.base_url or DEFAULT_URLS.get(config.type)
    if url is None:
        return ProviderFacts(system)
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return ProviderFacts(system, parts.hostname, port)

#!/usr/bin/env python3
"""What OpenTelemetry costs the gateway per request, in process: tracing off (the default: no observer, no
OpenTelemetry module of Tollway's loaded) against on (a span per call and per try, the GenAI metrics, spans
batched to an exporter that drops them, so that exporting's own work is left out).

bench/routing.py's harness: the gateway's ASGI app over an in-memory provider answering a chat completion at
once (a single-target model, the balancing policy installed); the setups alternate in small batches, each
measured as CPU time; medians and best batches. With `--off-only` it prints the median of tracing off alone,
to compare with a checkout from before the hooks (`PYTHONPATH=<that checkout>/src`).

    .venv/bin/python bench/telemetry.py
    .venv/bin/python bench/telemetry.py --rounds 40 --requests 2000
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
from collections.abc import Sequence

from routing import drive, gateway
from tollway.gateway.app import Gateway


def traced_gateway() -> Gateway:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    from tollway.gateway.telemetry import GenAiTelemetry, ProviderFacts

    class Dropping(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(Dropping()))
    telemetry = GenAiTelemetry(tracer_provider, MeterProvider(), lambda name: ProviderFacts("openai", "api", 443))
    return gateway(False, wrap=telemetry.policy, observer=telemetry)


async def measure(apps: dict[str, Gateway], rounds: int, requests: int) -> dict[str, float]:
    for app in apps.values():
        await drive(app, 2000)  # warm-up
    samples: dict[str, list[float]] = {name: [] for name in apps}
    for _ in range(rounds):
        for name, app in apps.items():
            gc.collect()
            samples[name].append(await drive(app, requests))
    print(f"Gateway CPU per request in process ({rounds} alternating batches of {requests:,}):")
    for name, values in samples.items():
        print(f"  {name:12s} median {statistics.median(values) * 1e6:6.1f} µs, best {min(values) * 1e6:6.1f} µs")
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--off-only", action="store_true")
    args = parser.parse_args()
    if args.off_only:
        asyncio.run(measure({"off": gateway(False)}, args.rounds, args.requests))
        return
    medians = asyncio.run(measure({"off": gateway(False), "on": traced_gateway()}, args.rounds, args.requests))
    print(f"  on - off (medians): {(medians['on'] - medians['off']) * 1e6:+.1f} µs")


if __name__ == "__main__":
    main()

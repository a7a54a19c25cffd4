#!/usr/bin/env python3
"""The gateway's own CPU per request, in process: a single-target model against a two-target weighted one
(and, with --journal, against the same single-target gateway writing its usage journal).

No sockets and no upstream: the gateway's ASGI app (auth, parse, route, target policy, relay, usage
record handed to a sink that drops it) over an in-memory provider that answers a fixed chat
completion at once. The two setups alternate in many small batches (a garbage collection before
each), each batch measured as CPU time (time.process_time); the median and the best batch of each
are reported, so other load on the machine inflates both alike rather than one of them.

    .venv/bin/python bench/routing.py                  # 30 alternations x 1,000 requests
    .venv/bin/python bench/routing.py --rounds 60 --requests 2000
    .venv/bin/python bench/routing.py --journal        # + usage journaled to a file (TOLLWAY_INGEST=external's
                                                       #   hot path: HandOffSink over a FileJournal in a temp dir)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Callable, MutableMapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from tollway.adapters.journal.file import FileJournal
from tollway.clock import SystemClock
from tollway.config.schema import TollwayConfig, balanced_models
from tollway.gateway.app import Gateway
from tollway.gateway.balancing.policy import BalancingPolicy
from tollway.gateway.flow import Flow
from tollway.gateway.hooks import TargetPolicy
from tollway.gateway.metrics import GatewayMetrics
from tollway.gateway.observe import CallObserver
from tollway.gateway.providers.base import BufferedResponse, Provider, UpstreamRequest, UpstreamResponse
from tollway.gateway.relay import GatewayLimits
from tollway.metering.events import Event
from tollway.metering.llm import LlmCall
from tollway.metering.sink import UsageSink
from tollway.metering.spool import HandOffSink
from tollway.wiring.gateway import gateway_state

if TYPE_CHECKING:
    from tollway.gateway.http import Receive, Send
    from tollway.metering.intents import CallIntent  # not in versions before write-ahead intents

KEY = "bench-key-0123"
BODY = b'{"model":"bench","messages":[{"role":"user","content":"hi"}]}'
ANSWER = orjson.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello."}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11},
    }
)


class Answering:
    """An upstream in memory: the same chat completion, at once."""

    native_paths = frozenset({"/chat/completions"})

    def __init__(self, name: str) -> None:
        self.name = name

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        async def body() -> AsyncIterator[bytes]:
            yield ANSWER

        response = BufferedResponse(200, "application/json", body())
        response.content_length = len(ANSWER)
        return response


class Dropped:
    """A usage sink that keeps nothing (storing is not the gateway's hot path)."""

    backlog = 0

    def emit(self, events: Sequence[Event]) -> None:
        return None

    def record_call(self, call: LlmCall) -> None:
        return None

    def begin(self, intent: CallIntent) -> None:
        return None

    def end(self, request_id: str) -> None:
        return None

    def probe(self) -> None:
        return None

    async def start(self) -> None:
        return None

    async def stop(self, timeout_s: float = 10.0) -> bool:
        return True


def config(weighted: bool) -> TollwayConfig:
    targets: list[dict[str, Any]] = [{"provider": "a", "model": "gpt-4o-mini", "weight": 3}]
    if weighted:
        targets.append({"provider": "b", "model": "gpt-4o-mini", "weight": 1})
    return TollwayConfig.model_validate(
        {
            "providers": [{"name": name, "type": "openai", "api_key": "sk-x"} for name in ("a", "b")],
            "models": [{"name": "bench", "balance": "weighted" if weighted else "priority", "targets": targets}],
            "consumers": [{"username": "bench-user", "keys": [KEY]}],
        }
    )


def gateway(
    weighted: bool,
    sink: UsageSink | None = None,
    *,
    wrap: Callable[[TargetPolicy], TargetPolicy] | None = None,
    observer: CallObserver | None = None,
) -> Gateway:
    """`wrap`: what the policy is wrapped in (bench/telemetry.py's tracing of tries), with its `observer`."""
    loaded = config(weighted)
    providers: dict[str, Provider] = {name: Answering(name) for name in ("a", "b")}
    state = gateway_state(loaded, providers)
    clock = SystemClock()
    balancing = BalancingPolicy(clock)
    balancing.configure(balanced_models(loaded.models, loaded.providers), state.prices)
    policy: TargetPolicy = balancing if wrap is None else wrap(balancing)
    limits = GatewayLimits(max_body_bytes=1 << 20, drain_timeout_s=1.0)
    return Gateway(Flow(state, sink or Dropped(), GatewayMetrics(), clock, limits, policy=policy), observer=observer)


def chat_request() -> tuple[dict[str, Any], Receive, Send, list[int]]:
    """One chat completion as ASGI: its scope, receive and send, and the statuses that send saw."""
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/chat/completions",
        "headers": [
            (b"authorization", b"Bearer " + KEY.encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(BODY)).encode()),
        ],
    }
    message = {"type": "http.request", "body": BODY, "more_body": False}
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return message

    async def send(sent: MutableMapping[str, Any]) -> None:
        if sent["type"] == "http.response.start":
            statuses.append(sent["status"])

    return scope, receive, send, statuses


def per_request(began: float, statuses: list[int], requests: int) -> float:
    """CPU seconds per request since `began`; every answer must have been a 200."""
    spent = time.process_time() - began
    if set(statuses) != {200}:
        raise SystemExit(f"unexpected statuses: {sorted(set(statuses))}")
    return spent / requests


async def drive(app: Gateway, requests: int) -> float:
    """CPU seconds per request over `requests` sequential requests."""
    scope, receive, send, statuses = chat_request()
    began = time.process_time()
    for _ in range(requests):
        await app(dict(scope), receive, send)
    return per_request(began, statuses, requests)


async def drive_concurrently(app: Gateway, requests: int, concurrency: int) -> float:
    """CPU seconds per request over `requests` requests, `concurrency` of them in flight at any time."""
    scope, receive, send, statuses = chat_request()

    async def client(calls: int) -> None:
        for _ in range(calls):
            await app(dict(scope), receive, send)

    began = time.process_time()
    share, extra = divmod(requests, concurrency)
    await asyncio.gather(*(client(share + (i < extra)) for i in range(concurrency)))
    return per_request(began, statuses, requests)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--journal", action="store_true", help="also a single-target gateway journaling its usage")
    args = parser.parse_args()
    apps = {"single target": gateway(False), "two targets, weighted 3:1": gateway(True)}
    with tempfile.TemporaryDirectory(prefix="tollway-bench-journal-") as directory:
        sink: HandOffSink | None = None
        if args.journal:
            # the worker-apart setup's hot path: records appended to segments handed over every 0.25 s
            sink = HandOffSink(FileJournal(Path(directory)), interval_s=0.25)
            await sink.start()
            apps["single target, usage journaled"] = gateway(False, sink)
        await measure(apps, args)
        if sink is not None:
            await sink.stop()


async def measure(apps: dict[str, Gateway], args: argparse.Namespace) -> None:
    for app in apps.values():
        await drive(app, 2000)  # warm-up
    samples: dict[str, list[float]] = {name: [] for name in apps}
    for _ in range(args.rounds):
        for name, app in apps.items():
            gc.collect()
            samples[name].append(await drive(app, args.requests))
    for name, values in samples.items():
        print(
            f"{name:32s} median {statistics.median(values) * 1e6:6.1f} µs, best {min(values) * 1e6:6.1f} µs "
            f"CPU per request ({args.rounds} batches of {args.requests:,})"
        )
    single, weighted, *journaled = (statistics.median(values) for values in samples.values())
    print(f"weighted / single (medians): {weighted / single:.3f}")
    if journaled:
        print(f"journaled - single (medians): {(journaled[0] - single) * 1e6:+.1f} µs")


if __name__ == "__main__":
    asyncio.run(main())

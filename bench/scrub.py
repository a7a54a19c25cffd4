#!/usr/bin/env python3
"""What scrubbing every relayed body of Tollway's credentials costs.

Two figures:

1. `Scrubber.bytes` alone, on bodies of several sizes that hold no secret (the usual case: the body is
   searched once per secret and returned as is, not copied), with six configured secrets (two provider
   keys, the admin and metrics tokens, the Stripe key and its webhook secret) plus the presented key;
   and once on a body that holds one (then it is copied once per secret found).
2. The gateway's own CPU per request in process (bench/routing.py's harness: the ASGI app over an
   in-memory upstream answering a chat completion), with those six secrets against none, alternating
   in many small batches; medians.

    .venv/bin/python bench/scrub.py
    .venv/bin/python bench/scrub.py --rounds 40 --requests 2000
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
import timeit

import orjson

from routing import ANSWER, KEY, Answering, Dropped, config, drive
from tollway.clock import SystemClock
from tollway.gateway.app import Gateway
from tollway.gateway.flow import Flow
from tollway.gateway.metrics import GatewayMetrics
from tollway.gateway.providers.base import Provider
from tollway.gateway.relay import GatewayLimits
from tollway.scrub import Scrubber
from tollway.wiring.gateway import gateway_state

SECRETS = [
    "sk-proj-4f1d0c3b2a9e8d7c6b5a4f3e2d1c0b9a",
    "sk-ant-api03-7e6d5c4b3a29180f7e6d5c4b3a291",
    "tw-admin-0123456789abcdef",
    "tw-metrics-fedcba9876543210",
    "sk_live_51H0000000000000000000000",
    "whsec_0a1b2c3d4e5f6a7b8c9d0e1f",
]
PRESENTED = KEY.encode()


def body_of(size: int) -> bytes:
    """A chat completion of about `size` bytes (the content padded with prose-like text)."""
    words = "the quick brown fox jumps over the lazy dog and tells the model a story "
    content = (words * (size // len(words) + 1))[: max(0, size - len(ANSWER))]
    answer = orjson.loads(ANSWER)
    answer["choices"][0]["message"]["content"] = content
    return orjson.dumps(answer)


def per_call(function: object, number: int) -> float:
    timer = timeit.Timer(function)  # type: ignore[arg-type]
    return min(timer.repeat(repeat=5, number=number)) / number


def scrubber_alone() -> None:
    scrubber = Scrubber(SECRETS)
    print("Scrubber.bytes, six secrets + the presented key (best of 5):")
    for size in (len(ANSWER), 4 * 1024, 64 * 1024, 1024 * 1024):
        body = body_of(size)
        number = max(20, 2_000_000 // len(body))
        seconds = per_call(lambda body=body: scrubber.bytes(body, PRESENTED), number)
        assert scrubber.bytes(body, PRESENTED) is body
        print(f"  {len(body):>9,} B, no secret: {seconds * 1e6:9.2f} µs  ({len(body) / seconds / 1e9:5.1f} GB/s)")
    leaky = body_of(4 * 1024).replace(b"lazy dog", SECRETS[0].encode(), 1)
    seconds = per_call(lambda: scrubber.bytes(leaky, PRESENTED), 20_000)
    print(f"  {len(leaky):>9,} B, one secret: {seconds * 1e6:8.2f} µs")


def gateway(secrets: list[str]) -> Gateway:
    loaded = config(False)
    providers: dict[str, Provider] = {name: Answering(name) for name in ("a", "b")}
    limits = GatewayLimits(max_body_bytes=1 << 20, drain_timeout_s=1.0)
    state = gateway_state(loaded, providers)
    return Gateway(Flow(state, Dropped(), GatewayMetrics(), SystemClock(), limits, scrubber=Scrubber(secrets)))


async def in_process(rounds: int, requests: int) -> None:
    apps = {"no secrets configured": gateway([]), "six secrets": gateway(SECRETS)}
    for app in apps.values():
        await drive(app, 2000)  # warm-up
    samples: dict[str, list[float]] = {name: [] for name in apps}
    for _ in range(rounds):
        for name, app in apps.items():
            gc.collect()
            samples[name].append(await drive(app, requests))
    print(f"Gateway CPU per request in process ({rounds} alternating batches of {requests:,}):")
    for name, values in samples.items():
        print(f"  {name:22s} median {statistics.median(values) * 1e6:6.1f} µs, best {min(values) * 1e6:6.1f} µs")
    none, six = (statistics.median(values) for values in samples.values())
    print(f"  six secrets - none (medians): {(six - none) * 1e6:+.2f} µs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--requests", type=int, default=1000)
    args = parser.parse_args()
    began = time.perf_counter()
    scrubber_alone()
    asyncio.run(in_process(args.rounds, args.requests))
    print(f"({time.perf_counter() - began:.0f} s)")


if __name__ == "__main__":
    main()

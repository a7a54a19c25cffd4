"""How long the dashboard's pages take over a month of usage (docs/dashboard.md, "Staying fast").

Fills a SQLite database with N llm.tokens/llm.request events spread over the last 30 days (50 consumers, 4 models,
input and output), rolls them up as the rollup worker would, then times each page in process (httpx over ASGI,
signed in): the median of 5 loads after one warm-up. Run: PYTHONPATH=src python bench/dashboard_pages.py --events
1000000
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import httpx

from tollway.bootstrap import build_app, build_runtime
from tollway.config.loader import load_config
from tollway.metering.events import Event
from tollway.settings import Settings

PAGES = (
    "/dashboard?range=30d",
    "/dashboard?range=24h",
    "/dashboard?range=7d&granularity=hour",
    "/dashboard/customers/acme?range=30d",
    "/dashboard/meters?meter=llm_tokens&range=30d&groupBy=model",
    "/dashboard/live",
)


def events(count: int, now: datetime) -> list[Event]:
    out = []
    span_us = 30 * 86_400 * 1_000_000
    for i in range(count // 3):
        at = now - timedelta(microseconds=(i * 7_919_993) % span_us)
        subject = "acme-corp" if i % 50 == 0 else f"consumer-{i % 50}"
        model = ("demo", "gpt-4o", "claude", "mini")[i % 4]
        common = {"model": model, "provider": "local", "status_code": 200, "route": "/v1/chat/completions"}
        for kind, tokens in (("input", 1000 + i % 97), ("output", 100 + i % 13)):
            out.append(
                Event(f"r{i}:{kind}", "bench", "llm.tokens", subject, at, {"tokens": tokens, "type": kind, **common})
            )
        out.append(Event(f"r{i}:request", "bench", "llm.request", subject, at, {"input_tokens": 1000, **common}))
    return out


async def main(count: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="tollway-bench-dashboard-"))
    config_path = workdir / "tollway.yaml"
    config_path.write_text(
        "providers: [{name: local, type: simulator}]\n"
        "models: [{name: demo, targets: [{provider: local, model: demo}]}]\n"
        "consumers: [{username: acme-corp, keys: [acme-secret-key]}]\n"
        "customers: [{key: acme, name: Acme Corp, usage_from: [acme-corp]}]\n"
    )
    settings = Settings(
        config=str(config_path),
        database_url=f"sqlite:///{workdir / 'tollway.db'}",
        journal_dir=str(workdir / "journal"),
        admin_token="bench-admin-token",
        billing_worker=False,
        ingest="inline",
    )
    runtime = build_runtime(settings, load_config(config_path, {}))
    app = build_app(runtime)
    await runtime.start()
    try:
        now = runtime.clock.now()
        started = time.perf_counter()
        batch = events(count, now)
        for start in range(0, len(batch), 20_000):
            await runtime.store.insert_events(batch[start : start + 20_000])
        while await runtime.store.roll_up() > 0:
            pass
        print(f"{len(batch):,} events stored and rolled up in {time.perf_counter() - started:.1f} s")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tollway") as client:
            form = await client.get("/dashboard/signin")
            token = re.search(r'name="csrf" value="([^"]+)"', form.text)
            assert token is not None
            await client.post("/dashboard/signin", data={"token": "bench-admin-token", "csrf": token.group(1)})
            for page in PAGES:
                await client.get(page)
                times = []
                for _ in range(5):
                    begin = time.perf_counter()
                    answer = await client.get(page)
                    times.append((time.perf_counter() - begin) * 1000)
                    assert answer.status_code == 200, answer.text[:300]
                print(f"{page:60} median {statistics.median(times):7.1f} ms  max {max(times):7.1f} ms")
    finally:
        await runtime.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=300_000)
    asyncio.run(main(parser.parse_args().events))

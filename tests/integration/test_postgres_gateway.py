"""The core flow on PostgreSQL: openai SDK calls through Tollway, metered exactly, stored once."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import openai

from tests.support.fake_upstream import DEFAULT_USAGE, FakeOpenAI, Reply
from tests.support.scenario import KEY, SUBJECT, client, config_for, metered, usage_block
from tests.support.stored import request_records, stored_events, tokens_by_type
from tests.support.tollway_process import TollwayProcess

MESSAGES: Any = [{"role": "user", "content": "Hi"}]
CONCURRENT = 20


def test_sdk_traffic_through_tollway_on_postgres_is_metered_exactly(
    workdir: Path, fake_openai: FakeOpenAI, postgres_url: str
) -> None:
    scripted = [
        usage_block(1200, 300, cached=1024, reasoning=128),
        usage_block(57, 11),
        usage_block(402, 90, cached=256),
    ]
    fake_openai.enqueue(*(Reply(usage=u) for u in scripted))
    gateway = TollwayProcess(workdir, config_for(fake_openai), database_url=postgres_url).start()
    try:
        with client(gateway) as sdk:
            completion = sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES)
            assert completion.usage is not None
            assert completion.usage.prompt_tokens == 1200
            chunks = list(sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
            assert all(c.usage is None for c in chunks)
            chunks = list(
                sdk.chat.completions.create(
                    model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
                )
            )
            assert chunks[-1].usage is not None
            assert chunks[-1].usage.total_tokens == 492

        async def burst() -> None:
            async with openai.AsyncOpenAI(base_url=gateway.base_url + "/v1", api_key=KEY, max_retries=0) as sdk:
                calls = [
                    sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=i % 2 == 0)
                    for i in range(CONCURRENT)
                ]
                await asyncio.gather(*calls)

        asyncio.run(burst())  # the default reply: DEFAULT_USAGE each

        expected = metered([*scripted, *[DEFAULT_USAGE] * CONCURRENT])
        assert expected == {
            "input": 176 + 57 + 146 + 176 * CONCURRENT,
            "cache_read": 1024 + 256 + 1024 * CONCURRENT,
            "output": 300 + 11 + 90 + 300 * CONCURRENT,
        }
        gateway.expect_tokens(expected, timeout_s=15)
        events = stored_events(postgres_url)
        assert len(request_records(events)) == 3 + CONCURRENT
        assert len(events) == 4 + 3 + 4 + 4 * CONCURRENT
        assert tokens_by_type(events) == expected
        by_model = gateway.query("llm_tokens", subject=SUBJECT, groupBy=["model", "status_code"])["data"]
        assert [(r["groupBy"], int(r["value"])) for r in by_model] == [
            ({"model": "gpt-4o", "status_code": "200"}, sum(expected.values()))
        ]
    finally:
        gateway.stop()

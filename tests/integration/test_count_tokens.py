"""POST /v1/messages/count_tokens for every model: exact for the simulator (its own tokenizer), the documented
estimate where no provider counts; Anthropic's shape, authenticated, never metered."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anthropic
import pytest

from tests.support.agent_app import KEY, tollway_app
from tests.support.usage_events import request_events

CONFIG: dict[str, Any] = {
    "providers": [
        {"name": "local", "type": "simulator", "tokens_per_second": 0},
        {"name": "up", "type": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key": "sk-never-called"},
    ],
    "models": [
        {"name": "demo", "targets": [{"provider": "local", "model": "demo"}]},
        {"name": "gpt-4o", "targets": [{"provider": "up", "model": "gpt-4o"}]},
    ],
    "consumers": [{"username": "acme-corp", "keys": [KEY]}],
}
TOOLS: Any = [{"name": "get_time", "input_schema": {"type": "object", "properties": {}}}]


async def test_counts_for_the_simulator_exactly_and_estimates_elsewhere(tmp_path: Path) -> None:
    messages: Any = [{"role": "user", "content": "Hello, world!"}]
    async with (
        tollway_app(tmp_path, CONFIG) as app,
        app.http2() as http,
        anthropic.AsyncAnthropic(base_url="http://tollway", api_key=KEY, http_client=http) as claude,
    ):
        raw = await claude.messages.with_raw_response.count_tokens(model="demo", messages=messages)
        assert raw.headers["x-tollway-token-count"] == "exact"
        # 3 for the reply + 3 for the message + 4 tokens: "Hello", ",", " world", "!"
        assert (await raw.parse()).input_tokens == 10

        # with a system prompt and tools: what the simulator then reports as input_tokens
        options: Any = {"model": "demo", "messages": messages, "system": "Be brief.", "tools": TOOLS}
        counted = await claude.messages.count_tokens(**options)
        answer = await claude.messages.create(max_tokens=8, **options)
        assert counted.input_tokens == answer.usage.input_tokens
        # + 3 + 3 ("Be brief.") + the tool in chat form as JSON, one piece per word or punctuation mark:
        # [{"type":"function","function":{"name":"get_time","parameters":{"type":"object","properties":{}}}}]
        # is 46 pieces (9 quoted words of 3 pieces each, and 19 single marks)
        assert counted.input_tokens == 10 + 6 + 46

        # no provider counts for gpt-4o: 3 + (3 + ceil(13 / 4)) + (3 + ceil(9 / 4)) = 16 tokens
        raw = await claude.messages.with_raw_response.count_tokens(
            model="gpt-4o", messages=messages, system="Be brief."
        )
        assert raw.headers["x-tollway-token-count"] == "estimate"
        assert (await raw.parse()).input_tokens == 16

        with pytest.raises(anthropic.NotFoundError):
            await claude.messages.count_tokens(model="nope", messages=messages)
        refused = await http.post("/v1/messages/count_tokens", json={"model": "demo", "messages": messages})
        assert refused.status_code == 401
        assert refused.json()["type"] == "error"
    assert len(request_events(app.database)) == 1  # only the messages call: counting is not metered

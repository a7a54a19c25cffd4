"""Codex CLI's requests (tests/fixtures/clients/codex_exec_*.json, captured from Codex 0.171.0), replayed with
the openai SDK's streaming Responses call against the quickstart's simulator and an OpenAI-compatible server
that serves only chat completions (provider `endpoints: [chat/completions]`).

What only OpenAI's Responses service honours (reasoning summaries, `include` of encrypted reasoning,
`client_metadata`, `prompt_cache_key`, the `namespace` tool group, the built-in `web_search` tool, earlier
reasoning items) is dropped and named in `x-tollway-dropped`; `translation: strict` refuses it instead. The
stream is the documented Responses event sequence and the tokens metered equal the usage Codex was told.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai.types.responses import ResponseCompletedEvent

from tests.support.fake_upstream import FakeOpenAI
from tests.support.in_process import InProcess, in_process
from tests.support.stored import calls_stored_through, stored_events, tokens_by_type

KEY = "acme-secret-key"
FIXTURES = Path(__file__).parent.parent / "fixtures" / "clients"
FIRST, AFTER_TOOL = "codex_exec_first_turn.json", "codex_exec_tool_output_turn.json"
DROPPED_FIRST = "reasoning.summary, include, client_metadata, prompt_cache_key, tools.namespace, tools.web_search"
DROPPED = {FIRST: DROPPED_FIRST, AFTER_TOOL: DROPPED_FIRST + ", input.reasoning"}
# FakeOpenAI's default usage: 1200 prompt tokens (1024 cached), 300 completion.
CHAT_TOKENS = {"input": 176, "cache_read": 1024, "output": 300}


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


@pytest.fixture
async def tollway(tmp_path: Path, upstream: FakeOpenAI) -> AsyncIterator[InProcess]:
    config: dict[str, Any] = {
        "providers": [
            {"name": "local", "type": "simulator"},
            {
                "name": "vllm",
                "type": "openai",
                "base_url": upstream.base_url,
                "api_key": "sk-upstream-secret",
                "endpoints": ["chat/completions", "embeddings"],
            },
        ],
        "models": [
            {"name": "demo", "targets": [{"provider": "local", "model": "demo"}]},
            {"name": "qwen-coder", "targets": [{"provider": "vllm", "model": "Qwen/Qwen3-Coder-30B"}]},
            {"name": "demo-strict", "translation": "strict", "targets": [{"provider": "local", "model": "demo"}]},
        ],
        "consumers": [{"username": "acme-corp", "keys": [KEY]}],
    }
    async with in_process(tmp_path, config) as running:
        yield running


async def replay(tollway: InProcess, captured: dict[str, Any], model: str) -> tuple[Any, list[str], Any]:
    """Send a captured request as Codex does (streamed, its headers); the final response, the event types, the
    response headers."""
    body = copy.deepcopy(captured["body"])
    body["model"] = model
    assert body.pop("stream") is True
    headers = {k: v for k, v in captured["headers"].items() if k not in ("accept", "user-agent")}
    async with (
        tollway.http2() as http,
        openai.AsyncOpenAI(api_key=KEY, base_url="http://tollway/v1", http_client=http, max_retries=0) as client,
    ):
        rest = {k: v for k, v in body.items() if k not in ("model", "input")}
        async with client.responses.with_streaming_response.create(
            model=model, input=body["input"], stream=True, extra_body=rest, extra_headers=headers
        ) as raw:
            events = [event async for event in await raw.parse()]
            last = events[-1]
            assert isinstance(last, ResponseCompletedEvent), last
            return last.response, [e.type for e in events], raw.headers


async def metered(tollway: InProcess, request_id: str) -> dict[str, int]:
    """The tokens stored for one call, once the in-process pipeline (on this loop) has flushed it."""
    url = f"sqlite:///{tollway.directory / 'tollway.db'}"
    await asyncio.to_thread(calls_stored_through, url, request_id)
    return tokens_by_type(stored_events(url), request_id)


def told(response: Any) -> dict[str, int]:
    usage = response.usage
    cached = usage.input_tokens_details.cached_tokens
    return {k: v for k, v in {"input": usage.input_tokens - cached, "cache_read": cached}.items() if v} | {
        "output": usage.output_tokens
    }


def assert_coherent(events: list[str]) -> None:
    assert events[:2] == ["response.created", "response.in_progress"], events
    assert events[-1] == "response.completed", events
    assert events.count("response.output_item.added") == events.count("response.output_item.done") >= 1


@pytest.mark.parametrize("name", [FIRST, AFTER_TOOL])
async def test_codex_on_the_simulator(tollway: InProcess, name: str) -> None:
    response, events, headers = await replay(tollway, fixture(name), "demo")
    assert_coherent(events)
    assert response.status == "completed"
    assert response.output[0].type == "message"
    assert response.output[0].content[0].text.startswith("Simulated reply from demo")
    assert headers["x-tollway-dropped"] == DROPPED[name]
    assert response.usage.input_tokens > 1000  # the developer messages and eight tools' schemas
    assert await metered(tollway, headers["x-request-id"]) == told(response)


@pytest.mark.parametrize("name", [FIRST, AFTER_TOOL])
async def test_codex_on_a_chat_only_openai_compatible_server(
    tollway: InProcess, upstream: FakeOpenAI, name: str
) -> None:
    captured = fixture(name)
    response, events, headers = await replay(tollway, captured, "qwen-coder")
    assert_coherent(events)
    assert response.output[0].content[0].text == "Hello from the fake upstream."
    assert headers["x-tollway-dropped"] == DROPPED[name]
    sent = upstream.received[-1]
    assert sent.path == "/v1/chat/completions"  # not /v1/responses: the provider does not serve it
    body = sent.body
    assert body["model"] == "Qwen/Qwen3-Coder-30B"
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["parallel_tool_calls"] is True
    assert body["tool_choice"] == "auto"
    for gone in ("reasoning", "reasoning_effort", "include", "store", "client_metadata", "prompt_cache_key"):
        assert gone not in body
    names = [t["function"]["name"] for t in body["tools"]]
    assert names == ["exec_command", "write_stdin", "view_image", "get_goal"]
    roles = [m["role"] for m in body["messages"]]
    if name == FIRST:
        assert roles == ["developer", "developer", "user", "user"]
    else:
        assert roles == ["developer", "developer", "user", "user", "assistant", "tool"]
        call = body["messages"][4]["tool_calls"][0]
        assert call == {
            "id": "call_Zq3vX8kP1mN4",
            "type": "function",
            "function": {"name": "exec_command", "arguments": '{"cmd":"echo hi"}'},
        }
        assert body["messages"][5]["tool_call_id"] == "call_Zq3vX8kP1mN4"
        assert body["messages"][5]["content"].endswith("Output:\nhi\n")
    assert told(response) == CHAT_TOKENS
    assert await metered(tollway, headers["x-request-id"]) == CHAT_TOKENS


async def test_a_reasoning_effort_reaches_chat_as_reasoning_effort(tollway: InProcess, upstream: FakeOpenAI) -> None:
    captured = fixture(FIRST)
    captured["body"]["reasoning"] = {"effort": "high", "summary": "auto"}
    _response, _events, headers = await replay(tollway, captured, "qwen-coder")
    assert upstream.received[-1].body["reasoning_effort"] == "high"
    assert headers["x-tollway-dropped"].startswith("reasoning.summary, include,")


async def test_strict_translation_refuses_what_lenient_drops(tollway: InProcess) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await replay(tollway, fixture(FIRST), "demo-strict")
    assert caught.value.status_code == 400
    assert "'reasoning.summary' cannot be translated" in caught.value.message
    assert "translation: strict" in caught.value.message

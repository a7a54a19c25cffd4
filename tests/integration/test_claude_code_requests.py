"""Claude Code's requests, replayed with the anthropic SDK (the beta Messages API Claude Code itself uses)
against every kind of target: the simulator, OpenAI, Gemini (translated) and Anthropic (native), each
reached through the model names Claude Code asks for (aliases and patterns).

Each answer is a 200 (or, where the target cannot take a mid-conversation system message, the 400 in
Anthropic's wording that makes Claude Code retry without it), a stream is coherent, and the metered
tokens equal the usage the client was told.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from tests.support.fake_anthropic import CLAUDE_TOKENS, FakeAnthropic
from tests.support.fake_gemini import GEMINI_TOKENS, FakeGemini
from tests.support.fake_upstream import GPT_TOKENS, FakeOpenAI
from tests.support.net import wait_until
from tests.support.scenario import KEY
from tests.support.tollway_process import TollwayProcess
from tests.support.usage_events import request_events

LIMITED_KEY = "limited-secret-key"
FIXTURES = Path(__file__).parent.parent / "fixtures" / "clients"

# The name Claude Code asks for -> the model entry that serves it (see CONFIG).
SIMULATOR = "claude-haiku-4-5"  # pattern claude-*
OPENAI = "claude-sonnet-4-5"  # alias of gpt-5
GEMINI = "claude-opus-4-1"  # alias of gemini-pro
NATIVE = "claude-sonnet-4-5-20250929"  # pattern claude-sonnet-4-5-* (more specific than claude-*)


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[FakeOpenAI, FakeAnthropic, FakeGemini]]:
    fake_openai, fake_anthropic, fake_gemini = FakeOpenAI(), FakeAnthropic(), FakeGemini()
    fake_openai.start()
    fake_anthropic.start()
    fake_gemini.start()
    yield fake_openai, fake_anthropic, fake_gemini
    fake_gemini.stop()
    fake_anthropic.stop()
    fake_openai.stop()


@pytest.fixture(scope="module")
def tollway(
    tmp_path_factory: pytest.TempPathFactory, fakes: tuple[FakeOpenAI, FakeAnthropic, FakeGemini]
) -> Iterator[TollwayProcess]:
    fake_openai, fake_anthropic, fake_gemini = fakes
    config: dict[str, Any] = {
        "providers": [
            {"name": "local", "type": "simulator"},
            {"name": "up", "type": "openai", "base_url": fake_openai.base_url, "api_key": "sk-upstream-secret"},
            {"name": "google", "type": "gemini", "base_url": fake_gemini.base_url, "api_key": "AIza-upstream"},
            {"name": "claude", "type": "anthropic", "base_url": fake_anthropic.base_url, "api_key": "sk-ant-up"},
        ],
        "models": [
            {"name": "demo", "pattern": "claude-*", "targets": [{"provider": "local", "model": "demo"}]},
            {"name": "gpt-5", "aliases": [OPENAI], "targets": [{"provider": "up", "model": "gpt-5-2025-08-07"}]},
            {"name": "gemini-pro", "aliases": [GEMINI], "targets": [{"provider": "google", "model": "gemini-2.5-pro"}]},
            {
                "name": "claude-native",
                "pattern": "claude-sonnet-4-5-*",
                "targets": [{"provider": "claude", "model": "claude-sonnet-4-5-20250929"}],
            },
            {"name": "gpt-strict", "translation": "strict", "targets": [{"provider": "up", "model": "gpt-5"}]},
        ],
        "consumers": [
            {"username": "acme-corp", "keys": [KEY]},
            {"username": "limited", "keys": [LIMITED_KEY], "models": ["gpt-5", "claude-opus-4-1"]},
        ],
    }
    process = TollwayProcess(tmp_path_factory.mktemp("claude-code"), config).start()
    yield process
    process.stop()


@pytest.fixture
def client(tollway: TollwayProcess) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=tollway.base_url, api_key=KEY, max_retries=0) as sdk:
        yield sdk


def replay(client: anthropic.Anthropic, captured: dict[str, Any], model: str) -> tuple[Any, list[str], Any]:
    """Send a captured request as Claude Code does (beta Messages API, its beta header); returns the final
    message, the stream's event types (empty when not streamed) and the response headers."""
    body = copy.deepcopy(captured["body"])
    body["model"] = model
    stream = body.pop("stream", False)
    betas = captured["headers"]["anthropic-beta"].split(",")
    if not stream:
        raw = client.beta.messages.with_raw_response.create(**body, betas=betas)
        return raw.parse(), [], raw.headers
    events: list[str] = []
    with client.beta.messages.stream(**body, betas=betas) as running:
        for event in running:
            events.append(event.type)
        final = running.get_final_message()
        headers = running.response.headers
    return final, events, headers


def with_claude_code_fallback(client: anthropic.Anthropic, captured: dict[str, Any], model: str) -> Any:
    """Claude Code's own fallback: on a 400 saying role 'system' is not supported, retry without those messages."""
    try:
        return replay(client, captured, model)
    except anthropic.BadRequestError as error:
        if "role 'system' is not supported" not in error.message:
            raise
        retried = copy.deepcopy(captured)
        retried["body"]["messages"] = [m for m in retried["body"]["messages"] if m["role"] != "system"]
        return replay(client, retried, model)


def assert_coherent(events: list[str]) -> None:
    """message_start, balanced content blocks, one message_delta, message_stop last."""
    assert events[0] == "message_start", events
    assert events[-1] == "message_stop", events
    assert events.count("message_delta") == 1
    open_blocks = 0
    for kind in events:
        if kind == "content_block_start":
            open_blocks += 1
        elif kind == "content_block_stop":
            open_blocks -= 1
        assert open_blocks in (0, 1), events
    assert open_blocks == 0
    assert events.count("content_block_start") >= 1


def reported(message: Any) -> dict[str, int]:
    usage = message.usage
    told = {
        "input": usage.input_tokens,
        "output": usage.output_tokens,
        "cache_read": usage.cache_read_input_tokens or 0,
        "cache_write": usage.cache_creation_input_tokens or 0,
    }
    return {k: v for k, v in told.items() if v}


def metered_after(tollway: TollwayProcess, before: dict[str, int], expected: dict[str, int]) -> None:
    want = {k: before.get(k, 0) + expected.get(k, 0) for k in {*before, *expected}}
    tollway.expect_tokens(want)


CAPTURED = ["claude_code_first_turn.json", "claude_code_tool_result_turn.json", "claude_code_quota_check.json"]


@pytest.mark.parametrize("name", CAPTURED)
def test_simulator_through_a_pattern(tollway: TollwayProcess, client: anthropic.Anthropic, name: str) -> None:
    captured = fixture(name)
    before = tollway.tokens_by_type("acme-corp")
    message, events, _headers = replay(client, captured, SIMULATOR)
    assert message.role == "assistant"
    assert message.content
    if events:
        assert_coherent(events)
    assert reported(message)["input"] > 0
    assert reported(message)["output"] > 0
    metered_after(tollway, before, reported(message))


@pytest.mark.parametrize("name", CAPTURED)
def test_openai_through_an_alias(
    tollway: TollwayProcess,
    fakes: tuple[FakeOpenAI, FakeAnthropic, FakeGemini],
    client: anthropic.Anthropic,
    name: str,
) -> None:
    fake_openai = fakes[0]
    captured = fixture(name)
    before = tollway.tokens_by_type("acme-corp")
    message, events, headers = replay(client, captured, OPENAI)
    assert message.content[0].type == "text"
    assert message.content[0].text == "Hello from the fake upstream."
    if events:
        assert_coherent(events)
    assert reported(message) == GPT_TOKENS
    sent = fake_openai.received[-1].body
    assert sent["model"] == "gpt-5-2025-08-07"
    assert "context_management" not in sent
    assert "thinking" not in sent
    assert "output_config" not in sent
    roles = [m["role"] for m in sent["messages"]]
    if name == "claude_code_first_turn.json":
        # the system prompt first, then the user turn, then the mid-conversation system message where it was
        assert roles == ["system", "user", "system"]
        assert sent["messages"][2]["content"].startswith("# Environment\nYou have been invoked")
        assert sent["reasoning_effort"] == "high"  # output_config.effort
        assert headers["x-tollway-dropped"] == "thinking, context_management, tools.defer_loading"
        names = ["Bash", "Read", "ToolSearch", "Edit", "DeferredToolPlaceholder"]
        assert [t["function"]["name"] for t in sent["tools"]] == names
    elif name == "claude_code_tool_result_turn.json":
        assert roles == ["system", "user", "system", "assistant", "tool", "user"]
        assert sent["messages"][0]["content"].startswith("x-anthropic-billing-header: cc_version=2.1.332;")
        assert sent["reasoning_effort"] == "high"  # a budget of 31999 thinking tokens
        assert sent["messages"][3]["tool_calls"][0]["id"] == "toolu_01RXkLPpQy6pW8SSr2tD4uYh"
        tool_result = {"role": "tool", "tool_call_id": "toolu_01RXkLPpQy6pW8SSr2tD4uYh", "content": "42"}
        assert sent["messages"][4] == tool_result
        dropped = "context_management, tools.defer_loading, messages.content.thinking"
        assert headers["x-tollway-dropped"] == dropped
    else:
        assert roles == ["user"]
        assert "reasoning_effort" not in sent
        assert "x-tollway-dropped" not in headers
    metered_after(tollway, before, GPT_TOKENS)


@pytest.mark.parametrize("name", CAPTURED)
def test_gemini_through_an_alias_with_claude_codes_fallback(
    tollway: TollwayProcess,
    fakes: tuple[FakeOpenAI, FakeAnthropic, FakeGemini],
    client: anthropic.Anthropic,
    name: str,
) -> None:
    fake_gemini = fakes[2]
    captured = fixture(name)
    calls_before = len(fake_gemini.received)
    before = tollway.tokens_by_type("acme-corp")
    message, events, _ = with_claude_code_fallback(client, captured, GEMINI)
    assert message.content[0].type == "text"
    if events:
        assert_coherent(events)
    assert reported(message) == GEMINI_TOKENS
    assert len(fake_gemini.received) == calls_before + 1  # the refused try never reached Gemini
    sent = fake_gemini.received[-1].body
    if name == "claude_code_quota_check.json":
        assert "thinkingConfig" not in sent.get("generationConfig", {})
    else:
        assert sent["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 24576}  # effort high
    metered_after(tollway, before, GEMINI_TOKENS)


@pytest.mark.parametrize("name", CAPTURED)
def test_anthropic_natively_through_a_pattern(
    tollway: TollwayProcess,
    fakes: tuple[FakeOpenAI, FakeAnthropic, FakeGemini],
    client: anthropic.Anthropic,
    name: str,
) -> None:
    fake_anthropic = fakes[1]
    captured = fixture(name)
    before = tollway.tokens_by_type("acme-corp")
    message, events, headers = replay(client, captured, NATIVE)
    assert message.content[0].text == "Hello from Claude."
    if events:
        assert_coherent(events)
    assert reported(message) == CLAUDE_TOKENS
    forwarded = fake_anthropic.received[-1]
    expected = {k: v for k, v in captured["body"].items() if k != "stream"}
    assert {k: v for k, v in forwarded.body.items() if k not in ("stream", "model")} == {
        k: v for k, v in expected.items() if k != "model"
    }  # as Claude Code sent it: mid-conversation system message, thinking, context_management and all
    assert forwarded.body["model"] == "claude-sonnet-4-5-20250929"
    assert forwarded.headers["anthropic-beta"] == captured["headers"]["anthropic-beta"]
    assert "x-tollway-dropped" not in headers
    metered_after(tollway, before, CLAUDE_TOKENS)


def test_usage_records_the_name_asked_for_and_the_model_that_served_it(
    tollway: TollwayProcess, client: anthropic.Anthropic
) -> None:
    replay(client, fixture("claude_code_quota_check.json"), "claude-haiku-4-5-20251001")
    database = tollway.workdir / "tollway.db"
    wait_until(lambda: any(e.get("requested_model") == "claude-haiku-4-5-20251001" for e in request_events(database)))
    event = next(e for e in request_events(database) if e.get("requested_model") == "claude-haiku-4-5-20251001")
    assert (event["model"], event["upstream_model"], event["provider"]) == ("demo", "demo", "local")


def test_strict_translation_refuses_what_lenient_drops(tollway: TollwayProcess, client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        replay(client, fixture("claude_code_first_turn.json"), "gpt-strict")
    assert caught.value.status_code == 400
    assert "'thinking' cannot be translated" in caught.value.message
    assert "translation: strict" in caught.value.message


def test_context_management_beyond_thinking_is_refused(tollway: TollwayProcess, client: anthropic.Anthropic) -> None:
    captured = fixture("claude_code_first_turn.json")
    captured["body"]["context_management"] = {"edits": [{"type": "clear_tool_uses_20250919"}]}
    with pytest.raises(anthropic.BadRequestError) as caught:
        replay(client, captured, OPENAI)
    assert "'context_management' cannot be translated" in caught.value.message


def test_models_lists_the_names_a_consumer_may_use(tollway: TollwayProcess) -> None:
    with httpx.Client(base_url=tollway.base_url, timeout=10) as http:
        listed = http.get("/v1/models", headers={"Authorization": f"Bearer {LIMITED_KEY}"}).json()
        assert [m["id"] for m in listed["data"]] == ["claude-opus-4-1", "claude-sonnet-4-5", "gpt-5"]
        everyone = http.get("/v1/models", headers={"Authorization": f"Bearer {KEY}"}).json()
        assert [m["id"] for m in everyone["data"]] == [
            "claude-native",
            "claude-opus-4-1",
            "claude-sonnet-4-5",
            "demo",
            "gemini-pro",
            "gpt-5",
            "gpt-strict",
        ]
        # a pattern match is a name the consumer may use, though not listed
        one = http.get("/v1/models/claude-haiku-4-5", headers={"Authorization": f"Bearer {KEY}"})
        assert one.status_code == 200
        assert one.json()["id"] == "claude-haiku-4-5"
        # the limited consumer may use gpt-5 by any of its names, and only the alias it was given of gemini-pro
        for name, status in (("claude-sonnet-4-5", 200), ("claude-opus-4-1", 200), ("gemini-pro", 404), ("demo", 404)):
            answer = http.get(f"/v1/models/{name}", headers={"Authorization": f"Bearer {LIMITED_KEY}"})
            assert answer.status_code == status, name

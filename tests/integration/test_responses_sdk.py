"""The openai SDK's Responses API through Tollway: natively to OpenAI, translated to Claude and the simulator."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai.types.responses import ResponseUsage

from tests.support.fake_anthropic import CLAUDE_TOKENS, FakeAnthropic, tool_reply
from tests.support.fake_upstream import GPT_TOKENS, FakeOpenAI, Reply
from tests.support.net import wait_until
from tests.support.scenario import Consumer, mixed_config
from tests.support.sharing import fresh_fake
from tests.support.tollway_process import TollwayProcess
from tests.support.usage_events import request_events


@pytest.fixture(scope="module")
def tollway(
    tmp_path_factory: pytest.TempPathFactory, shared_openai: FakeOpenAI, shared_anthropic: FakeAnthropic
) -> Iterator[TollwayProcess]:
    """One gateway for the module's tests (tests/support/sharing.py)."""
    process = TollwayProcess(
        tmp_path_factory.mktemp("responses"), mixed_config(shared_openai, shared_anthropic)
    ).start()
    yield process
    process.stop()


fake_openai = fresh_fake("fake_openai", "shared_openai")
fake_anthropic = fresh_fake("fake_anthropic", "shared_anthropic")


def test_responses_to_openai_natively(
    tollway: TollwayProcess, fake_openai: FakeOpenAI, oai: openai.OpenAI, consumer: Consumer
) -> None:
    response = oai.responses.create(model="gpt-4o", input="Tell me a three sentence bedtime story.")
    assert response.output_text == "Hello from the fake upstream."
    assert response.usage is not None
    assert response.usage.input_tokens_details.cached_tokens == 1024
    forwarded = fake_openai.received[-1]
    assert forwarded.path == "/v1/responses"
    assert forwarded.body["model"] == "gpt-4o-2024-08-06"
    assert forwarded.headers["Authorization"] == "Bearer sk-upstream-secret"
    tollway.expect_tokens(GPT_TOKENS, consumer.subject)


def test_streamed_responses_meter_from_response_completed(
    tollway: TollwayProcess, oai: openai.OpenAI, consumer: Consumer
) -> None:
    with oai.responses.stream(model="gpt-4o", input="Hi") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == "Hello from the fake upstream."
    assert final.usage is not None
    assert final.usage.output_tokens_details.reasoning_tokens == 128
    tollway.expect_tokens(GPT_TOKENS, consumer.subject)


def test_responses_to_claude_are_translated(
    tollway: TollwayProcess, fake_anthropic: FakeAnthropic, oai: openai.OpenAI, consumer: Consumer
) -> None:
    response = oai.responses.create(
        model="claude-sonnet", instructions="Be brief.", input="Hello", max_output_tokens=100
    )
    assert response.output_text == "Hello from Claude."
    assert response.status == "completed"
    assert response.usage is not None
    assert response.usage.input_tokens == 472 + 2048 + 1536
    assert response.usage.input_tokens_details.cached_tokens == 1536
    assert response.usage.output_tokens == 503
    sent = fake_anthropic.received[-1].body
    assert sent["system"] == [{"type": "text", "text": "Be brief."}]
    assert sent["max_tokens"] == 100
    tollway.expect_tokens(CLAUDE_TOKENS, consumer.subject)


def test_streamed_responses_from_claude(tollway: TollwayProcess, oai: openai.OpenAI, consumer: Consumer) -> None:
    with oai.responses.stream(model="claude-sonnet", input="Hello") as stream:
        types = [e.type for e in stream]
        final = stream.get_final_response()
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] == "response.completed"
    assert final.output_text == "Hello from Claude."
    assert final.usage is not None
    assert final.usage.total_tokens == 472 + 2048 + 1536 + 503
    tollway.expect_tokens(CLAUDE_TOKENS, consumer.subject)


def test_responses_function_calls_from_claude(fake_anthropic: FakeAnthropic, oai: openai.OpenAI) -> None:
    tools: Any = [
        {
            "type": "function",
            "name": "get_weather",
            "description": "Get the weather",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
        }
    ]
    fake_anthropic.enqueue(tool_reply("get_weather", {"location": "Paris"}))
    with oai.responses.stream(model="claude-sonnet", input="Weather in Paris?", tools=tools) as stream:
        final = stream.get_final_response()
    calls = [item for item in final.output if item.type == "function_call"]
    assert len(calls) == 1
    assert (calls[0].name, calls[0].arguments) == ("get_weather", '{"location":"Paris"}')
    followup: Any = [
        {"role": "user", "content": "Weather in Paris?"},
        {"type": "function_call", "call_id": calls[0].call_id, "name": "get_weather", "arguments": calls[0].arguments},
        {"type": "function_call_output", "call_id": calls[0].call_id, "output": "sunny"},
    ]
    oai.responses.create(model="claude-sonnet", input=followup, tools=tools)
    assert fake_anthropic.received[-1].body["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": calls[0].call_id, "name": "get_weather", "input": {"location": "Paris"}}
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": calls[0].call_id, "content": "sunny"}]},
    ]


def test_responses_to_the_simulator(tollway: TollwayProcess, oai: openai.OpenAI, consumer: Consumer) -> None:
    response = oai.responses.create(model="demo", input="Hi there")
    assert response.output_text.startswith("Simulated reply from demo")
    with oai.responses.stream(model="demo", input="Hi there") as stream:
        streamed = stream.get_final_response()
    assert streamed.output_text == response.output_text
    # The simulator's documented count: 3 (reply priming) + 3 (one message) + 2 ("Hi", " there") = 8 in;
    # out, its default reply of 24 tokens.
    assert response.usage is not None
    assert streamed.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (8, 24)
    assert (streamed.usage.input_tokens, streamed.usage.output_tokens) == (8, 24)
    tollway.expect_tokens({"input": 16, "output": 48}, consumer.subject)


# What the fake reports is what the test gave it: 900 in of which 256 cached, 77 out of which 5 reasoning.
SCRIPTED = {
    "input_tokens": 900,
    "input_tokens_details": {"cached_tokens": 256},
    "output_tokens": 77,
    "output_tokens_details": {"reasoning_tokens": 5},
    "total_tokens": 977,
}


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
def test_responses_meter_the_usage_the_upstream_reported(
    tollway: TollwayProcess, fake_openai: FakeOpenAI, oai: openai.OpenAI, stream: bool, consumer: Consumer
) -> None:
    fake_openai.enqueue(Reply(usage=SCRIPTED))
    usage: ResponseUsage | None
    if stream:
        with oai.responses.stream(model="gpt-4o", input="Hi") as events:
            usage = events.get_final_response().usage
    else:
        usage = oai.responses.create(model="gpt-4o", input="Hi").usage
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens) == (900, 77)
    tollway.expect_tokens({"input": 644, "cache_read": 256, "output": 77}, consumer.subject)


def test_untranslatable_responses_fields_are_named(oai: openai.OpenAI, fake_anthropic: FakeAnthropic) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        oai.responses.create(model="claude-sonnet", input="Hi", previous_response_id="resp_123")
    assert caught.value.param == "previous_response_id"
    assert fake_anthropic.received == []
    # a built-in tool is dropped for a model that cannot run it (translation: lenient), and named
    raw = oai.responses.with_raw_response.create(model="demo", input="Hi", tools=[{"type": "web_search_preview"}])
    assert raw.headers["x-tollway-dropped"] == "tools.web_search_preview"
    assert raw.parse().status == "completed"


def test_cut_responses_stream_is_partial(
    tollway: TollwayProcess, fake_openai: FakeOpenAI, oai: openai.OpenAI, consumer: Consumer
) -> None:
    fake_openai.enqueue(Reply(content="one two three four five", cut_after=6))
    with oai.responses.stream(model="gpt-4o", input="Count") as stream:
        events = list(stream)
    # The documented Responses `error` event ends the stream; the SDK yields it rather than raising.
    assert events[-1].type == "error"
    assert events[-1].code == "stream_incomplete"
    wait_until(lambda: len(request_events(tollway.workdir / "tollway.db", consumer.subject)) == 1)
    event = request_events(tollway.workdir / "tollway.db", consumer.subject)[0]
    assert (event["partial"], event["estimated"], event["route"]) == (True, True, "/v1/responses")

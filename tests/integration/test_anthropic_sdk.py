"""The official anthropic SDK talks to Tollway: Claude natively, GPT and simulator models translated.

The openai SDK talks to Claude models through /v1/chat/completions. Every call's metered tokens per
type equal what the upstream reported.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.support.fake_anthropic import (
    CLAUDE_TOKENS,
    DEFAULT_USAGE,
    AnthropicReply,
    FakeAnthropic,
    text_reply,
    tool_reply,
)
from tests.support.fake_upstream import GPT_TOKENS, FakeOpenAI, Reply
from tests.support.net import wait_until
from tests.support.scenario import Consumer, mixed_config
from tests.support.sharing import fresh_fake
from tests.support.stored import calls_stored_through
from tests.support.tollway_process import TollwayProcess
from tests.support.usage_events import request_events

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Get the current weather in a given location",
    "input_schema": {
        "type": "object",
        "properties": {"location": {"type": "string", "description": "The city and state"}},
        "required": ["location"],
    },
}


@pytest.fixture(scope="module")
def tollway(
    tmp_path_factory: pytest.TempPathFactory, shared_openai: FakeOpenAI, shared_anthropic: FakeAnthropic
) -> Iterator[TollwayProcess]:
    """One gateway for the module's tests (tests/support/sharing.py)."""
    process = TollwayProcess(
        tmp_path_factory.mktemp("anthropic-sdk"), mixed_config(shared_openai, shared_anthropic)
    ).start()
    yield process
    process.stop()


fake_openai = fresh_fake("fake_openai", "shared_openai")
fake_anthropic = fresh_fake("fake_anthropic", "shared_anthropic")
# Claude natively ------------------------------------------------------------------------------------


def test_messages_to_claude_natively(
    tollway: TollwayProcess, fake_anthropic: FakeAnthropic, claude: anthropic.Anthropic, consumer: Consumer
) -> None:
    message = claude.messages.create(
        model="claude-sonnet", max_tokens=1024, messages=[{"role": "user", "content": "Hello, Claude"}]
    )
    assert message.content[0].type == "text"
    assert message.content[0].text == "Hello from Claude."
    assert message.usage.input_tokens == DEFAULT_USAGE["input_tokens"]
    assert message.usage.cache_creation_input_tokens == 2048
    forwarded = fake_anthropic.received[-1]
    assert forwarded.headers["x-api-key"] == "sk-ant-upstream"
    assert forwarded.headers["anthropic-version"] == "2023-06-01"
    assert consumer.key not in str(forwarded.headers)
    assert forwarded.body["model"] == "claude-sonnet-4-5-20250929"
    tollway.expect_tokens(CLAUDE_TOKENS, consumer.subject)


def test_streamed_messages_keep_the_last_cumulative_usage(
    tollway: TollwayProcess, claude: anthropic.Anthropic, consumer: Consumer
) -> None:
    with claude.messages.stream(
        model="claude-sonnet", max_tokens=1024, messages=[{"role": "user", "content": "Hello"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Hello from Claude."
    assert final.usage.output_tokens == 503
    # message_start said output_tokens=1 and message_delta 503 (cumulative): 503, never 504.
    tollway.expect_tokens(CLAUDE_TOKENS, consumer.subject)


def test_tool_use_streams_to_the_anthropic_sdk(
    tollway: TollwayProcess, fake_anthropic: FakeAnthropic, claude: anthropic.Anthropic
) -> None:
    fake_anthropic.enqueue(tool_reply("get_weather", {"location": "San Francisco, CA"}, text="Let me check."))
    with claude.messages.stream(
        model="claude-sonnet",
        max_tokens=1024,
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        messages=[{"role": "user", "content": "What's the weather like in San Francisco?"}],
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    tool = final.content[-1]
    assert tool.type == "tool_use"
    assert tool.name == "get_weather"
    assert tool.input == {"location": "San Francisco, CA"}
    assert fake_anthropic.received[-1].body["tools"] == [WEATHER_TOOL]


# GPT and simulator models through /v1/messages ------------------------------------------------------------


def test_messages_to_a_gpt_model_translate_and_meter(
    tollway: TollwayProcess, fake_openai: FakeOpenAI, claude: anthropic.Anthropic, consumer: Consumer
) -> None:
    client = claude
    message = client.messages.create(
        model="gpt-4o",
        max_tokens=200,
        system="You are terse.",
        stop_sequences=["END"],
        extra_body={"temperature": 0.5},
        messages=[{"role": "user", "content": "Hi"}],
    )
    assert message.content[0].type == "text"
    assert message.content[0].text == "Hello from the fake upstream."
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == 176
    assert message.usage.cache_read_input_tokens == 1024
    assert message.usage.output_tokens == 300
    sent = fake_openai.received[-1].body
    assert sent["model"] == "gpt-4o-2024-08-06"
    assert sent["messages"] == [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi"}]
    assert sent["max_completion_tokens"] == 200
    assert sent["stop"] == ["END"]
    assert sent["temperature"] == 0.5
    tollway.expect_tokens(GPT_TOKENS, consumer.subject)


def test_streamed_messages_to_a_gpt_model(
    tollway: TollwayProcess, claude: anthropic.Anthropic, consumer: Consumer
) -> None:
    with claude.messages.stream(model="gpt-4o", max_tokens=200, messages=[{"role": "user", "content": "Hi"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Hello from the fake upstream."
    assert final.usage.input_tokens == 176
    assert final.usage.cache_read_input_tokens == 1024
    assert final.usage.output_tokens == 300
    tollway.expect_tokens(GPT_TOKENS, consumer.subject)


def test_messages_to_the_simulator(tollway: TollwayProcess, claude: anthropic.Anthropic, consumer: Consumer) -> None:
    client = claude
    message = client.messages.create(model="demo", max_tokens=50, messages=[{"role": "user", "content": "Hi there"}])
    assert message.content[0].type == "text"
    assert message.content[0].text.startswith("Simulated reply from demo")
    with client.messages.stream(model="demo", max_tokens=50, messages=[{"role": "user", "content": "Hi there"}]) as s:
        streamed = s.get_final_message()
    # The simulator's documented count: 3 (reply priming) + 3 (one message) + 2 ("Hi", " there") = 8 in;
    # out, its default reply of 24 tokens (under max_tokens 50).
    assert (message.usage.input_tokens, message.usage.output_tokens) == (8, 24)
    assert (streamed.usage.input_tokens, streamed.usage.output_tokens) == (8, 24)
    tollway.expect_tokens({"input": 16, "output": 48}, consumer.subject)


# The openai SDK to Claude ----------------------------------------------------------------------------


def test_openai_chat_to_claude(
    tollway: TollwayProcess, fake_anthropic: FakeAnthropic, oai: openai.OpenAI, consumer: Consumer
) -> None:
    client = oai
    completion = client.chat.completions.create(
        model="claude-sonnet",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}],
        max_tokens=300,
        stop="END",
    )
    assert completion.choices[0].message.content == "Hello from Claude."
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 472 + 2048 + 1536
    assert completion.usage.completion_tokens == 503
    assert completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 1536
    sent = fake_anthropic.received[-1].body
    assert sent["system"] == [{"type": "text", "text": "Be brief."}]
    assert sent["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}]
    assert sent["max_tokens"] == 300
    assert sent["stop_sequences"] == ["END"]
    tollway.expect_tokens(CLAUDE_TOKENS, consumer.subject)


@pytest.mark.parametrize("include_usage", [True, False])
def test_openai_chat_streams_from_claude(
    tollway: TollwayProcess, include_usage: bool, oai: openai.OpenAI, consumer: Consumer
) -> None:
    client = oai
    options: Any = {"include_usage": True} if include_usage else openai.NOT_GIVEN
    chunks = list(
        client.chat.completions.create(
            model="claude-sonnet", messages=[{"role": "user", "content": "Hi"}], stream=True, stream_options=options
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from Claude."
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    usage = [c.usage for c in chunks if c.usage is not None]
    if include_usage:
        assert len(usage) == 1
        assert usage[0].total_tokens == 472 + 2048 + 1536 + 503
    else:
        assert usage == []
    tollway.expect_tokens(CLAUDE_TOKENS, consumer.subject)


# One tool-using conversation, both ways --------------------------------------------------------------------


def test_openai_tool_conversation_to_claude_round_trips(
    tollway: TollwayProcess, fake_anthropic: FakeAnthropic, oai: openai.OpenAI
) -> None:
    client = oai
    tools: Any = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": WEATHER_TOOL["description"],
                "parameters": WEATHER_TOOL["input_schema"],
            },
        }
    ]
    fake_anthropic.enqueue(tool_reply("get_weather", {"location": "Paris"}))
    first = client.chat.completions.create(
        model="claude-sonnet", messages=[{"role": "user", "content": "Weather in Paris?"}], tools=tools
    )
    call = first.choices[0].message.tool_calls
    assert first.choices[0].finish_reason == "tool_calls"
    assert call is not None
    assert call[0].function.name == "get_weather"  # type: ignore[union-attr]
    assert call[0].function.arguments == '{"location":"Paris"}'  # type: ignore[union-attr]
    assert fake_anthropic.received[-1].body["tools"] == [WEATHER_TOOL]

    fake_anthropic.enqueue(text_reply("It is sunny in Paris."))
    history: Any = [
        {"role": "user", "content": "Weather in Paris?"},
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call[0].id, "content": "sunny, 24C"},
    ]
    stream = client.chat.completions.create(model="claude-sonnet", messages=history, tools=tools, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "It is sunny in Paris."
    assert fake_anthropic.received[-1].body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": call[0].id, "name": "get_weather", "input": {"location": "Paris"}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call[0].id, "content": "sunny, 24C"}]},
    ]


def test_anthropic_tool_conversation_to_gpt_round_trips(
    tollway: TollwayProcess, fake_openai: FakeOpenAI, claude: anthropic.Anthropic
) -> None:
    client = claude
    call = {
        "id": "call_abc123",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"location":"Paris"}'},
    }
    fake_openai.enqueue(Reply(content="", tool_calls=[call]))
    with client.messages.stream(
        model="gpt-4o",
        max_tokens=500,
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        messages=[{"role": "user", "content": "Weather in Paris?"}],
    ) as stream:
        first = stream.get_final_message()
    assert first.stop_reason == "tool_use"
    tool = first.content[-1]
    assert tool.type == "tool_use"
    assert (tool.id, tool.name, tool.input) == ("call_abc123", "get_weather", {"location": "Paris"})
    assert fake_openai.received[-1].body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": WEATHER_TOOL["input_schema"],
                "description": WEATHER_TOOL["description"],
            },
        }
    ]

    fake_openai.enqueue(Reply(content="It is sunny in Paris."))
    history: Any = [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": [block.model_dump() for block in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool.id, "content": "sunny, 24C"}]},
    ]
    answer = client.messages.create(
        model="gpt-4o",
        max_tokens=500,
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        messages=history,
    )
    assert answer.content[0].type == "text"
    assert answer.content[0].text == "It is sunny in Paris."
    assert fake_openai.received[-1].body["messages"] == [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_abc123", "content": "sunny, 24C"},
    ]


# Errors, in each API's own shape ------------------------------------------------------------------------


def test_bad_requests_get_anthropic_shaped_400s(tollway: TollwayProcess, claude: anthropic.Anthropic) -> None:
    client = claude
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(
            model="gpt-4o", max_tokens=10, extra_body={"top_k": 5}, messages=[{"role": "user", "content": "Hi"}]
        )
    body: Any = caught.value.body
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert "'top_k'" in body["error"]["message"]
    with pytest.raises(anthropic.NotFoundError):
        client.messages.create(model="nope", max_tokens=10, messages=[{"role": "user", "content": "Hi"}])
    with (
        anthropic.Anthropic(base_url=tollway.base_url, api_key="wrong-key-123", max_retries=0) as stranger,
        pytest.raises(anthropic.AuthenticationError) as denied,
    ):
        stranger.messages.create(model="demo", max_tokens=10, messages=[{"role": "user", "content": "Hi"}])
    assert denied.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]


def test_untranslatable_openai_field_to_claude_is_named(
    tollway: TollwayProcess, fake_anthropic: FakeAnthropic, oai: openai.OpenAI
) -> None:
    client = oai
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="claude-sonnet", messages=[{"role": "user", "content": "Hi"}], logit_bias={"50256": -100}
        )
    assert caught.value.param == "logit_bias"
    assert fake_anthropic.received == []


def test_upstream_errors_reach_each_client_in_its_shape(
    tollway: TollwayProcess,
    fake_anthropic: FakeAnthropic,
    claude: anthropic.Anthropic,
    oai: openai.OpenAI,
    consumer: Consumer,
) -> None:
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    fake_anthropic.enqueue(AnthropicReply(status=529, body=overloaded), AnthropicReply(status=529, body=overloaded))
    with pytest.raises(anthropic.APIStatusError) as native:
        claude.messages.create(model="claude-sonnet", max_tokens=10, messages=[{"role": "user", "content": "Hi"}])
    assert native.value.status_code == 529
    assert native.value.body == overloaded
    client = oai
    with pytest.raises(openai.APIStatusError) as translated:
        client.chat.completions.create(model="claude-sonnet", messages=[{"role": "user", "content": "Hi"}])
    assert translated.value.status_code == 529
    assert translated.value.body == {
        "message": "Overloaded",
        "type": "api_error",
        "param": None,
        "code": "upstream_error",
    }
    wait_until(
        lambda: (
            [e["status_code"] for e in request_events(tollway.workdir / "tollway.db", consumer.subject)] == [529, 529]
        )
    )


# Partial streams ------------------------------------------------------------------------------------


def test_cut_claude_stream_is_recorded_once_as_partial_and_estimated(
    tollway: TollwayProcess, fake_anthropic: FakeAnthropic, claude: anthropic.Anthropic, consumer: Consumer
) -> None:
    fake_anthropic.enqueue(text_reply("one two three four five six", cut_after=5))
    with (
        pytest.raises(anthropic.APIError),
        claude.messages.stream(
            model="claude-sonnet", max_tokens=100, messages=[{"role": "user", "content": "Count"}]
        ) as stream,
    ):
        for _ in stream.text_stream:
            pass
    wait_until(lambda: len(request_events(tollway.workdir / "tollway.db", consumer.subject)) == 1)
    event = request_events(tollway.workdir / "tollway.db", consumer.subject)[0]
    assert event["partial"] is True
    assert event["estimated"] is True
    assert event["output_tokens"] > 0


def test_cut_claude_stream_to_an_openai_client(
    tollway: TollwayProcess, fake_anthropic: FakeAnthropic, oai: openai.OpenAI, consumer: Consumer
) -> None:
    fake_anthropic.enqueue(text_reply("one two three four five six", cut_after=5))
    client = oai
    with pytest.raises(openai.APIError):
        for _ in client.chat.completions.create(
            model="claude-sonnet", messages=[{"role": "user", "content": "Count"}], stream=True
        ):
            pass
    wait_until(lambda: len(request_events(tollway.workdir / "tollway.db", consumer.subject)) == 1)
    event = request_events(tollway.workdir / "tollway.db", consumer.subject)[0]
    assert (event["partial"], event["estimated"], event["provider"]) == (True, True, "claude")


def test_embeddings_for_a_claude_model_are_refused_before_any_upstream_call(
    tollway: TollwayProcess, fake_anthropic: FakeAnthropic, oai: openai.OpenAI, consumer: Consumer
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        oai.embeddings.create(model="claude-sonnet", input="hello")
    assert caught.value.code == "unsupported_endpoint"
    assert fake_anthropic.received == []
    refused = caught.value.response.headers["x-request-id"]
    later = oai.chat.completions.with_raw_response.create(model="demo", messages=[{"role": "user", "content": "Hi"}])
    marker = later.headers["x-request-id"]
    assert calls_stored_through(tollway.env["TOLLWAY_DATABASE_URL"], marker, subject=consumer.subject) == [marker], (
        f"{refused} was metered"
    )


def test_client_leaving_a_claude_stream_is_metered_from_the_drained_usage(
    tollway: TollwayProcess, fake_anthropic: FakeAnthropic, consumer: Consumer
) -> None:
    fake_anthropic.enqueue(text_reply("one two three four five six seven eight", chunk_delay_s=0.05))
    body = {
        "model": "claude-sonnet",
        "max_tokens": 100,
        "stream": True,
        "messages": [{"role": "user", "content": "Hi"}],
    }
    with (
        httpx.Client(base_url=tollway.base_url, headers={"x-api-key": consumer.key}) as client,
        client.stream("POST", "/v1/messages", json=body) as response,
    ):
        for line in response.iter_lines():
            if line.startswith("event: content_block_delta"):
                break  # the client leaves mid-stream
    wait_until(lambda: len(request_events(tollway.workdir / "tollway.db", consumer.subject)) == 1)
    event = request_events(tollway.workdir / "tollway.db", consumer.subject)[0]
    # Tollway kept reading the upstream until its usage arrived: exact counts, flagged partial.
    assert (event["partial"], event["estimated"], event["status_code"]) == (True, False, 200)
    tollway.expect_tokens(CLAUDE_TOKENS, consumer.subject)


@pytest.mark.parametrize(
    ("body", "status", "kind", "words"),
    [
        (b"{not json", 400, "invalid_request_error", "not valid JSON"),
        (
            b'{"model": "demo", "messages": [{"role": "user", "content": "Hi"}]}',
            400,
            "invalid_request_error",
            "max_tokens",
        ),
        (b'{"model": "demo", "max_tokens": 5, "messages": []}', 400, "invalid_request_error", "messages"),
        (
            b'{"model": "demo", "max_tokens": 5, "messages": [{"role": "tool", "content": "x"}]}',
            400,
            "invalid_request_error",
            "role",
        ),
        (
            b'{"model": "demo", "max_tokens": 5, "stream": "yes", "messages": [{"role": "user", "content": "x"}]}',
            400,
            "invalid_request_error",
            "stream",
        ),
        (
            b'{"model": "nope", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}',
            404,
            "not_found_error",
            "nope",
        ),
    ],
)
def test_bad_messages_requests_get_anthropic_errors_and_record_nothing(
    tollway: TollwayProcess, body: bytes, status: int, kind: str, words: str, consumer: Consumer
) -> None:
    with httpx.Client(base_url=tollway.base_url, headers={"x-api-key": consumer.key}) as client:
        response = client.post("/v1/messages", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status
    payload = response.json()
    assert payload["type"] == "error"
    assert payload["error"]["type"] == kind
    assert words in payload["error"]["message"]
    assert response.headers["x-request-id"].startswith("req_")
    with httpx.Client(base_url=tollway.base_url, headers={"x-api-key": consumer.key}) as client:
        later = client.post(
            "/v1/messages", json={"model": "demo", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
        )
    assert later.status_code == 200
    marker = later.headers["x-request-id"]
    assert calls_stored_through(tollway.env["TOLLWAY_DATABASE_URL"], marker, subject=consumer.subject) == [marker], (
        "the refused call was metered"
    )


def test_anthropic_beta_header_reaches_claude_natively_only(
    claude: anthropic.Anthropic, fake_anthropic: FakeAnthropic, fake_openai: FakeOpenAI
) -> None:
    beta = {"anthropic-beta": "fine-grained-tool-streaming-2025-05-14"}
    messages: Any = [{"role": "user", "content": "Hi"}]
    claude.messages.create(model="claude-sonnet", max_tokens=10, messages=messages, extra_headers=beta)
    assert fake_anthropic.received[-1].headers["anthropic-beta"] == "fine-grained-tool-streaming-2025-05-14"
    assert fake_anthropic.received[-1].headers["anthropic-version"] == "2023-06-01"
    claude.messages.create(model="gpt-4o", max_tokens=10, messages=messages, extra_headers=beta)
    assert "anthropic-beta" not in {k.lower() for k in fake_openai.received[-1].headers}


def test_count_tokens_for_claude_natively_and_estimated_elsewhere(
    tollway: TollwayProcess, claude: anthropic.Anthropic, fake_anthropic: FakeAnthropic, consumer: Consumer
) -> None:
    messages: Any = [{"role": "user", "content": "Hello, world"}]
    raw = claude.messages.with_raw_response.count_tokens(model="claude-sonnet", messages=messages)
    assert raw.parse().input_tokens == 2095
    assert raw.headers["x-tollway-token-count"] == "exact"
    assert fake_anthropic.received[-1].path == "/v1/messages/count_tokens"
    assert fake_anthropic.received[-1].body["model"] == "claude-sonnet-4-5-20250929"
    # no count upstream for GPT: the estimate, 3 + (3 + ceil(12 characters / 4)) = 9
    raw = claude.messages.with_raw_response.count_tokens(model="gpt-4o", messages=messages)
    assert raw.parse().input_tokens == 9
    assert raw.headers["x-tollway-token-count"] == "estimate"
    later = claude.messages.with_raw_response.create(model="demo", max_tokens=5, messages=messages)
    marker = later.headers["x-request-id"]
    # counting is not metered: once the later call's record is stored, it is the only call stored
    assert calls_stored_through(tollway.env["TOLLWAY_DATABASE_URL"], marker, subject=consumer.subject) == [marker]

"""The simulator as an agent's counterpart, through all three client formats (official SDKs, in process).

It calls a tool whose arguments validate against the tool's schema (jsonschema is the oracle), streamed
as the real providers stream tool calls; after a tool result it answers in text; with a JSON response
format it answers JSON that validates. Metered tokens equal what each answer reported.

Hand-worked oracle: the minimal instance of WEATHER below is
    {"city":"simulated","unit":"celsius","days":1,"stops":[{"name":"simulated"}]}
and the simulator's tokenizer (a word or one punctuation mark each) counts 39 pieces in it, plus 1 for the
name get_weather: 40 output tokens.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anthropic
import jsonschema
import openai
import orjson
import pytest
from openai.types.chat import ChatCompletionMessageFunctionToolCall

from tests.support.agent_app import KEY, tollway_app
from tests.support.in_process import InProcess
from tests.support.usage_events import request_events

CONFIG: dict[str, Any] = {
    "providers": [{"name": "local", "type": "simulator", "tokens_per_second": 0}],
    "models": [{"name": "demo", "targets": [{"provider": "local", "model": "demo"}]}],
    "consumers": [{"username": "acme-corp", "keys": [KEY]}],
}
WEATHER: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "unit": {"enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
        "stops": {
            "type": "array",
            "items": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
            "minItems": 1,
        },
        "note": {"type": "string"},
    },
    "required": ["city", "unit", "days", "stops"],
}
EXPECTED_ARGUMENTS = {"city": "simulated", "unit": "celsius", "days": 1, "stops": [{"name": "simulated"}]}
TOOL_CALL_TOKENS = 40
CHAT_TOOLS: list[Any] = [
    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}},
    {"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": WEATHER}},
]
ANTHROPIC_TOOLS: list[Any] = [
    {"name": "get_time", "input_schema": {"type": "object", "properties": {}}},
    {"name": "get_weather", "description": "Weather", "input_schema": WEATHER},
]
RESPONSES_TOOLS: list[Any] = [
    {"type": "function", "name": "get_time", "parameters": {"type": "object", "properties": {}}, "strict": False},
    {"type": "function", "name": "get_weather", "parameters": WEATHER, "strict": False},
]
ASK = "What is the weather in Paris? Use get_weather."


@pytest.fixture
async def app(tmp_path: Path) -> Any:
    async with tollway_app(tmp_path, CONFIG) as running:
        yield running


def metered(database: Path) -> list[tuple[int, int]]:
    return [(e["input_tokens"], e["output_tokens"]) for e in request_events(database)]


async def test_chat_completions_tool_calls_unary_and_streamed(tmp_path: Path) -> None:
    reported: list[tuple[int, int]] = []
    async with (
        tollway_app(tmp_path, CONFIG) as app,
        app.http2() as http,
        openai.AsyncOpenAI(base_url="http://tollway/v1", api_key=KEY, http_client=http) as client,
    ):
        answer = await client.chat.completions.create(
            model="demo", messages=[{"role": "user", "content": ASK}], tools=CHAT_TOOLS
        )
        call = answer.choices[0].message.tool_calls[0]  # type: ignore[index]
        assert isinstance(call, ChatCompletionMessageFunctionToolCall)
        assert call.function.name == "get_weather"
        arguments = orjson.loads(call.function.arguments)
        jsonschema.validate(arguments, WEATHER)
        assert arguments == EXPECTED_ARGUMENTS
        assert answer.choices[0].finish_reason == "tool_calls"
        assert answer.usage is not None
        assert answer.usage.completion_tokens == TOOL_CALL_TOKENS
        reported.append((answer.usage.prompt_tokens, answer.usage.completion_tokens))

        stream = await client.chat.completions.create(
            model="demo",
            messages=[{"role": "user", "content": ASK}],
            tools=CHAT_TOOLS,
            stream=True,
            stream_options={"include_usage": True},
        )
        fragments: list[str] = []
        heads: list[Any] = []
        finish = None
        usage = None
        async for chunk in stream:
            usage = chunk.usage or usage
            for choice in chunk.choices:
                finish = choice.finish_reason or finish
                for delta in choice.delta.tool_calls or []:
                    if delta.id:
                        heads.append((delta.id, delta.function.name if delta.function else None))
                    if delta.function and delta.function.arguments:
                        fragments.append(delta.function.arguments)
        assert heads == [(call.id, "get_weather")]  # id and name once, first; then argument fragments
        assert len(fragments) == 39
        assert orjson.loads("".join(fragments)) == EXPECTED_ARGUMENTS
        assert finish == "tool_calls"
        assert usage is not None
        assert usage.completion_tokens == TOOL_CALL_TOKENS
        reported.append((usage.prompt_tokens, usage.completion_tokens))

        # the tool's result comes back: the simulator answers in text
        messages: list[Any] = [
            {"role": "user", "content": ASK},
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": '{"temperature": 21}'},
        ]
        after = await client.chat.completions.create(model="demo", messages=messages, tools=CHAT_TOOLS)
        assert after.choices[0].message.tool_calls is None
        assert (after.choices[0].message.content or "").startswith("Simulated reply from demo:")
        assert after.choices[0].finish_reason == "stop"
        assert after.usage is not None
        reported.append((after.usage.prompt_tokens, after.usage.completion_tokens))
    assert metered(app.database) == reported


async def test_tool_choice_modes(app: InProcess) -> None:
    async with (
        app.http2() as http,
        openai.AsyncOpenAI(base_url="http://tollway/v1", api_key=KEY, http_client=http) as client,
    ):
        plain = [{"role": "user", "content": "Hello"}]

        async def called(**options: Any) -> str | None:
            answer = await client.chat.completions.create(model="demo", messages=plain, tools=CHAT_TOOLS, **options)  # type: ignore[arg-type]
            calls = answer.choices[0].message.tool_calls
            return calls[0].function.name if calls else None  # type: ignore[union-attr]

        assert await called() is None  # auto, and the prompt names no tool
        # a client's injected reminder naming a tool is not the user asking for it (Claude Code's reminders)
        plain[:] = [
            {
                "role": "user",
                "content": "<system-reminder>\nThe get_weather tool is available.\n</system-reminder>\nHello",
            }
        ]
        assert await called() is None
        plain[:] = [{"role": "user", "content": "<system-reminder>x</system-reminder> Use get_weather for Paris."}]
        assert await called() == "get_weather"
        plain[:] = [{"role": "user", "content": "Hello"}]
        assert await called(tool_choice="required") == "get_time"  # the first tool
        assert await called(tool_choice={"type": "function", "function": {"name": "get_weather"}}) == "get_weather"
        assert await called(tool_choice="none") is None
        with pytest.raises(openai.BadRequestError) as refused:
            await called(tool_choice={"type": "function", "function": {"name": "nope"}})
        assert refused.value.body["param"] == "tool_choice"  # type: ignore[index]
        assert "nope" in refused.value.body["message"]  # type: ignore[index]


async def test_response_format_json_schema_and_json_object(app: InProcess) -> None:
    async with (
        app.http2() as http,
        openai.AsyncOpenAI(base_url="http://tollway/v1", api_key=KEY, http_client=http) as client,
    ):
        messages: list[Any] = [{"role": "user", "content": "Describe the weather"}]
        answer = await client.chat.completions.create(
            model="demo",
            messages=messages,
            response_format={"type": "json_schema", "json_schema": {"name": "weather", "schema": WEATHER}},
        )
        content = answer.choices[0].message.content or ""
        jsonschema.validate(orjson.loads(content), WEATHER)
        assert orjson.loads(content) == EXPECTED_ARGUMENTS
        assert answer.usage is not None
        assert answer.usage.completion_tokens == 39
        loose = await client.chat.completions.create(
            model="demo", messages=messages, response_format={"type": "json_object"}
        )
        parsed = orjson.loads(loose.choices[0].message.content or "")
        assert list(parsed) == ["reply"]
        assert parsed["reply"].startswith("Simulated reply from demo:")


async def test_anthropic_messages_tool_use_unary_streamed_and_forced(tmp_path: Path) -> None:
    reported: list[tuple[int, int]] = []
    async with (
        tollway_app(tmp_path, CONFIG) as app,
        app.http2() as http,
        anthropic.AsyncAnthropic(base_url="http://tollway", api_key=KEY, http_client=http) as client,
    ):
        message = await client.messages.create(
            model="demo", max_tokens=256, messages=[{"role": "user", "content": ASK}], tools=ANTHROPIC_TOOLS
        )
        block = message.content[-1]
        assert block.type == "tool_use"
        assert block.name == "get_weather"
        jsonschema.validate(block.input, WEATHER)
        assert block.input == EXPECTED_ARGUMENTS
        assert message.stop_reason == "tool_use"
        assert message.usage.output_tokens == TOOL_CALL_TOKENS
        reported.append((message.usage.input_tokens, message.usage.output_tokens))

        kinds: list[str] = []
        async with client.messages.stream(
            model="demo", max_tokens=256, messages=[{"role": "user", "content": ASK}], tools=ANTHROPIC_TOOLS
        ) as stream:
            async for event in stream:
                if event.type == "content_block_start":
                    kinds.append(event.content_block.type)
                elif event.type == "content_block_delta":
                    kinds.append(event.delta.type)
            final = await stream.get_final_message()
        assert kinds[0] == "tool_use"
        assert set(kinds[1:]) == {"input_json_delta"}
        assert len(kinds) == 40
        streamed = final.content[-1]
        assert streamed.type == "tool_use"
        assert streamed.input == EXPECTED_ARGUMENTS
        assert final.stop_reason == "tool_use"
        reported.append((final.usage.input_tokens, final.usage.output_tokens))

        # structured output by a forced tool: called although the prompt does not name it
        forced = await client.messages.create(
            model="demo",
            max_tokens=256,
            messages=[{"role": "user", "content": "Hello"}],
            tools=ANTHROPIC_TOOLS,
            tool_choice={"type": "tool", "name": "get_weather"},
        )
        assert forced.content[-1].type == "tool_use"
        assert forced.content[-1].input == EXPECTED_ARGUMENTS
        reported.append((forced.usage.input_tokens, forced.usage.output_tokens))

        turns: list[Any] = [
            {"role": "user", "content": ASK},
            {"role": "assistant", "content": [block.model_dump()]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": block.id, "content": "21C"}]},
        ]
        result = await client.messages.create(model="demo", max_tokens=256, tools=ANTHROPIC_TOOLS, messages=turns)
        assert [b.type for b in result.content] == ["text"]
        assert result.stop_reason == "end_turn"
        reported.append((result.usage.input_tokens, result.usage.output_tokens))
    assert metered(app.database) == reported


async def test_responses_function_calls_unary_and_streamed(tmp_path: Path) -> None:
    reported: list[tuple[int, int]] = []
    async with (
        tollway_app(tmp_path, CONFIG) as app,
        app.http2() as http,
        openai.AsyncOpenAI(base_url="http://tollway/v1", api_key=KEY, http_client=http) as client,
    ):
        response = await client.responses.create(model="demo", input=ASK, tools=RESPONSES_TOOLS)
        item = response.output[-1]
        assert item.type == "function_call"
        assert item.name == "get_weather"
        jsonschema.validate(orjson.loads(item.arguments), WEATHER)
        assert orjson.loads(item.arguments) == EXPECTED_ARGUMENTS
        assert response.usage is not None
        assert response.usage.output_tokens == TOOL_CALL_TOKENS
        reported.append((response.usage.input_tokens, response.usage.output_tokens))

        deltas: list[str] = []
        done = None
        async with client.responses.stream(model="demo", input=ASK, tools=RESPONSES_TOOLS) as stream:
            async for event in stream:
                if event.type == "response.function_call_arguments.delta":
                    deltas.append(event.delta)
                elif event.type == "response.function_call_arguments.done":
                    done = event.arguments
            final = await stream.get_final_response()
        assert len(deltas) == 39
        assert done == "".join(deltas)
        assert orjson.loads(done) == EXPECTED_ARGUMENTS
        assert final.usage is not None
        reported.append((final.usage.input_tokens, final.usage.output_tokens))

        after = await client.responses.create(
            model="demo",
            tools=RESPONSES_TOOLS,
            input=[
                {"role": "user", "content": ASK},
                {"type": "function_call", "call_id": item.call_id, "name": item.name, "arguments": item.arguments},
                {"type": "function_call_output", "call_id": item.call_id, "output": "21C"},
            ],
        )
        assert after.output[-1].type == "message"
        assert after.output_text.startswith("Simulated reply from demo:")
        assert after.usage is not None
        reported.append((after.usage.input_tokens, after.usage.output_tokens))
    assert metered(app.database) == reported


async def test_bad_tools_are_a_400_that_meters_nothing(tmp_path: Path) -> None:
    async with tollway_app(tmp_path, CONFIG) as app, app.http2() as http:
        body = {"model": "demo", "messages": [{"role": "user", "content": "x"}], "tool_choice": "required"}
        answer = await http.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"})
        assert answer.status_code == 400
        assert answer.json()["error"]["param"] == "tool_choice"
        body = {"model": "demo", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "web"}]}
        answer = await http.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"})
        assert answer.status_code == 400
        assert answer.json()["error"]["param"] == "tools[0]"
    assert all(e["status_code"] == 400 and e["output_tokens"] == 0 for e in request_events(app.database))


async def test_responses_text_format_json_schema(app: InProcess) -> None:
    async with (
        app.http2() as http,
        openai.AsyncOpenAI(base_url="http://tollway/v1", api_key=KEY, http_client=http) as client,
    ):
        response = await client.responses.create(
            model="demo",
            input="Describe the weather",
            text={"format": {"type": "json_schema", "name": "weather", "schema": WEATHER, "strict": False}},
        )
        jsonschema.validate(orjson.loads(response.output_text), WEATHER)
        assert orjson.loads(response.output_text) == EXPECTED_ARGUMENTS

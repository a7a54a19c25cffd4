"""OpenAI chat -> Anthropic Messages, and Anthropic's whole (non-streamed) responses -> OpenAI chat: what the
Anthropic provider speaks to its upstream (anthropic_client.py is the other way round, for Anthropic-format
clients). It takes only what it can carry faithfully; any other field gets a 400 naming it.
"""

from __future__ import annotations

from typing import Any

import orjson

from tollway import bounded_json
from tollway.errors import ValidationError
from tollway.gateway.translate.common import DATA_URL, neutral, unsupported
from tollway.gateway.usage import from_anthropic, to_openai_chat

DEFAULT_MAX_TOKENS = 4096  # Anthropic requires max_tokens; OpenAI clients often leave it out.

STOP_TO_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
FINISH_TO_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}

# OpenAI chat fields carried to Anthropic (others are checked one by one below).
_CHAT_CARRIED = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "stop",
        "stream",
        "stream_options",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "user",
    }
)
# Fields accepted only at a value that changes nothing.
_CHAT_NEUTRAL: dict[str, tuple[Any, ...]] = {
    "n": (1,),
    "frequency_penalty": (0, 0.0),
    "presence_penalty": (0, 0.0),
    "logprobs": (False,),
    "store": (False,),
}


# OpenAI chat -> Anthropic ---------------------------------------------------------------------------


def chat_to_anthropic_request(payload: dict[str, Any]) -> dict[str, Any]:
    for key, value in payload.items():
        if key in _CHAT_CARRIED:
            continue
        if key in _CHAT_NEUTRAL and neutral(value, *_CHAT_NEUTRAL[key]):
            continue
        raise unsupported(key, "the Anthropic Messages API has no equivalent")
    out: dict[str, Any] = {"model": payload["model"]}
    system, messages = _chat_messages_to_anthropic(payload["messages"])
    if system:
        out["system"] = system
    out["messages"] = messages
    limit = payload.get("max_completion_tokens", payload.get("max_tokens"))
    out["max_tokens"] = DEFAULT_MAX_TOKENS if limit is None else limit
    temperature = payload.get("temperature")
    if temperature is not None:
        if not isinstance(temperature, int | float) or temperature > 1:
            raise unsupported("temperature", "Anthropic accepts 0 to 1, OpenAI 0 to 2")
        out["temperature"] = temperature
    if payload.get("top_p") is not None:
        out["top_p"] = payload["top_p"]
    stop = payload.get("stop")
    if stop is not None:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else stop
    if payload.get("stream"):
        out["stream"] = True
    if isinstance(payload.get("user"), str):
        out["metadata"] = {"user_id": payload["user"]}
    tools = payload.get("tools")
    if tools:
        out["tools"] = [_chat_tool_to_anthropic(i, tool) for i, tool in enumerate(tools)]
    choice = _chat_tool_choice(payload.get("tool_choice"), payload.get("parallel_tool_calls"))
    if choice is not None:
        out["tool_choice"] = choice
    return out


def _chat_tool_to_anthropic(index: int, tool: Any) -> dict[str, Any]:
    function = tool.get("function") if isinstance(tool, dict) else None
    if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(function, dict):
        raise unsupported(f"tools[{index}]", "only function tools translate")
    for key in function:
        if key not in ("name", "description", "parameters", "strict"):
            raise unsupported(f"tools[{index}].function.{key}")
    converted: dict[str, Any] = {
        "name": function.get("name"),
        "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
    }
    if function.get("description"):
        converted["description"] = function["description"]
    if function.get("strict"):
        converted["strict"] = True
    return converted


def _chat_tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    converted: dict[str, Any] | None
    if choice is None:
        converted = None if parallel is not False else {"type": "auto"}
    elif choice == "auto":
        converted = {"type": "auto"}
    elif choice == "none":
        converted = {"type": "none"}
    elif choice == "required":
        converted = {"type": "any"}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        converted = {"type": "tool", "name": choice["function"].get("name")}
    else:
        raise unsupported("tool_choice")
    if parallel is False and converted is not None and converted["type"] != "none":
        converted["disable_parallel_tool_use"] = True
    return converted


def _chat_messages_to_anthropic(messages: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    system: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        role = message["role"]
        where = f"messages[{index}]"
        for key in message:
            if key not in ("role", "content", "tool_calls", "tool_call_id", "refusal", "name"):
                raise unsupported(f"{where}.{key}")
        if message.get("name") is not None and role != "tool":
            raise unsupported(f"{where}.name", "Anthropic messages carry no participant names")
        if role in ("system", "developer"):
            if out:
                raise unsupported(where, "a system message translates only before the conversation starts")
            system.extend(_text_blocks(message.get("content"), where))
            continue
        if role == "user":
            _append(out, "user", _user_blocks(message.get("content"), where))
        elif role == "assistant":
            blocks = _text_blocks(message.get("content"), where) if message.get("content") is not None else []
            if message.get("refusal"):
                raise unsupported(f"{where}.refusal")
            for j, call in enumerate(message.get("tool_calls") or []):
                blocks.append(_tool_call_to_tool_use(call, f"{where}.tool_calls[{j}]"))
            if not blocks:
                raise ValidationError(f"{where} has neither content nor tool_calls", field=where)
            _append(out, "assistant", blocks)
        elif role == "tool":
            content = message.get("content")
            result: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.get("tool_call_id")}
            result["content"] = content if isinstance(content, str) else _text_blocks(content, where)
            _append(out, "user", [result])
        else:
            raise unsupported(f"{where}.role", f"role '{role}' has no Anthropic equivalent")
    return system, out


def _append(out: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    """Consecutive turns of one role merge into one Anthropic message (tool results included)."""
    if out and out[-1]["role"] == role:
        out[-1]["content"].extend(blocks)
    else:
        out.append({"role": role, "content": blocks})


def _text_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise ValidationError(f"{where}.content must be a string or an array of parts", field=f"{where}.content")
    blocks = []
    for j, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
            raise unsupported(f"{where}.content[{j}]", "only text parts translate here")
        blocks.append({"type": "text", "text": part["text"]})
    return blocks


def _user_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise ValidationError(f"{where}.content must be a string or an array of parts", field=f"{where}.content")
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            blocks.append({"type": "text", "text": part["text"]})
        elif kind == "image_url" and isinstance(part.get("image_url"), dict):
            blocks.append(_image_block(part["image_url"].get("url"), f"{where}.content[{j}]"))
        else:
            raise unsupported(f"{where}.content[{j}]", f"content part type {kind!r} has no Anthropic equivalent")
    return blocks


def _image_block(url: Any, where: str) -> dict[str, Any]:
    if not isinstance(url, str):
        raise ValidationError(f"{where}.image_url.url must be a string", field=where)
    match = DATA_URL.match(url)
    if match:
        source = {"type": "base64", "media_type": match["type"], "data": match["data"]}
        return {"type": "image", "source": source}
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise unsupported(where, "images must be https URLs or base64 data URLs")


def _tool_call_to_tool_use(call: Any, where: str) -> dict[str, Any]:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or call.get("type", "function") != "function":
        raise unsupported(where, "only function tool calls translate")
    arguments = function.get("arguments") or "{}"
    if not isinstance(arguments, str):
        raise ValidationError(f"{where}.function.arguments must be a string of JSON", field=where)
    parsed = bounded_json.decode(arguments, field=where, what=f"{where}.function.arguments")
    if not isinstance(parsed, dict):
        raise unsupported(f"{where}.function.arguments", "Anthropic tool input must be a JSON object")
    return {"type": "tool_use", "id": call.get("id"), "name": function.get("name"), "input": parsed}


def anthropic_to_chat_response(message: dict[str, Any]) -> dict[str, Any]:
    text: list[str] = []
    reasoning: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in message.get("content") or []:
        kind = block.get("type")
        if kind == "text":
            text.append(block.get("text", ""))
        elif kind == "thinking":
            reasoning.append(block.get("thinking", ""))
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {"name": block.get("name"), "arguments": arguments},
                }
            )
    reply: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text or not calls else None}
    reply["refusal"] = None
    if calls:
        reply["tool_calls"] = calls
    if reasoning:
        reply["reasoning_content"] = "".join(reasoning)
    body: dict[str, Any] = {
        "id": message.get("id"),
        "object": "chat.completion",
        "created": 0,
        "model": message.get("model"),
        "choices": [
            {
                "index": 0,
                "message": reply,
                "logprobs": None,
                "finish_reason": STOP_TO_FINISH.get(str(message.get("stop_reason")), "stop"),
            }
        ],
    }
    usage = message.get("usage")
    if isinstance(usage, dict):
        body["usage"] = to_openai_chat(from_anthropic(usage))
    return body

"""Anthropic-format clients: Messages requests -> OpenAI chat, and chat answers (whole) -> Anthropic Messages.

The reverse of anthropic.py (which speaks to Anthropic upstreams): a client such as the anthropic SDK or Claude
Code sends `messages` of text, image, tool_use and tool_result blocks, `system`, `tools`, `tool_choice` and
`thinking`; it reads `content` blocks, `stop_reason` and `usage`. `relax_for_chat` first drops what only Claude
can use; the rest is carried faithfully or refused with a 400 naming it.
"""

from __future__ import annotations

from typing import Any

import orjson

from tollway.errors import ValidationError
from tollway.gateway.translate.anthropic import FINISH_TO_STOP
from tollway.gateway.translate.common import unsupported
from tollway.gateway.usage import from_openai_chat, to_anthropic

_MESSAGES_CARRIED = frozenset(
    {
        "model",
        "messages",
        "system",
        "max_tokens",
        "temperature",
        "top_p",
        "stop_sequences",
        "stream",
        "tools",
        "tool_choice",
        "metadata",
    }
)


# Anthropic thinking budgets as OpenAI reasoning efforts (budget below the bound -> effort).
BUDGET_TO_EFFORT = ((4096, "low"), (16384, "medium"))
# Anthropic output_config.effort -> OpenAI reasoning_effort.
EFFORT_TO_EFFORT = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}
# What `relax_for_chat` may drop, as named in x-tollway-dropped.
DROPPED_THINKING = "thinking"
DROPPED_CONTEXT_MANAGEMENT = "context_management"
DROPPED_THINKING_BLOCKS = "messages.content.thinking"
DROPPED_USER_ID = "metadata.user_id"
DROPPED_DEFER_LOADING = "tools.defer_loading"


def relax_for_chat(payload: dict[str, Any], *, end_user: bool = True) -> tuple[dict[str, Any], list[str]]:
    """The request without what only Claude can use and a translation may drop without changing the answer:
    adaptive thinking (the target's model decides how much to reason, as Claude would), context
    management edits that only clear earlier thinking, earlier thinking blocks (signed by Claude,
    meaningless to another model) and tools' defer_loading (deferred tools are listed to the model up
    front, as after a tool search); with `end_user` False (a target with no end-user field), also
    metadata.user_id. Returns the request and the names of what was dropped; anything else stays for
    the translator, which carries it or refuses it.
    """
    out = payload
    dropped: list[str] = []
    metadata = payload.get("metadata")
    if not end_user and isinstance(metadata, dict) and set(metadata) == {"user_id"}:
        out = {k: v for k, v in out.items() if k != "metadata"}
        dropped.append(DROPPED_USER_ID)
    thinking = payload.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "adaptive":
        out = {k: v for k, v in out.items() if k != "thinking"}
        dropped.append(DROPPED_THINKING)
    management = payload.get("context_management")
    edits = management.get("edits") if isinstance(management, dict) else None
    if (
        isinstance(management, dict)
        and isinstance(edits, list)
        and set(management) <= {"edits"}
        and all(isinstance(e, dict) and str(e.get("type", "")).startswith("clear_thinking_") for e in edits)
    ):
        out = {k: v for k, v in out.items() if k != "context_management"}
        dropped.append(DROPPED_CONTEXT_MANAGEMENT)
    tools = payload.get("tools")
    if isinstance(tools, list) and any(isinstance(t, dict) and "defer_loading" in t for t in tools):
        listed = [{k: v for k, v in t.items() if k != "defer_loading"} if isinstance(t, dict) else t for t in tools]
        out = {**out, "tools": listed}
        dropped.append(DROPPED_DEFER_LOADING)
    messages = payload.get("messages")
    if isinstance(messages, list) and any(_has_thinking(m) for m in messages):
        out = {**out, "messages": [_without_thinking(m) for m in messages]}
        dropped.append(DROPPED_THINKING_BLOCKS)
    return out, dropped


def _has_thinking(message: Any) -> bool:
    content = message.get("content") if isinstance(message, dict) else None
    return isinstance(content, list) and any(_is_thinking(block) for block in content)


def _is_thinking(block: Any) -> bool:
    return isinstance(block, dict) and block.get("type") in ("thinking", "redacted_thinking")


def _without_thinking(message: Any) -> Any:
    if not _has_thinking(message):
        return message
    return {**message, "content": [block for block in message["content"] if not _is_thinking(block)]}


def anthropic_to_chat_request(payload: dict[str, Any]) -> dict[str, Any]:
    for key, value in payload.items():
        if key in _MESSAGES_CARRIED:
            continue
        if key == "thinking" and isinstance(value, dict) and value.get("type") in ("disabled", "enabled"):
            continue
        if key == "output_config" and isinstance(value, dict) and set(value) <= {"effort"}:
            continue
        raise unsupported(key, "OpenAI chat completions have no equivalent")
    out: dict[str, Any] = {"model": payload["model"]}
    effort = _reasoning_effort(payload.get("thinking"), payload.get("output_config"))
    if effort is not None:
        out["reasoning_effort"] = effort
    messages: list[dict[str, Any]] = []
    system = payload.get("system")
    if system:
        messages.append({"role": "system", "content": _anthropic_text(system, "system")})
    for index, message in enumerate(payload["messages"]):
        messages.extend(_anthropic_message_to_chat(message, f"messages[{index}]"))
    out["messages"] = messages
    if payload.get("max_tokens") is not None:
        out["max_completion_tokens"] = payload["max_tokens"]
    for key in ("temperature", "top_p"):
        if payload.get(key) is not None:
            out[key] = payload[key]
    if payload.get("stop_sequences"):
        out["stop"] = payload["stop_sequences"]
    if payload.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    metadata = payload.get("metadata")
    if isinstance(metadata, dict):
        for key in metadata:
            if key != "user_id":
                raise unsupported(f"metadata.{key}")
        if isinstance(metadata.get("user_id"), str):
            out["user"] = metadata["user_id"]
    tools = payload.get("tools")
    if tools:
        out["tools"] = [_anthropic_tool_to_chat(i, tool) for i, tool in enumerate(tools)]
    choice = payload.get("tool_choice")
    if isinstance(choice, dict):
        kind = choice.get("type")
        if kind == "auto":
            out["tool_choice"] = "auto"
        elif kind == "any":
            out["tool_choice"] = "required"
        elif kind == "none":
            out["tool_choice"] = "none"
        elif kind == "tool":
            out["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
        else:
            raise unsupported("tool_choice.type")
        if choice.get("disable_parallel_tool_use") is True and tools:
            out["parallel_tool_calls"] = False
    elif choice is not None:
        raise ValidationError("tool_choice must be an object", field="tool_choice")
    return out


def _reasoning_effort(thinking: Any, output_config: Any) -> str | None:
    """output_config.effort when given, else the effort of thinking's budget (None: the model's default)."""
    if isinstance(output_config, dict) and "effort" in output_config:
        effort = EFFORT_TO_EFFORT.get(output_config["effort"]) if isinstance(output_config["effort"], str) else None
        if effort is None:
            raise ValidationError(
                f"output_config.effort: Input should be one of {', '.join(map(repr, EFFORT_TO_EFFORT))}",
                field="output_config.effort",
            )
        return effort
    if not isinstance(thinking, dict) or thinking.get("type") != "enabled":
        return None
    budget = thinking.get("budget_tokens")
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ValidationError("thinking.enabled.budget_tokens: Field required (a positive integer)", field="thinking")
    return next((effort for bound, effort in BUDGET_TO_EFFORT if budget < bound), "high")


def _anthropic_tool_to_chat(index: int, tool: Any) -> dict[str, Any]:
    if not isinstance(tool, dict) or tool.get("type") not in (None, "custom"):
        kind = tool.get("type") if isinstance(tool, dict) else None
        raise unsupported(f"tools[{index}]", f"server tool {kind!r} runs only on Anthropic")
    for key in tool:
        if key not in ("name", "description", "input_schema", "type", "cache_control", "strict"):
            raise unsupported(f"tools[{index}].{key}")
    function: dict[str, Any] = {"name": tool.get("name"), "parameters": tool.get("input_schema") or {"type": "object"}}
    if tool.get("description"):
        function["description"] = tool["description"]
    if tool.get("strict"):
        function["strict"] = True
    return {"type": "function", "function": function}


def _anthropic_text(content: Any, where: str) -> str:
    """Text-only content (a string or text blocks) as one string. cache_control hints are dropped:
    OpenAI-compatible providers cache prompts automatically."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise ValidationError(f"{where} must be a string or an array of blocks", field=where)
    parts = []
    for j, block in enumerate(content):
        if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(block.get("text"), str):
            raise unsupported(f"{where}[{j}]", "only text blocks translate here")
        parts.append(block["text"])
    return "".join(parts)


def _anthropic_message_to_chat(message: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(message, dict) or message.get("role") not in ("user", "assistant", "system"):
        raise ValidationError(f"{where}.role must be 'user', 'assistant' or 'system'", field=f"{where}.role")
    role = message["role"]
    content = message.get("content")
    if role == "system":  # a mid-conversation system message: a system message at the same place
        return [{"role": "system", "content": _anthropic_text(content, f"{where}.content")}]
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list):
        raise ValidationError(f"{where}.content must be a string or an array", field=f"{where}.content")
    if role == "assistant":
        text: list[str] = []
        calls: list[dict[str, Any]] = []
        for j, block in enumerate(content):
            kind = block.get("type") if isinstance(block, dict) else None
            if kind == "text":
                text.append(block.get("text", ""))
            elif kind == "tool_use":
                arguments = orjson.dumps(block.get("input") or {}).decode()
                calls.append(
                    {
                        "id": block.get("id"),
                        "type": "function",
                        "function": {"name": block.get("name"), "arguments": arguments},
                    }
                )
            else:
                raise unsupported(f"{where}.content[{j}]", f"block type {kind!r} has no OpenAI chat equivalent")
        reply: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text else None}
        if calls:
            reply["tool_calls"] = calls
        return [reply]
    results: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        here = f"{where}.content[{j}]"
        if kind == "text":
            parts.append({"type": "text", "text": block.get("text", "")})
        elif kind == "image":
            parts.append({"type": "image_url", "image_url": {"url": _image_url(block.get("source"), here)}})
        elif kind == "tool_result":
            result = block.get("content")
            output = "" if result is None else _anthropic_text(result, f"{here}.content")
            if block.get("is_error") is True:
                output = "Error: " + output
            results.append({"role": "tool", "tool_call_id": block.get("tool_use_id"), "content": output})
        else:
            raise unsupported(here, f"block type {kind!r} has no OpenAI chat equivalent")
    messages = list(results)
    if parts:
        only_text = all(p["type"] == "text" for p in parts)
        body: Any = "".join(p["text"] for p in parts) if only_text and len(parts) == 1 else parts
        messages.append({"role": "user", "content": body})
    return messages


def _image_url(source: Any, where: str) -> str:
    if isinstance(source, dict) and source.get("type") == "base64":
        return f"data:{source.get('media_type')};base64,{source.get('data')}"
    if isinstance(source, dict) and source.get("type") == "url" and isinstance(source.get("url"), str):
        return str(source["url"])
    raise unsupported(f"{where}.source", "only base64 and url image sources translate")


def chat_to_anthropic_response(completion: dict[str, Any]) -> dict[str, Any]:
    choices = completion.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    reply = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    if isinstance(reply.get("content"), str) and reply["content"]:
        content.append({"type": "text", "text": reply["content"]})
    for call in reply.get("tool_calls") or []:
        function = call.get("function") or {}
        try:
            arguments = orjson.loads(function.get("arguments") or "{}")
        except orjson.JSONDecodeError:
            arguments = {}
        content.append({"type": "tool_use", "id": call.get("id"), "name": function.get("name"), "input": arguments})
    usage = completion.get("usage")
    return {
        "id": _message_id(completion.get("id")),
        "type": "message",
        "role": "assistant",
        "model": completion.get("model"),
        "content": content,
        "stop_reason": FINISH_TO_STOP.get(str(choice.get("finish_reason")), "end_turn"),
        "stop_sequence": None,
        "usage": to_anthropic(from_openai_chat(usage if isinstance(usage, dict) else {})),
    }


def _message_id(upstream: Any) -> str:
    text = str(upstream or "tollway")
    return text if text.startswith("msg_") else "msg_" + text

"""OpenAI Responses <-> OpenAI chat, for providers that do not speak the Responses API natively.

Covers text and image input, instructions, function tools, function calls and their outputs,
max_output_tokens, temperature and top_p; any other field gets a 400 naming it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tollway.errors import ValidationError
from tollway.gateway.decode import json_object
from tollway.gateway.streaming import event_data
from tollway.gateway.translate.common import neutral, sse, sse_json, unsupported
from tollway.gateway.usage import from_openai_chat, from_responses, to_responses
from tollway.metering.llm import TokenUsage

_CARRIED = frozenset(
    {
        "model",
        "input",
        "instructions",
        "max_output_tokens",
        "temperature",
        "top_p",
        "stream",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "user",
    }
)
REASONING_EFFORTS = frozenset({"none", "minimal", "low", "medium", "high", "xhigh"})
_NEUTRAL: dict[str, tuple[Any, ...]] = {
    "store": (False,),
    "truncation": ("disabled",),
    "include": ([],),
    "background": (False,),
}


def responses_to_chat_request(payload: dict[str, Any]) -> dict[str, Any]:
    for key, value in payload.items():
        if key in _CARRIED:
            continue
        if key in _NEUTRAL and neutral(value, *_NEUTRAL[key]):
            continue
        if key == "text" and (value in ({"format": {"type": "text"}}, {}) or _text_format(value) is not None):
            continue
        if key == "reasoning" and _effort(value) is not None:
            continue
        raise unsupported(key, "it needs a provider that speaks the Responses API natively")
    messages: list[dict[str, Any]] = []
    if isinstance(payload.get("instructions"), str):
        messages.append({"role": "system", "content": payload["instructions"]})
    items = payload.get("input")
    if isinstance(items, str):
        messages.append({"role": "user", "content": items})
    elif isinstance(items, list):
        for index, item in enumerate(items):
            _item_to_chat(item, f"input[{index}]", messages)
    else:
        raise ValidationError("'input' must be a string or an array of items", field="input")
    out: dict[str, Any] = {"model": payload["model"], "messages": messages}
    if payload.get("max_output_tokens") is not None:
        out["max_completion_tokens"] = payload["max_output_tokens"]
    for key in ("temperature", "top_p", "parallel_tool_calls", "user"):
        if payload.get(key) is not None:
            out[key] = payload[key]
    effort = _effort(payload.get("reasoning"))
    if effort:
        out["reasoning_effort"] = effort
    tools = payload.get("tools")
    if tools:
        out["tools"] = [_tool_to_chat(i, tool) for i, tool in enumerate(tools)]
    choice = payload.get("tool_choice")
    if choice == "auto" and not tools:
        pass  # the default, and chat refuses a tool_choice without tools (all of them may have been dropped)
    elif isinstance(choice, str):
        out["tool_choice"] = choice
    elif isinstance(choice, dict) and choice.get("type") == "function":
        out["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
    elif choice is not None:
        raise unsupported("tool_choice")
    response_format = _text_format(payload.get("text"))
    if response_format is not None:
        out["response_format"] = response_format
    if payload.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def _effort(reasoning: Any) -> str | None:
    """`reasoning: {"effort": ...}` (or null, or `{}`) as chat's reasoning_effort ("" for none given); None when
    `reasoning` holds anything else (a summary: see responses_relax)."""
    if reasoning is None or reasoning == {}:
        return ""
    if isinstance(reasoning, dict) and set(reasoning) == {"effort"}:
        effort = reasoning["effort"]
        if effort is None:
            return ""
        if isinstance(effort, str) and effort in REASONING_EFFORTS:
            return effort
    return None


def _tool_to_chat(index: int, tool: Any) -> dict[str, Any]:
    if not isinstance(tool, dict) or tool.get("type") != "function":
        kind = tool.get("type") if isinstance(tool, dict) else None
        raise unsupported(f"tools[{index}]", f"built-in tool {kind!r} runs only on OpenAI")
    function: dict[str, Any] = {"name": tool.get("name"), "parameters": tool.get("parameters") or {"type": "object"}}
    if tool.get("description"):
        function["description"] = tool["description"]
    if tool.get("strict") is not None:
        function["strict"] = tool["strict"]
    return {"type": "function", "function": function}


def _item_to_chat(item: Any, where: str, messages: list[dict[str, Any]]) -> None:
    if not isinstance(item, dict):
        raise ValidationError(f"{where} must be an object", field=where)
    kind = item.get("type", "message")
    if kind == "message":
        role = item.get("role")
        if role not in ("user", "system", "developer", "assistant"):
            raise ValidationError(f"{where}.role must be user, system, developer or assistant", field=where)
        messages.append({"role": role, "content": _content(item.get("content"), f"{where}.content", role)})
    elif kind == "function_call":
        call = {
            "id": item.get("call_id"),
            "type": "function",
            "function": {"name": item.get("name"), "arguments": item.get("arguments") or "{}"},
        }
        last = messages[-1] if messages else None
        if last is not None and last["role"] == "assistant" and "tool_calls" in last:
            last["tool_calls"].append(call)
        else:
            messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
    elif kind == "function_call_output":
        output = item.get("output")
        if not isinstance(output, str):
            output = _content(output, f"{where}.output", "tool")
        messages.append({"role": "tool", "tool_call_id": item.get("call_id"), "content": output})
    else:
        raise unsupported(where, f"input item type {kind!r} has no chat equivalent")


def _text_format(text: Any) -> dict[str, Any] | None:
    """`text.format` json_schema / json_object as chat's response_format (None for plain text or no format)."""
    found = text.get("format") if isinstance(text, dict) else None
    kind = found.get("type") if isinstance(found, dict) else None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema" and isinstance(found, dict) and isinstance(found.get("schema"), dict):
        spec = {k: found[k] for k in ("name", "description", "schema", "strict") if k in found}
        return {"type": "json_schema", "json_schema": spec}
    return None


def _content(content: Any, where: str, role: str) -> Any:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise ValidationError(f"{where} must be a string or an array", field=where)
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text") and isinstance(part.get("text"), str):
            parts.append({"type": "text", "text": part["text"]})
        elif kind == "input_image" and role == "user" and isinstance(part.get("image_url"), str):
            image: dict[str, Any] = {"url": part["image_url"]}
            if part.get("detail"):
                image["detail"] = part["detail"]
            parts.append({"type": "image_url", "image_url": image})
        else:
            raise unsupported(f"{where}[{j}]", f"content type {kind!r} has no chat equivalent here")
    if role != "user" and all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


# responses ----------------------------------------------------------------------------------------


def _response_shell(response_id: str, model: Any, created: int, status: str) -> dict[str, Any]:
    return {
        "id": response_id,
        "object": "response",
        "created_at": created,
        "status": status,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "max_output_tokens": None,
        "model": model,
        "output": [],
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": None,
        "store": False,
        "temperature": None,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": None,
        "truncation": "disabled",
        "usage": None,
        "metadata": {},
    }


def _finish(body: dict[str, Any], finish: str | None, usage: TokenUsage | None) -> dict[str, Any]:
    if finish == "length":
        body["status"] = "incomplete"
        body["incomplete_details"] = {"reason": "max_output_tokens"}
    elif finish == "content_filter":
        body["status"] = "incomplete"
        body["incomplete_details"] = {"reason": "content_filter"}
    else:
        body["status"] = "completed"
    body["usage"] = to_responses(usage) if usage is not None else None
    return body


def _suffix(upstream_id: Any) -> str:
    return str(upstream_id or "tollway").removeprefix("chatcmpl-").removeprefix("msg_")


def _message_item(item_id: str, text: str, status: str) -> dict[str, Any]:
    part = {"type": "output_text", "text": text, "annotations": []}
    return {"type": "message", "id": item_id, "status": status, "role": "assistant", "content": [part]}


def _call_item(item_id: str, call_id: Any, name: Any, arguments: str, status: str) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": item_id,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def chat_to_responses_response(completion: dict[str, Any], created: int = 0) -> dict[str, Any]:
    suffix = _suffix(completion.get("id"))
    body = _response_shell("resp_" + suffix, completion.get("model"), completion.get("created") or created, "completed")
    choices = completion.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    reply = choice.get("message") or {}
    if isinstance(reply.get("content"), str) and reply["content"]:
        body["output"].append(_message_item("msg_" + suffix, reply["content"], "completed"))
    for index, call in enumerate(reply.get("tool_calls") or []):
        function = call.get("function") or {}
        item = _call_item(
            f"fc_{suffix}_{index}", call.get("id"), function.get("name"), function.get("arguments") or "", "completed"
        )
        body["output"].append(item)
    usage = completion.get("usage")
    return _finish(body, choice.get("finish_reason"), from_openai_chat(usage) if isinstance(usage, dict) else None)


class ChatToResponses:
    """OpenAI chat chunks -> Responses streaming events (response.created ... response.completed)."""

    def __init__(self, created: int) -> None:
        self._created = created
        self._sequence = 0
        self._body: dict[str, Any] | None = None
        self._suffix = "tollway"
        self._text: dict[str, Any] | None = None  # the open message item
        self._calls: dict[int, dict[str, Any]] = {}  # chat tool call index -> function_call item
        self._finish: str | None = None
        self._usage: TokenUsage | None = None
        self._closed = False

    def _event(self, kind: str, **fields: Any) -> bytes:
        event = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return sse(event, kind)

    def feed(self, event: bytes) -> bytes:
        raw = event_data(event)
        if raw is None or self._closed:
            return b""
        if raw == b"[DONE]":
            return self._close()
        chunk = json_object(raw)
        if chunk is None:
            return b""
        if isinstance(chunk.get("error"), Mapping):
            error = chunk["error"]
            return self._event("error", code=error.get("code"), message=error.get("message"), param=error.get("param"))
        out: list[bytes] = []
        if self._body is None:
            self._suffix = _suffix(chunk.get("id"))
            self._body = _response_shell("resp_" + self._suffix, chunk.get("model"), self._created, "in_progress")
            out.append(self._event("response.created", response=self._body))
            out.append(self._event("response.in_progress", response=self._body))
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if isinstance(text, str) and text:
                out.append(self._text_delta(text))
            for call in delta.get("tool_calls") or ():
                if isinstance(call, Mapping):
                    out.append(self._call_delta(call))
            if choice.get("finish_reason"):
                self._finish = str(choice["finish_reason"])
        usage = chunk.get("usage")
        if isinstance(usage, Mapping):
            self._usage = from_openai_chat(usage)
        return b"".join(out)

    def _output_index(self) -> int:
        assert self._body is not None
        return len(self._body["output"])

    def _text_delta(self, text: str) -> bytes:
        out = b""
        assert self._body is not None
        if self._text is None:
            self._text = _message_item("msg_" + self._suffix, "", "in_progress")
            self._text["content"] = []
            index = self._output_index()
            self._body["output"].append(self._text)
            out += self._event("response.output_item.added", output_index=index, item=self._text)
            part = {"type": "output_text", "text": "", "annotations": []}
            out += self._event(
                "response.content_part.added", item_id=self._text["id"], output_index=index, content_index=0, part=part
            )
            self._text["content"].append(part)
            self._text["_index"] = index
        self._text["content"][0]["text"] += text
        return out + self._event(
            "response.output_text.delta",
            item_id=self._text["id"],
            output_index=self._text["_index"],
            content_index=0,
            delta=text,
            logprobs=[],
        )

    def _call_delta(self, call: Mapping[str, Any]) -> bytes:
        assert self._body is not None
        position = call.get("index", 0)
        function = call.get("function") or {}
        out = b""
        item = self._calls.get(position)
        if item is None:
            index = self._output_index()
            item = _call_item(f"fc_{self._suffix}_{position}", call.get("id"), function.get("name"), "", "in_progress")
            item["_index"] = index
            self._calls[position] = item
            self._body["output"].append(item)
            out += self._event("response.output_item.added", output_index=index, item=_public(item))
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            item["arguments"] += arguments
            out += self._event(
                "response.function_call_arguments.delta",
                item_id=item["id"],
                output_index=item["_index"],
                delta=arguments,
            )
        return out

    def _close(self) -> bytes:
        self._closed = True
        if self._body is None:
            return b""
        out: list[bytes] = []
        if self._text is not None:
            index = self._text["_index"]
            part = self._text["content"][0]
            self._text["status"] = "completed"
            out.append(
                self._event(
                    "response.output_text.done",
                    item_id=self._text["id"],
                    output_index=index,
                    content_index=0,
                    text=part["text"],
                    logprobs=[],
                )
            )
            out.append(
                self._event(
                    "response.content_part.done",
                    item_id=self._text["id"],
                    output_index=index,
                    content_index=0,
                    part=part,
                )
            )
            out.append(self._event("response.output_item.done", output_index=index, item=_public(self._text)))
        for item in self._calls.values():
            item["status"] = "completed"
            arguments = item["arguments"] or "{}"
            item["arguments"] = arguments
            out.append(
                self._event(
                    "response.function_call_arguments.done",
                    item_id=item["id"],
                    output_index=item["_index"],
                    arguments=arguments,
                )
            )
            out.append(self._event("response.output_item.done", output_index=item["_index"], item=_public(item)))
        self._body["output"] = [_public(item) for item in self._body["output"]]
        body = _finish(self._body, self._finish, self._usage)
        kind = "response.completed" if body["status"] == "completed" else "response.incomplete"
        out.append(self._event(kind, response=body))
        return b"".join(out)

    def finish(self) -> bytes:
        if not self._closed and self._finish is not None:
            return self._close()
        return b""


def _public(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if not k.startswith("_")}


@dataclass
class ResponsesStreamTracker:
    """Watches a Responses stream relayed to the client: usage from response.completed (or incomplete)."""

    usage: TokenUsage | None = None
    done: bool = False
    content_chunks: int = 0
    content_chars: int = 0
    error: Mapping[str, Any] | None = None
    _seen: set[str] = field(default_factory=set)

    def relay(self, event: bytes) -> bytes:
        data = sse_json(event)
        if data is None:
            return event
        kind = data.get("type")
        if kind in ("response.output_text.delta", "response.function_call_arguments.delta", "response.refusal.delta"):
            delta = data.get("delta")
            if isinstance(delta, str) and delta:
                self.content_chunks += 1
                self.content_chars += len(delta)
        elif kind in ("response.completed", "response.incomplete", "response.failed"):
            response = data.get("response") or {}
            usage = response.get("usage")
            if isinstance(usage, Mapping):
                self.usage = from_responses(usage)
            self.done = True
            if kind == "response.failed":
                self.error = response.get("error") or {}
        elif kind == "error":
            self.error = data
        return event


def responses_stream_error(message: str) -> bytes:
    error = {"type": "error", "code": "stream_incomplete", "message": message, "param": None, "sequence_number": 0}
    return sse(error, "error")


def prompt_view(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A chat-shaped view of a Responses request, for estimating its size when a stream is cut."""
    items = payload.get("input")
    messages = [{"role": "user", "content": items}] if isinstance(items, str) else items
    if isinstance(payload.get("instructions"), str):
        messages = [{"role": "system", "content": payload["instructions"]}, *(messages or [])]
    return {"messages": messages if isinstance(messages, list) else []}

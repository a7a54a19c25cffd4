"""Gemini-format clients: generateContent requests -> OpenAI chat, and chat answers (whole or streamed) -> Gemini.

The reverse of gemini.py (which speaks to Gemini upstreams): a client such as the google-genai SDK sends
`contents` (user/model turns of `parts`), `systemInstruction`, `generationConfig`, `tools` and
`toolConfig`; it reads `candidates[0].content.parts`, `finishReason` and `usageMetadata`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from tollway.errors import ValidationError
from tollway.gateway.translate.common import sse, sse_json, unsupported
from tollway.gateway.usage import from_gemini, from_openai_chat
from tollway.metering.llm import TokenUsage

TO_FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "content_filter": "SAFETY", "tool_calls": "STOP"}
_CARRIED = frozenset({"contents", "systemInstruction", "generationConfig", "tools", "toolConfig", "model"})
# Accepted and not passed on: hints with no chat equivalent that change what is said, not what is billed.
IGNORED = frozenset({"safetySettings", "labels", "cachedContent"})
_CONFIG = {
    "temperature": "temperature",
    "topP": "top_p",
    "seed": "seed",
    "presencePenalty": "presence_penalty",
    "frequencyPenalty": "frequency_penalty",
}
_CONFIG_IGNORED = frozenset({"thinkingConfig", "responseModalities", "topK", "mediaResolution"})


def camel(value: Any) -> Any:
    """An object with its keys in camelCase: Google's APIs take proto field names (function_call) too."""
    if not isinstance(value, dict):
        return value
    return {_camel_key(k): v for k, v in value.items()}


def _camel_key(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def gemini_to_chat_request(payload: dict[str, Any], model: str, stream: bool) -> dict[str, Any]:
    """A generateContent body (the model from the URL) as an OpenAI chat request; a ValidationError when bad."""
    payload = camel(payload)
    for key in payload:
        if key not in _CARRIED and key not in IGNORED:
            raise unsupported(key, "it has no equivalent outside Gemini")
    messages: list[dict[str, Any]] = []
    system = payload.get("systemInstruction")
    if system is not None:
        instruction = _system_text(system)
        if instruction:
            messages.append({"role": "system", "content": instruction})
    contents = payload.get("contents")
    if isinstance(contents, dict):
        contents = [contents]
    if not isinstance(contents, list) or not contents:
        raise ValidationError("contents: must be a non-empty array", field="contents")
    pending: dict[str, list[str]] = {}  # function name -> ids of its calls not yet answered
    counter = 0
    for index, content in enumerate(contents):
        where = f"contents[{index}]"
        if not isinstance(content, dict):
            raise ValidationError(f"{where}: must be an object", field=where)
        content = camel(content)
        role = content.get("role") or "user"
        parts = content.get("parts")
        if not isinstance(parts, list) or not parts:
            raise ValidationError(f"{where}.parts: must be a non-empty array", field=f"{where}.parts")
        if role == "model":
            text: list[str] = []
            calls: list[dict[str, Any]] = []
            for j, part in enumerate(parts):
                if not isinstance(part, dict):
                    raise ValidationError(f"{where}.parts[{j}]: must be an object", field=f"{where}.parts")
                part = camel(part)
                if part.get("thought") is True:
                    continue  # the model's own thoughts are not sent back to another model
                if isinstance(part.get("text"), str):
                    text.append(part["text"])
                elif isinstance(part.get("functionCall"), dict):
                    call = part["functionCall"]
                    name = str(call.get("name"))
                    call_id = str(call.get("id") or f"call_{counter}")
                    counter += 1
                    pending.setdefault(name, []).append(call_id)
                    arguments = orjson.dumps(call.get("args") or {}).decode()
                    calls.append(
                        {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
                    )
                else:
                    raise unsupported(
                        f"{where}.parts[{j}]", "only text and functionCall parts translate in model turns"
                    )
            message: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text or not calls else None}
            if calls:
                message["tool_calls"] = calls
            messages.append(message)
        elif role == "user":
            user: list[dict[str, Any]] = []
            for j, part in enumerate(parts):
                if not isinstance(part, dict):
                    raise ValidationError(f"{where}.parts[{j}]: must be an object", field=f"{where}.parts")
                part = camel(part)
                if isinstance(part.get("functionResponse"), dict):
                    answer = part["functionResponse"]
                    name = str(answer.get("name"))
                    ids = pending.get(name) or []
                    call_id = str(answer.get("id") or (ids[0] if ids else ""))
                    if call_id not in ids:
                        raise ValidationError(
                            f"{where}.parts[{j}].functionResponse answers no earlier functionCall named '{name}'",
                            field=f"{where}.parts",
                        )
                    ids.remove(call_id)
                    result = orjson.dumps(answer.get("response") or {}).decode()
                    messages.append({"role": "tool", "tool_call_id": call_id, "content": result})
                elif isinstance(part.get("text"), str):
                    user.append({"type": "text", "text": part["text"]})
                elif isinstance(part.get("inlineData"), dict):
                    data = camel(part["inlineData"])
                    url = f"data:{data.get('mimeType')};base64,{data.get('data')}"
                    user.append({"type": "image_url", "image_url": {"url": url}})
                else:
                    raise unsupported(f"{where}.parts[{j}]", "only text, inlineData and functionResponse translate")
            if user:
                plain = all(p["type"] == "text" for p in user)
                messages.append({"role": "user", "content": "".join(p["text"] for p in user) if plain else user})
        else:
            raise ValidationError(f"{where}.role: must be 'user' or 'model'", field=f"{where}.role")
    out: dict[str, Any] = {"model": model, "messages": messages}
    _config(payload.get("generationConfig"), out)
    tools = _tools(payload.get("tools"))
    if tools:
        out["tools"] = tools
    choice = _tool_choice(payload.get("toolConfig"))
    if choice is not None and tools:
        out["tool_choice"] = choice
    if stream:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def _system_text(system: Any) -> str:
    if isinstance(system, str):
        return system
    parts = system.get("parts") if isinstance(system, dict) else None
    if not isinstance(parts, list) or not all(isinstance(p, dict) and isinstance(p.get("text"), str) for p in parts):
        raise ValidationError("systemInstruction: must hold text parts", field="systemInstruction")
    return "\n".join(p["text"] for p in parts)


def _config(config: Any, out: dict[str, Any]) -> None:
    if config is None:
        return
    if not isinstance(config, dict):
        raise ValidationError("generationConfig: must be an object", field="generationConfig")
    config = camel(config)
    for key, value in config.items():
        if value is None or key in _CONFIG_IGNORED:
            continue
        if key in _CONFIG:
            out[_CONFIG[key]] = value
        elif key == "maxOutputTokens":
            out["max_tokens"] = value
        elif key == "stopSequences":
            out["stop"] = value
        elif key == "candidateCount":
            if value != 1:
                raise unsupported("generationConfig.candidateCount", "one candidate only")
        elif key in ("responseMimeType", "responseSchema", "responseJsonSchema"):
            continue
        else:
            raise unsupported(f"generationConfig.{key}")
    schema = config.get("responseJsonSchema")
    if schema is None and config.get("responseSchema") is not None:
        schema = _lower_types(config["responseSchema"])
    mime = config.get("responseMimeType")
    if schema is not None:
        out["response_format"] = {"type": "json_schema", "json_schema": {"name": "response", "schema": schema}}
    elif mime == "application/json":
        out["response_format"] = {"type": "json_object"}
    elif mime not in (None, "text/plain"):
        raise unsupported("generationConfig.responseMimeType", f"{mime!r} has no chat equivalent")


def _lower_types(schema: Any) -> Any:
    """Gemini's OpenAPI-style schema (types in capitals, `nullable`) as a JSON schema."""
    if isinstance(schema, list):
        return [_lower_types(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _lower_types(v) for k, v in schema.items() if k != "nullable"}
    if isinstance(schema.get("type"), str):
        out["type"] = schema["type"].lower()
        if schema.get("nullable") is True:
            out["type"] = [out["type"], "null"]
    if "properties" in schema and isinstance(schema["properties"], dict):
        out["properties"] = {k: _lower_types(v) for k, v in schema["properties"].items()}
    return out


def _tools(tools: Any) -> list[dict[str, Any]]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise ValidationError("tools: must be an array", field="tools")
    out: list[dict[str, Any]] = []
    for i, tool in enumerate(tools):
        tool = camel(tool)
        if not isinstance(tool, dict) or set(tool) - {"functionDeclarations"}:
            raise unsupported(f"tools[{i}]", "only functionDeclarations translate")
        for declaration in tool.get("functionDeclarations") or []:
            declaration = camel(declaration)
            if not isinstance(declaration, dict) or not isinstance(declaration.get("name"), str):
                raise ValidationError(f"tools[{i}]: each function declaration needs a name", field="tools")
            function: dict[str, Any] = {"name": declaration["name"]}
            if declaration.get("description"):
                function["description"] = declaration["description"]
            parameters = declaration.get("parametersJsonSchema")
            if parameters is None and declaration.get("parameters") is not None:
                parameters = _lower_types(declaration["parameters"])
            function["parameters"] = (
                parameters if isinstance(parameters, dict) else {"type": "object", "properties": {}}
            )
            out.append({"type": "function", "function": function})
    return out


def _tool_choice(config: Any) -> Any:
    calling = camel(config).get("functionCallingConfig") if isinstance(config, dict) else None
    if not isinstance(calling, dict):
        return None
    calling = camel(calling)
    mode = str(calling.get("mode") or "AUTO").upper()
    names = calling.get("allowedFunctionNames")
    if mode == "NONE":
        return "none"
    if mode in ("ANY", "VALIDATED"):
        if isinstance(names, list) and len(names) == 1:
            return {"type": "function", "function": {"name": names[0]}}
        return "required"
    return "auto"


# answers ------------------------------------------------------------------------------------------


def usage_metadata(usage: TokenUsage) -> dict[str, Any]:
    prompt = usage.input + usage.cache_read + usage.cache_write
    candidates = usage.output - usage.reasoning
    block: dict[str, Any] = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": candidates,
        "totalTokenCount": prompt + usage.output,
    }
    if usage.cache_read:
        block["cachedContentTokenCount"] = usage.cache_read
    if usage.reasoning:
        block["thoughtsTokenCount"] = usage.reasoning
    return block


def _call_part(call: Mapping[str, Any]) -> dict[str, Any]:
    function = call.get("function") or {}
    try:
        args = orjson.loads(function.get("arguments") or "{}")
    except orjson.JSONDecodeError:
        args = {}
    return {"functionCall": {"id": call.get("id"), "name": function.get("name"), "args": args}}


def chat_to_gemini_response(body: dict[str, Any], model: str) -> dict[str, Any]:
    choices = body.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    parts: list[dict[str, Any]] = []
    if isinstance(message.get("reasoning_content"), str) and message["reasoning_content"]:
        parts.append({"text": message["reasoning_content"], "thought": True})
    if isinstance(message.get("content"), str) and message["content"]:
        parts.append({"text": message["content"]})
    for call in message.get("tool_calls") or ():
        if isinstance(call, Mapping):
            parts.append(_call_part(call))
    finish = TO_FINISH.get(str(choice.get("finish_reason")), "STOP")
    out: dict[str, Any] = {
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": finish, "index": 0}],
        "modelVersion": body.get("model") or model,
        "responseId": str(body.get("id") or "tollway"),
    }
    if isinstance(body.get("usage"), Mapping):
        out["usageMetadata"] = usage_metadata(from_openai_chat(body["usage"]))
    return out


class ChatToGemini:
    """OpenAI chat chunks -> streamGenerateContent?alt=sse events: text as it comes, each function call whole
    (as Gemini streams them) once its arguments are complete, and a last event with finishReason and usage."""

    def __init__(self, model: str) -> None:
        self._model = model
        self._id = "tollway"
        self._calls: dict[int, dict[str, Any]] = {}
        self._finish: str | None = None
        self._usage: TokenUsage | None = None
        self._closed = False

    def _event(self, parts: list[dict[str, Any]], *, last: bool = False) -> bytes:
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
        body: dict[str, Any] = {"candidates": [candidate], "modelVersion": self._model, "responseId": self._id}
        if last:
            candidate["finishReason"] = TO_FINISH.get(self._finish or "stop", "STOP")
            if self._usage is not None:
                body["usageMetadata"] = usage_metadata(self._usage)
        return sse(body)

    def feed(self, event: bytes) -> bytes:
        chunk = sse_json(event)
        if chunk is None:
            return b""
        if isinstance(chunk.get("error"), Mapping):
            error = chunk["error"]
            return sse({"error": {"code": 500, "message": error.get("message"), "status": "INTERNAL"}})
        if chunk.get("id"):
            self._id = str(chunk["id"])
        if chunk.get("model"):
            self._model = str(chunk["model"])
        parts: list[dict[str, Any]] = []
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if isinstance(delta.get("reasoning_content"), str) and delta["reasoning_content"]:
                parts.append({"text": delta["reasoning_content"], "thought": True})
            if isinstance(delta.get("content"), str) and delta["content"]:
                parts.append({"text": delta["content"]})
            for call in delta.get("tool_calls") or ():
                if isinstance(call, Mapping):
                    self._gather(call)
            if choice.get("finish_reason"):
                self._finish = str(choice["finish_reason"])
        if isinstance(chunk.get("usage"), Mapping):
            self._usage = from_openai_chat(chunk["usage"])
        return self._event(parts) if parts else b""

    def _gather(self, call: Mapping[str, Any]) -> None:
        gathered = self._calls.setdefault(int(call.get("index") or 0), {"id": None, "name": "", "arguments": ""})
        function = call.get("function") or {}
        if call.get("id"):
            gathered["id"] = call["id"]
        if function.get("name"):
            gathered["name"] = function["name"]
        gathered["arguments"] += function.get("arguments") or ""

    def finish(self) -> bytes:
        if self._closed or self._finish is None:
            return b""  # closed before the model finished: the relay treats the stream as incomplete
        self._closed = True
        calls = [
            _call_part({"id": c["id"], "function": {"name": c["name"], "arguments": c["arguments"]}})
            for _, c in sorted(self._calls.items())
        ]
        return self._event(calls, last=True)


@dataclass
class GeminiStreamTracker:
    """Watches a Gemini stream relayed to the client: usage (the last usageMetadata counts) and the end
    (an event with a finishReason)."""

    usage: TokenUsage | None = None
    done: bool = False
    content_chunks: int = 0
    content_chars: int = 0
    error: Mapping[str, Any] | None = None

    def relay(self, event: bytes) -> bytes:
        data = sse_json(event)
        if data is None:
            return event
        if isinstance(data.get("error"), Mapping):
            self.error = data["error"]
            return event
        candidates = data.get("candidates")
        candidate = candidates[0] if isinstance(candidates, list) and candidates else {}
        if isinstance(candidate, dict):
            size = 0
            for part in (candidate.get("content") or {}).get("parts") or ():
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    size += len(part["text"])
                elif isinstance(part, dict) and isinstance(part.get("functionCall"), dict):
                    size += len(orjson.dumps(part["functionCall"]))
            if size:
                self.content_chunks += 1
                self.content_chars += size
            if candidate.get("finishReason"):
                self.done = True
        if isinstance(data.get("usageMetadata"), Mapping):
            self.usage = from_gemini(data["usageMetadata"])
        return event


def gemini_stream_error(message: str) -> bytes:
    return sse({"error": {"code": 502, "message": message, "status": "UNAVAILABLE"}})

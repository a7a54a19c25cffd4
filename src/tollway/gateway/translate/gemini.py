"""OpenAI chat -> Gemini generateContent, and Gemini responses (whole or streamed) -> OpenAI chat.

Gemini: `contents` of role user/model with `parts` (text, inlineData, functionCall, functionResponse),
`systemInstruction`, `generationConfig`, `tools[].functionDeclarations`, `toolConfig`; responses carry
`candidates[].content.parts`, `finishReason` and `usageMetadata`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from tollway import bounded_json
from tollway.errors import ValidationError
from tollway.gateway.translate.common import DATA_URL, neutral, sse, sse_json, unsupported
from tollway.gateway.usage import from_gemini, to_openai_chat

FINISH = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
}
# Gemini's thinking models sign each function call and want the signature back with the call in the next
# turn. OpenAI chat has no field for it, so it travels inside the tool call id, which clients echo verbatim.
SIGNATURE_MARK = "__thought__"
_CARRIED = frozenset(
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
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "response_format",
        "reasoning_effort",
    }
)
# OpenAI reasoning_effort -> Gemini thinkingConfig.thinkingBudget (the budgets Google's OpenAI-compatible
# endpoint uses for Gemini 2.5; "none" turns thinking off where the model allows it).
THINKING_BUDGET = {"none": 0, "minimal": 1024, "low": 1024, "medium": 8192, "high": 24576, "xhigh": 24576}
_NEUTRAL: dict[str, tuple[Any, ...]] = {
    "n": (1,),
    "logprobs": (False,),
    "store": (False,),
    "parallel_tool_calls": (True,),
}


def chat_to_gemini_request(payload: dict[str, Any]) -> dict[str, Any]:
    for key, value in payload.items():
        if key in _CARRIED:
            continue
        if key in _NEUTRAL and neutral(value, *_NEUTRAL[key]):
            continue
        raise unsupported(key, "the Gemini API has no equivalent")
    system, contents = _contents(payload["messages"])
    out: dict[str, Any] = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": system}
    config: dict[str, Any] = {}
    limit = payload.get("max_completion_tokens", payload.get("max_tokens"))
    if limit is not None:
        config["maxOutputTokens"] = limit
    for source, target in (
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("seed", "seed"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ):
        if payload.get(source) is not None:
            config[target] = payload[source]
    stop = payload.get("stop")
    if stop is not None:
        config["stopSequences"] = [stop] if isinstance(stop, str) else stop
    response_format = payload.get("response_format")
    if isinstance(response_format, dict):
        kind = response_format.get("type")
        if kind == "json_object":
            config["responseMimeType"] = "application/json"
        elif kind == "json_schema" and isinstance(response_format.get("json_schema"), dict):
            config["responseMimeType"] = "application/json"
            config["responseJsonSchema"] = response_format["json_schema"].get("schema") or {}
        elif kind != "text":
            raise unsupported("response_format")
    effort = payload.get("reasoning_effort")
    if effort is not None:
        if effort not in THINKING_BUDGET:
            raise unsupported("reasoning_effort", f"Gemini takes {', '.join(THINKING_BUDGET)}")
        config["thinkingConfig"] = {"thinkingBudget": THINKING_BUDGET[effort]}
    if config:
        out["generationConfig"] = config
    tools = payload.get("tools")
    if tools:
        out["tools"] = [{"functionDeclarations": [_declaration(i, tool) for i, tool in enumerate(tools)]}]
    choice = payload.get("tool_choice")
    if choice is not None:
        out["toolConfig"] = {"functionCallingConfig": _calling_config(choice)}
    return out


def _declaration(index: int, tool: Any) -> dict[str, Any]:
    function = tool.get("function") if isinstance(tool, dict) else None
    if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(function, dict):
        raise unsupported(f"tools[{index}]", "only function tools translate")
    declaration: dict[str, Any] = {"name": function.get("name")}
    if function.get("description"):
        declaration["description"] = function["description"]
    if function.get("parameters"):
        declaration["parametersJsonSchema"] = function["parameters"]
    return declaration


def _calling_config(choice: Any) -> dict[str, Any]:
    if choice == "auto":
        return {"mode": "AUTO"}
    if choice == "none":
        return {"mode": "NONE"}
    if choice == "required":
        return {"mode": "ANY"}
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        return {"mode": "ANY", "allowedFunctionNames": [choice["function"].get("name")]}
    raise unsupported("tool_choice")


def _contents(messages: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool call id -> function name (Gemini answers calls by name)
    for index, message in enumerate(messages):
        role = message["role"]
        where = f"messages[{index}]"
        for key in message:
            if key not in ("role", "content", "tool_calls", "tool_call_id", "refusal"):
                raise unsupported(f"{where}.{key}")
        if role in ("system", "developer"):
            if contents:
                # Anthropic's wording for a model without mid-conversation system messages: clients that
                # send them (Claude Code) recognise it and retry without.
                raise ValidationError(
                    f"role '{role}' is not supported on this model: Gemini takes system instructions only "
                    f"before the conversation starts ({where})",
                    field=f"{where}.role",
                    code="untranslatable_field",
                )
            system.extend(_parts(message.get("content"), where, images=False))
        elif role == "user":
            _append(contents, "user", _parts(message.get("content"), where, images=True))
        elif role == "assistant":
            parts = _parts(message.get("content"), where, images=False) if message.get("content") is not None else []
            for j, call in enumerate(message.get("tool_calls") or []):
                function = call.get("function") if isinstance(call, dict) else None
                if not isinstance(function, dict):
                    raise unsupported(f"{where}.tool_calls[{j}]", "only function tool calls translate")
                text_arguments = function.get("arguments") or "{}"
                if not isinstance(text_arguments, str):
                    raise ValidationError(f"{where}.tool_calls[{j}].function.arguments must be a string of JSON")
                arguments = bounded_json.decode(
                    text_arguments, field=None, what=f"{where}.tool_calls[{j}].function.arguments"
                )
                names[str(call.get("id"))] = str(function.get("name"))
                function_call = {"name": function.get("name"), "args": arguments}
                part: dict[str, Any] = {"functionCall": function_call}
                signature = _signature_of(str(call.get("id")))
                if signature:
                    part["thoughtSignature"] = signature
                parts.append(part)
            _append(contents, "model", parts)
        elif role == "tool":
            call_id = str(message.get("tool_call_id"))
            if call_id not in names:
                raise ValidationError(
                    f"{where}.tool_call_id matches no earlier tool call", field=f"{where}.tool_call_id"
                )
            text = message.get("content")
            if not isinstance(text, str):
                text = "".join(p["text"] for p in _parts(text, where, images=False))
            try:
                result = bounded_json.decode(text)
            except ValidationError:
                result = None  # not JSON the encoder can write back: sent as text
            response = result if isinstance(result, dict) else {"content": text}
            _append(contents, "user", [{"functionResponse": {"name": names[call_id], "response": response}}])
        else:
            raise unsupported(f"{where}.role", f"role '{role}' has no Gemini equivalent")
    return system, contents


def _signature_of(call_id: str) -> str | None:
    _, mark, signature = call_id.partition(SIGNATURE_MARK)
    return signature if mark and signature else None


def _append(contents: list[dict[str, Any]], role: str, parts: list[dict[str, Any]]) -> None:
    if contents and contents[-1]["role"] == role:
        contents[-1]["parts"].extend(parts)
    else:
        contents.append({"role": role, "parts": parts})


def _parts(content: Any, where: str, *, images: bool) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}]
    if not isinstance(content, list):
        raise ValidationError(f"{where}.content must be a string or an array of parts", field=f"{where}.content")
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            parts.append({"text": part["text"]})
        elif kind == "image_url" and images and isinstance(part.get("image_url"), dict):
            match = DATA_URL.match(str(part["image_url"].get("url")))
            if match is None:
                raise unsupported(f"{where}.content[{j}]", "Gemini takes images inline: send a base64 data URL")
            parts.append({"inlineData": {"mimeType": match["type"], "data": match["data"]}})
        else:
            raise unsupported(f"{where}.content[{j}]", f"content part type {kind!r} has no Gemini equivalent here")
    return parts


# responses ----------------------------------------------------------------------------------------


def _candidate(body: Mapping[str, Any]) -> Mapping[str, Any]:
    candidates = body.get("candidates")
    if isinstance(candidates, list) and candidates and isinstance(candidates[0], dict):
        return candidates[0]
    return {}


def _split(parts: Any, first_call: int) -> tuple[str, str, list[dict[str, Any]]]:
    text: list[str] = []
    thoughts: list[str] = []
    calls: list[dict[str, Any]] = []
    for part in parts if isinstance(parts, list) else []:
        if not isinstance(part, dict):
            continue
        if isinstance(part.get("text"), str):
            (thoughts if part.get("thought") else text).append(part["text"])
        elif isinstance(part.get("functionCall"), dict):
            call = part["functionCall"]
            call_id = call.get("id") or f"call_{first_call + len(calls)}"
            if isinstance(part.get("thoughtSignature"), str):
                call_id = f"{call_id}{SIGNATURE_MARK}{part['thoughtSignature']}"
            arguments = orjson.dumps(call.get("args") or {}).decode()
            calls.append(
                {"id": call_id, "type": "function", "function": {"name": call.get("name"), "arguments": arguments}}
            )
    return "".join(text), "".join(thoughts), calls


def gemini_to_chat_response(body: dict[str, Any], *, model: str, created: int) -> dict[str, Any]:
    candidate = _candidate(body)
    text, thoughts, calls = _split((candidate.get("content") or {}).get("parts"), 0)
    reply: dict[str, Any] = {"role": "assistant", "content": text if text or not calls else None, "refusal": None}
    if calls:
        reply["tool_calls"] = calls
    if thoughts:
        reply["reasoning_content"] = thoughts
    finish = "tool_calls" if calls else FINISH.get(str(candidate.get("finishReason")), "stop")
    completion: dict[str, Any] = {
        "id": "chatcmpl-" + str(body.get("responseId") or "gemini"),
        "object": "chat.completion",
        "created": created,
        "model": body.get("modelVersion") or model,
        "choices": [{"index": 0, "message": reply, "logprobs": None, "finish_reason": finish}],
    }
    if isinstance(body.get("usageMetadata"), dict):
        completion["usage"] = to_openai_chat(from_gemini(body["usageMetadata"]))
    return completion


class GeminiToChat:
    """streamGenerateContent?alt=sse events -> OpenAI chat chunks. Gemini marks no end: the stream closing
    cleanly after a finishReason does; usageMetadata is repeated, the last one counts."""

    def __init__(self, *, model: str, include_usage: bool, created: int) -> None:
        self._model = model
        self._include_usage = include_usage
        self._created = created
        self._id = "chatcmpl-gemini"
        self._started = False
        self._calls = 0
        self._finish: str | None = None
        self._usage: Mapping[str, Any] | None = None

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        body = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": [choice],
        }
        return sse(body)

    def feed(self, event: bytes) -> bytes:
        data = sse_json(event)
        if data is None:
            return b""
        if isinstance(data.get("error"), dict):
            error = data["error"]
            return sse(
                {"error": {"message": error.get("message"), "type": error.get("status"), "param": None, "code": None}}
            )
        out: list[bytes] = []
        if not self._started:
            self._started = True
            self._id = "chatcmpl-" + str(data.get("responseId") or "gemini")
            self._model = str(data.get("modelVersion") or self._model)
            out.append(self._chunk({"role": "assistant", "content": ""}))
        candidate = _candidate(data)
        text, thoughts, calls = _split((candidate.get("content") or {}).get("parts"), self._calls)
        if thoughts:
            out.append(self._chunk({"reasoning_content": thoughts}))
        if text:
            out.append(self._chunk({"content": text}))
        for call in calls:
            out.append(self._chunk({"tool_calls": [{"index": self._calls, **call}]}))
            self._calls += 1
        if candidate.get("finishReason"):
            self._finish = FINISH.get(str(candidate["finishReason"]), "stop")
        if isinstance(data.get("usageMetadata"), Mapping):
            self._usage = data["usageMetadata"]
        return b"".join(out)

    def finish(self) -> bytes:
        if self._finish is None:
            return b""  # closed before the model finished: the relay treats the stream as incomplete
        out = self._chunk({}, "tool_calls" if self._calls else self._finish)
        if self._include_usage and self._usage is not None:
            usage = to_openai_chat(from_gemini(self._usage))
            body = {
                "id": self._id,
                "object": "chat.completion.chunk",
                "created": self._created,
                "model": self._model,
                "choices": [],
                "usage": usage,
            }
            out += sse(body)
        return out + b"data: [DONE]\n\n"

"""An offline provider that answers deterministically in OpenAI's wire format, with real token counts.

Tokens are counted with a simple, documented tokenizer (words and single punctuation marks), so
the usage it reports is exactly the number of pieces in the prompt and in the reply it streams.

It plays an agent's counterpart (docs/providers.md, "The simulator and tools"): with `tools` it calls
a tool when `tool_choice` is "required" or names one, or, with "auto" (the default), when the last user
message mentions a tool by name; the arguments are a minimal instance of the tool's JSON schema. After
a tool result it answers in text (unless `tool_choice` names a tool). With `response_format`
json_object / json_schema it answers with JSON (an instance of the schema).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import struct
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from tollway.clock import Clock
from tollway.gateway.providers.base import BufferedResponse, UpstreamRequest
from tollway.gateway.providers.schema_instance import schema_instance

_TOKEN = re.compile(r"\s*(?:\w+|[^\w\s])")
_WORDS = [
    "the",
    "gateway",
    "meters",
    "every",
    "token",
    "and",
    "turns",
    "usage",
    "into",
    "invoices",
    "so",
    "each",
    "consumer",
    "pays",
    "for",
    "what",
    "it",
    "uses",
    "while",
    "budgets",
    "stop",
    "runaway",
    "spend",
    "before",
    "it",
    "happens",
    "streaming",
    "included",
]
MESSAGE_OVERHEAD = 3
REPLY_PRIMING = 3
IMAGE_TOKENS = 85
CACHE_MIN_PROMPT = 1024
CACHE_INCREMENT = 128
REASONING_BY_EFFORT = {"minimal": 0, "low": 16, "medium": 64, "high": 256}


def count_tokens(text: str) -> int:
    return len(_TOKEN.findall(text))


def split_tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def prompt_tokens(payload: Mapping[str, Any]) -> int:
    total = REPLY_PRIMING
    for message in payload.get("messages") or []:
        if not isinstance(message, dict):
            continue
        total += MESSAGE_OVERHEAD
        content = message.get("content")
        if isinstance(content, str):
            total += count_tokens(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    total += count_tokens(part["text"])
                elif isinstance(part, dict) and part.get("type") in {"image_url", "input_audio", "file"}:
                    total += IMAGE_TOKENS
        if isinstance(message.get("name"), str):
            total += count_tokens(message["name"])
        for call in message.get("tool_calls") or []:
            total += count_tokens(orjson.dumps(call).decode())
    if payload.get("tools"):
        total += count_tokens(orjson.dumps(payload["tools"]).decode())
    if isinstance(payload.get("response_format"), dict):
        total += count_tokens(orjson.dumps(payload["response_format"]).decode())
    return total


class BadRequest(Exception):
    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


@dataclass(frozen=True, slots=True)
class ToolCall:
    call_id: str
    name: str
    arguments: str  # JSON text


def tool_call_for(payload: dict[str, Any], prompt_key: bytes) -> ToolCall | None:
    """The tool call the simulator answers with, or None for a text (or JSON) answer; BadRequest for bad tools."""
    tools = payload.get("tools")
    choice = payload.get("tool_choice")
    if tools is None or tools == []:
        if choice not in (None, "none", "auto"):
            raise BadRequest("'tool_choice' is only allowed when 'tools' are specified.", "tool_choice")
        return None
    schemas = _tool_schemas(tools)
    messages = payload["messages"]
    last = messages[-1] if isinstance(messages[-1], dict) else {}
    named: str | None = None
    if isinstance(choice, dict):
        function = choice.get("function")
        named = function.get("name") if isinstance(function, dict) else None
        if choice.get("type") != "function" or not isinstance(named, str):
            raise BadRequest("tool_choice must be 'none', 'auto', 'required' or a named function.", "tool_choice")
        if named not in schemas:
            raise BadRequest(f"Invalid value for 'tool_choice': no tool named '{named}' in 'tools'.", "tool_choice")
    elif choice not in (None, "none", "auto", "required"):
        raise BadRequest("tool_choice must be 'none', 'auto', 'required' or a named function.", "tool_choice")
    if choice == "none" or (named is None and last.get("role") == "tool"):
        return None
    if named is None:
        named = _mentioned(_text_of(last), schemas) if last.get("role") == "user" else None
        if named is None and choice == "required":
            named = next(iter(schemas))
    if named is None:
        return None
    arguments = orjson.dumps(schema_instance(schemas[named])).decode()
    call_id = "call_" + hashlib.sha256(prompt_key + named.encode()).hexdigest()[:24]
    return ToolCall(call_id, named, arguments)


def json_answer(payload: dict[str, Any], text: str) -> str | None:
    """The JSON text answered for `response_format` json_object / json_schema; None for plain text."""
    response_format = payload.get("response_format")
    if response_format is None:
        return None
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return orjson.dumps({"reply": text}).decode()
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, dict):
            raise BadRequest("response_format.json_schema must be an object.", "response_format")
        return orjson.dumps(schema_instance(spec.get("schema") or {})).decode()
    raise BadRequest("response_format.type must be 'text', 'json_object' or 'json_schema'.", "response_format")


def _tool_schemas(tools: Any) -> dict[str, Any]:
    if not isinstance(tools, list):
        raise BadRequest("'tools' must be an array.", "tools")
    schemas: dict[str, Any] = {}
    for index, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(name, str) or not name:
            raise BadRequest(f"tools[{index}] must be a function tool with a name.", f"tools[{index}]")
        assert isinstance(function, dict)
        parameters = function.get("parameters")
        schemas[name] = parameters if isinstance(parameters, dict) else {"type": "object"}
    return schemas


def _text_of(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


# Context a client injects into the user's turn (Claude Code's reminders name its tools): not the user asking.
_INJECTED = re.compile(r"<system-reminder>.*?</system-reminder>", re.DOTALL)


def _mentioned(text: str, schemas: dict[str, Any]) -> str | None:
    """The first tool (in `tools` order) whose name the text mentions as a whole word, outside the
    `<system-reminder>` blocks a client injects."""
    text = _INJECTED.sub(" ", text)
    for name in schemas:
        if re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text):
            return name
    return None


class SimulatorProvider:
    native_paths = frozenset({"/chat/completions", "/embeddings"})

    def __init__(self, name: str, *, clock: Clock, tokens_per_second: float, reply_tokens: int) -> None:
        self.name = name
        self._clock = clock
        self._delay = 1.0 / tokens_per_second if tokens_per_second > 0 else 0.0
        self._reply_tokens = reply_tokens
        self._seen_prompts: OrderedDict[bytes, None] = OrderedDict()

    def count_prompt_tokens(self, payload: Mapping[str, Any]) -> int:
        """A chat prompt's tokens exactly as this provider will report them (for count_tokens)."""
        return prompt_tokens(payload)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def send(self, request: UpstreamRequest) -> BufferedResponse:
        if request.path == "/embeddings":
            return self._embeddings(request.payload)
        if request.path != "/chat/completions":
            return _error(404, f"the simulator does not serve {request.path}", "not_found_error")
        return self._chat(request)

    # chat -----------------------------------------------------------------------------------------

    def _chat(self, request: UpstreamRequest) -> BufferedResponse:
        payload = request.payload
        messages = payload.get("messages")
        if not isinstance(messages, list) or not messages:
            return _error(400, "'messages' must be a non-empty array", "invalid_request_error", "messages")
        if payload.get("n") not in (None, 1):
            return _error(400, "the simulator answers with n=1 only", "invalid_request_error", "n")
        limit = payload.get("max_completion_tokens") or payload.get("max_tokens")
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
            return _error(400, "max_tokens must be a positive integer", "invalid_request_error", "max_tokens")
        model = str(payload.get("model"))
        prompt_key = hashlib.sha256(orjson.dumps(messages)).digest()
        prompt = prompt_tokens(payload)
        pieces = self._reply(prompt_key, model)
        try:
            structured = json_answer(payload, "".join(pieces))
            call = tool_call_for(payload, prompt_key)
        except BadRequest as bad:
            return _error(400, bad.message, "invalid_request_error", bad.param)
        fixed = 0  # tokens of the reply that are not streamed piece by piece (a tool call's name)
        finish = "stop"
        if call is not None:
            pieces, fixed, finish = split_tokens(call.arguments), count_tokens(call.name), "tool_calls"
        elif structured is not None:
            pieces = split_tokens(structured)
        if limit is not None and fixed + len(pieces) > limit:
            pieces, finish = pieces[: max(limit - fixed, 0)], "length"
        cached = self._cached(prompt_key, prompt)
        effort = payload.get("reasoning_effort")
        reasoning = REASONING_BY_EFFORT.get(effort, 0) if isinstance(effort, str) else 0
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": fixed + len(pieces) + reasoning,
            "total_tokens": prompt + fixed + len(pieces) + reasoning,
            "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": reasoning,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }
        completion_id = "chatcmpl-sim" + os.urandom(12).hex()  # unique per response, as real providers do
        created = int(self._clock.now().timestamp())
        if request.stream:
            options = payload.get("stream_options")
            include_usage = isinstance(options, dict) and options.get("include_usage") is True
            chunks = self._stream(completion_id, created, model, pieces, finish, usage, include_usage, call)
            return BufferedResponse(200, "text/event-stream; charset=utf-8", chunks)
        message: dict[str, Any] = {"role": "assistant", "content": "".join(pieces), "refusal": None}
        if call is not None:
            function = {"name": call.name, "arguments": "".join(pieces)}
            message["content"] = None
            message["tool_calls"] = [{"id": call.call_id, "type": "function", "function": function}]
        body = {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": finish,
                }
            ],
            "usage": usage,
            "system_fingerprint": "fp_tollway_simulator",
        }
        return BufferedResponse(200, "application/json", _once(orjson.dumps(body)))

    def _reply(self, prompt_key: bytes, model: str) -> list[str]:
        words = [_WORDS[b % len(_WORDS)] for b in hashlib.sha256(prompt_key).digest()]
        text = f"Simulated reply from {model}: " + " ".join(words) + "."
        pieces = split_tokens(text)
        while len(pieces) < self._reply_tokens:
            pieces += split_tokens(" " + " ".join(words) + ".")
        return pieces[: self._reply_tokens]

    def _cached(self, prompt_key: bytes, prompt: int) -> int:
        """Like OpenAI: prompts of 1024+ tokens seen before are served from cache in 128-token steps."""
        seen = prompt_key in self._seen_prompts
        self._seen_prompts[prompt_key] = None
        self._seen_prompts.move_to_end(prompt_key)
        while len(self._seen_prompts) > 10_000:
            self._seen_prompts.popitem(last=False)
        if not seen or prompt < CACHE_MIN_PROMPT:
            return 0
        return (prompt // CACHE_INCREMENT) * CACHE_INCREMENT

    async def _stream(
        self,
        completion_id: str,
        created: int,
        model: str,
        pieces: list[str],
        finish: str,
        usage: dict[str, Any],
        include_usage: bool,
        call: ToolCall | None = None,
    ) -> AsyncIterator[bytes]:
        base: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_tollway_simulator",
        }
        if include_usage:
            base["usage"] = None

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            return b"data: " + orjson.dumps({**base, "choices": [choice]}) + b"\n\n"

        if call is None:
            yield chunk({"role": "assistant", "content": "", "refusal": None})
        else:  # as OpenAI streams a tool call: id and name first, then the arguments in fragments
            function = {"name": call.name, "arguments": ""}
            first = {"index": 0, "id": call.call_id, "type": "function", "function": function}
            yield chunk({"role": "assistant", "content": None, "tool_calls": [first], "refusal": None})
        for piece in pieces:
            if self._delay:
                await asyncio.sleep(self._delay)
            if call is None:
                yield chunk({"content": piece})
            else:
                yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
        yield chunk({}, finish)
        if include_usage:
            yield b"data: " + orjson.dumps({**base, "choices": [], "usage": usage}) + b"\n\n"
        yield b"data: [DONE]\n\n"

    # embeddings -----------------------------------------------------------------------------------

    def _embeddings(self, payload: dict[str, Any]) -> BufferedResponse:
        raw = payload.get("input")
        inputs: list[Any] = raw if isinstance(raw, list) and raw and not isinstance(raw[0], int) else [raw]
        if not inputs or any(not isinstance(x, str | list) or not x for x in inputs):
            return _error(400, "'input' must be a non-empty string or array", "invalid_request_error", "input")
        dimensions = payload.get("dimensions") or 8
        if not isinstance(dimensions, int) or isinstance(dimensions, bool) or not 1 <= dimensions <= 4096:
            return _error(400, "dimensions must be an integer from 1 to 4096", "invalid_request_error")
        data = []
        tokens = 0
        for index, item in enumerate(inputs):
            text = item if isinstance(item, str) else " ".join(str(t) for t in item)
            tokens += count_tokens(text) if isinstance(item, str) else len(item)
            data.append({"object": "embedding", "index": index, "embedding": _vector(text, dimensions)})
        body = {
            "object": "list",
            "data": data,
            "model": str(payload.get("model")),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return BufferedResponse(200, "application/json", _once(orjson.dumps(body)))


def _vector(text: str, dimensions: int) -> list[float]:
    values: list[float] = []
    counter = 0
    while len(values) < dimensions:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        for (word,) in struct.iter_unpack(">I", digest):
            values.append(round(word / 0xFFFFFFFF * 2 - 1, 6))
        counter += 1
    return values[:dimensions]


async def _once(body: bytes) -> AsyncIterator[bytes]:
    yield body


def _error(status: int, message: str, kind: str, param: str | None = None) -> BufferedResponse:
    body = {"error": {"message": message, "type": kind, "param": param, "code": None}}
    return BufferedResponse(status, "application/json", _once(orjson.dumps(body)))

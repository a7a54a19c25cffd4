"""OpenAI legacy completions (`POST /v1/completions`) <-> OpenAI chat, for providers without a completions
endpoint.

The prompt (a string, or a list of one string) becomes one user message; the answer's message content
becomes `choices[0].text`. Sampling fields chat shares are carried; `echo`, `logprobs`, `best_of` > 1 and
`suffix` (which need the model to see raw text) and several prompts in one request get a 400 naming them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from tollway.errors import ValidationError
from tollway.gateway.decode import json_object
from tollway.gateway.streaming import event_data
from tollway.gateway.translate.common import neutral, unsupported

_CARRIED = (
    "model",
    "max_tokens",
    "temperature",
    "top_p",
    "n",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "seed",
    "user",
    "logit_bias",
)
_NEUTRAL: dict[str, tuple[Any, ...]] = {"echo": (False,), "best_of": (1,), "logprobs": (), "suffix": ("",)}
NATIVE_ONLY = "it needs a provider that serves /completions natively"


def prompt_text(payload: Mapping[str, Any]) -> str:
    """The one prompt of a request, as text (a 400 naming `prompt` for anything else)."""
    prompt = payload.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        raise unsupported("prompt", f"several prompts in one request: {NATIVE_ONLY}")
    raise unsupported("prompt", f"a prompt of token ids: {NATIVE_ONLY}")


def completions_to_chat_request(payload: dict[str, Any]) -> dict[str, Any]:
    for key, value in payload.items():
        if key in _CARRIED or key in ("prompt", "stream", "stream_options"):
            continue
        if key in _NEUTRAL and neutral(value, *_NEUTRAL[key]):
            continue
        raise unsupported(key, NATIVE_ONLY)
    out: dict[str, Any] = {"model": payload["model"], "messages": [{"role": "user", "content": prompt_text(payload)}]}
    for key in _CARRIED[1:]:
        if payload.get(key) is not None:
            out[key] = payload[key]
    if payload.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def _choice(choice: Mapping[str, Any], text: str) -> dict[str, Any]:
    return {
        "text": text,
        "index": choice.get("index", 0),
        "logprobs": None,
        "finish_reason": choice.get("finish_reason"),
    }


def _completion_id(chat_id: Any) -> str:
    return "cmpl-" + str(chat_id or "tollway").removeprefix("chatcmpl-")


def chat_to_completion_response(completion: dict[str, Any]) -> dict[str, Any]:
    choices = []
    for choice in completion.get("choices") or ():
        if isinstance(choice, dict):
            message = choice.get("message") or {}
            content = message.get("content") if isinstance(message, dict) else None
            choices.append(_choice(choice, content if isinstance(content, str) else ""))
    body: dict[str, Any] = {
        "id": _completion_id(completion.get("id")),
        "object": "text_completion",
        "created": completion.get("created"),
        "model": completion.get("model"),
        "choices": choices,
    }
    if isinstance(completion.get("usage"), dict):
        body["usage"] = completion["usage"]  # the same fields (cache details included), so it is metered alike
    return body


class ChatToCompletions:
    """OpenAI chat chunks -> legacy completion chunks (`object: text_completion`, `choices[].text`)."""

    def feed(self, event: bytes) -> bytes:
        raw = event_data(event)
        if raw is None:
            return b""
        if raw == b"[DONE]":
            return b"data: [DONE]\n\n"
        chunk = json_object(raw)
        if chunk is None:
            return b""
        if isinstance(chunk.get("error"), Mapping):
            return event
        choices = []
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta") or {}
            text = delta.get("content") if isinstance(delta, dict) else None
            if not text and choice.get("finish_reason") is None:
                continue  # the role-only first chunk, or reasoning: nothing a completion client reads
            choices.append(_choice(choice, text if isinstance(text, str) else ""))
        if not choices and not isinstance(chunk.get("usage"), Mapping):
            return b""
        out: dict[str, Any] = {
            "id": _completion_id(chunk.get("id")),
            "object": "text_completion",
            "created": chunk.get("created"),
            "model": chunk.get("model"),
            "choices": choices,
        }
        if "usage" in chunk:
            out["usage"] = chunk["usage"]
        return sse_data(out)

    def finish(self) -> bytes:
        return b""


def sse_data(data: Mapping[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


def check_prompt(payload: Mapping[str, Any]) -> None:
    """The request's prompt is a string, or a non-empty list of strings or of token ids (a 400 otherwise)."""
    prompt = payload.get("prompt")
    if isinstance(prompt, str):
        return
    if isinstance(prompt, list) and prompt:
        if all(isinstance(p, str) for p in prompt):
            return
        if all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
            return
        if all(
            isinstance(p, list) and p and all(isinstance(t, int) and not isinstance(t, bool) for t in p) for p in prompt
        ):
            return
    raise ValidationError("'prompt' must be a string, an array of strings, or an array of token ids", field="prompt")

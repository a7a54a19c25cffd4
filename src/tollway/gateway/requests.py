"""Reading client requests on the hot path: parse once, check only what routing and metering need.

Full validation of every field is the provider's job; the gateway refuses here only what it must:
bodies that are not JSON objects, fields of the wrong type that change how the gateway behaves,
and fields that try to choose the upstream or its credentials.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from tollway import bounded_json
from tollway.errors import ValidationError

# Fields some SDKs and proxies use to pick an upstream or credentials. Tollway never lets a client do that.
FORBIDDEN_FIELDS = frozenset(
    {
        "base_url",
        "api_base",
        "api_key",
        "api_version",
        "azure_endpoint",
        "azure_ad_token",
        "organization",
        "project",
        "headers",
        "extra_headers",
        "custom_llm_provider",
        "litellm_params",
        "aws_access_key_id",
        "aws_secret_access_key",
        "vertex_credentials",
    }
)


def parse_json_object(body: bytes) -> dict[str, Any]:
    if not body:
        raise ValidationError("The request body is empty; expected a JSON object.")
    payload = bounded_json.decode(body, field=None)  # depth, duplicate keys, 64-bit integers, finite numbers
    if not isinstance(payload, dict):
        raise ValidationError("The request body must be a JSON object.")
    for name in FORBIDDEN_FIELDS.intersection(payload):
        raise ValidationError(
            f"The field '{name}' is not allowed: the upstream and its credentials are set by the gateway's "
            "configuration, not by the request.",
            field=name,
        )
    return payload


def require_model(payload: dict[str, Any]) -> str:
    model = payload.get("model")
    if model is None:
        raise ValidationError("you must provide a model parameter", field="model")
    if not isinstance(model, str) or not model:
        raise ValidationError("'model' must be a non-empty string", field="model")
    return model


@dataclass(frozen=True, slots=True)
class ChatRequest:
    payload: dict[str, Any]
    model: str
    stream: bool
    client_wants_usage: bool


def parse_chat_request(body: bytes) -> ChatRequest:
    payload = parse_json_object(body)
    model = require_model(payload)
    messages = payload.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ValidationError("'messages' must be a non-empty array", field="messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise ValidationError(f"messages[{index}] must be an object with a 'role'", field=f"messages[{index}]")
    stream, wants_usage = parse_chat_options(payload)
    return ChatRequest(payload=payload, model=model, stream=stream, client_wants_usage=wants_usage)


def parse_chat_options(payload: dict[str, Any]) -> tuple[bool, bool]:
    """`stream` and whether the client asked for usage in the stream (`stream_options.include_usage`), as
    chat completions and legacy completions take them."""
    stream = payload.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise ValidationError("'stream' must be a boolean", field="stream")
    options = payload.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise ValidationError("'stream_options' must be an object", field="stream_options")
    if options is not None and not stream:
        # OpenAI refuses it with these words; passing it on would fail there after the call was counted.
        raise ValidationError(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.", field="stream_options"
        )
    include = options.get("include_usage") if options else None
    if include is not None and not isinstance(include, bool):
        raise ValidationError("'stream_options.include_usage' must be a boolean", field="stream_options")
    return stream, include is True


def parse_embeddings_request(body: bytes) -> tuple[dict[str, Any], str]:
    payload = parse_json_object(body)
    model = require_model(payload)
    if payload.get("input") in (None, "", []):
        raise ValidationError("'input' must be a non-empty string or array", field="input")
    return payload, model


def upstream_chat_body(request: ChatRequest, upstream_model: str, original: bytes) -> tuple[bytes, dict[str, Any]]:
    """The bytes to send upstream: the original when nothing changes, else a rewrite.

    Streams always ask for usage (`stream_options.include_usage`), whatever the client asked.
    """
    payload = request.payload
    rewrite = upstream_model != request.model
    if request.stream and not request.client_wants_usage:
        options = dict(payload.get("stream_options") or {})
        options["include_usage"] = True
        payload = {**payload, "stream_options": options}
        rewrite = True
    if not rewrite:
        return original, payload
    if upstream_model != request.model:
        payload = {**payload, "model": upstream_model}
    return orjson.dumps(payload), payload


def upstream_body(
    payload: dict[str, Any], model: str, upstream_model: str, original: bytes
) -> tuple[bytes, dict[str, Any]]:
    if upstream_model == model:
        return original, payload
    rewritten = {**payload, "model": upstream_model}
    return orjson.dumps(rewritten), rewritten

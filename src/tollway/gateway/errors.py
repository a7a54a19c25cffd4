"""Error bodies in each client format, all read from the one kind table (tollway.error_shapes).

A domain error raised anywhere below the edge (parsing, routing, translating, a provider) becomes an
OpenAI or an Anthropic error body here; an upstream's own error answer is re-shaped from its status.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import orjson

from tollway.error_shapes import kind_of_status, shape_of
from tollway.errors import DomainError, ErrorKind, LimitExceededError, MethodNotAllowedError, RateLimitedError
from tollway.gateway.decode import json_object
from tollway.gateway.http import Headers, openai_error

STREAM_CUT = "The upstream provider ended the stream before it was complete."
CHALLENGE: Headers = [(b"www-authenticate", b'Bearer realm="tollway"')]


def status_of(error: DomainError) -> int:
    return shape_of(error.kind).status


def headers_of(error: DomainError) -> Headers | None:
    if error.kind is ErrorKind.UNAUTHENTICATED:
        return CHALLENGE
    if isinstance(error, MethodNotAllowedError):
        return [(b"allow", error.allowed.encode())]
    if isinstance(error, RateLimitedError):
        return [(b"retry-after", str(error.retry_after_s).encode())]
    if isinstance(error, LimitExceededError):
        headers: Headers = []
        if error.retry_after_s is not None:
            headers.append((b"retry-after", str(error.retry_after_s).encode()))
        if error.limit is not None:
            headers.append((b"x-tollway-limit", error.limit.encode()))
        headers += error.headers
        return headers or None
    return None


def openai_body(error: DomainError) -> bytes:
    """OpenAI's shape: {"error": {"message", "type", "param", "code"}}."""
    shape = shape_of(error.kind)
    return openai_error(error.message, shape.openai_type, param=error.field, code=error.code or shape.openai_code)


def anthropic_error(status: int, message: str) -> bytes:
    """Anthropic's shape for an error of this status: {"type": "error", "error": {"type", "message"}}."""
    kind = shape_of(kind_of_status(status)).anthropic_type
    return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})


def anthropic_body(error: DomainError) -> bytes:
    kind = shape_of(error.kind).anthropic_type
    return orjson.dumps({"type": "error", "error": {"type": kind, "message": error.message}})


def error_message(raw: bytes, status: int) -> tuple[str, str | None]:
    """The message and type of an upstream error body in any of the known shapes."""
    parsed = json_object(raw)
    error = parsed.get("error") if parsed else None
    if isinstance(error, dict):
        message = error.get("message")
        kind = error.get("type") or error.get("status")
        if isinstance(message, str):
            return message, kind if isinstance(kind, str) else None
    detail = raw[:500].decode("utf-8", "replace").strip() or f"HTTP {status}"
    return f"The upstream provider answered {status}: {detail}", None


def to_openai_error(raw: bytes, status: int) -> bytes:
    """An upstream error answer re-shaped for an OpenAI client (translated answers)."""
    message, _ = error_message(raw, status)
    return openai_error(message, shape_of(kind_of_status(status)).openai_type, code="upstream_error")


def to_anthropic_error(raw: bytes, status: int) -> bytes:
    """An upstream error answer for an Anthropic client: passed on when already in its shape."""
    parsed = json_object(raw)
    if parsed is not None and parsed.get("type") == "error" and isinstance(parsed.get("error"), dict):
        return raw
    message, _ = error_message(raw, status)
    return anthropic_error(status, message)


def as_openai_error(raw: bytes, status: int) -> bytes:
    """An upstream error answer for an OpenAI client (chat, embeddings): passed on when already in its shape."""
    parsed = json_object(raw)
    if parsed is not None and isinstance(parsed.get("error"), dict):
        return raw
    detail = raw[:500].decode("utf-8", "replace").strip() or f"HTTP {status}"
    return openai_error(f"The upstream provider answered {status}: {detail}", "api_error", code="upstream_error")


@dataclass(frozen=True, slots=True)
class ErrorFormat:
    """How one endpoint shows errors: the gateway's own, an upstream's answer, and a stream cut short."""

    of_error: Callable[[DomainError], bytes]
    of_upstream: Callable[[bytes, int], bytes]
    stream_cut: bytes


OPENAI = ErrorFormat(
    openai_body,
    as_openai_error,
    b"data: " + openai_error(STREAM_CUT, shape_of(ErrorKind.UPSTREAM).openai_type) + b"\n\n",
)

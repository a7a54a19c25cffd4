"""The one table from an error's kind to what each client sees: HTTP status, OpenAI type, Anthropic type.

Domain errors carry a kind, never a status. The gateway's OpenAI and Anthropic error bodies and the
management API's RFC 7807 problems all read their status and types here, and an upstream's error
status is read back into a kind here too, so one change of mapping reaches every surface.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from tollway.errors import ErrorKind


@dataclass(frozen=True, slots=True)
class ErrorShape:
    status: int
    openai_type: str
    anthropic_type: str
    openai_code: str | None = None  # the code an OpenAI client sees when the error names none


# Order matters only for reading an upstream status back (`kind_of_status`): the first kind with that
# status wins, so an upstream's 429 is its rate limit, not Tollway's own spending limit.
SHAPES: Mapping[ErrorKind, ErrorShape] = MappingProxyType(
    {
        ErrorKind.VALIDATION: ErrorShape(400, "invalid_request_error", "invalid_request_error"),
        ErrorKind.UNAUTHENTICATED: ErrorShape(401, "authentication_error", "authentication_error"),
        ErrorKind.FORBIDDEN: ErrorShape(403, "permission_error", "permission_error"),
        ErrorKind.NOT_FOUND: ErrorShape(404, "not_found_error", "not_found_error"),
        ErrorKind.METHOD_NOT_ALLOWED: ErrorShape(405, "invalid_request_error", "invalid_request_error"),
        ErrorKind.CONFLICT: ErrorShape(409, "invalid_request_error", "invalid_request_error"),
        ErrorKind.TOO_LARGE: ErrorShape(413, "invalid_request_error", "request_too_large"),
        ErrorKind.UNSUPPORTED_MEDIA_TYPE: ErrorShape(415, "invalid_request_error", "invalid_request_error"),
        ErrorKind.RATE_LIMITED: ErrorShape(429, "rate_limit_error", "rate_limit_error"),
        ErrorKind.LIMIT_EXCEEDED: ErrorShape(429, "insufficient_quota", "rate_limit_error", "insufficient_quota"),
        ErrorKind.INTERNAL: ErrorShape(500, "api_error", "api_error", "internal_error"),
        ErrorKind.NOT_SUPPORTED: ErrorShape(501, "invalid_request_error", "invalid_request_error"),
        ErrorKind.UPSTREAM: ErrorShape(502, "api_error", "api_error"),
        ErrorKind.UNAVAILABLE: ErrorShape(503, "api_error", "api_error"),
        ErrorKind.UPSTREAM_TIMEOUT: ErrorShape(504, "api_error", "api_error"),
        ErrorKind.OVERLOADED: ErrorShape(529, "api_error", "overloaded_error"),
    }
)
_KIND_BY_STATUS: Mapping[int, ErrorKind] = MappingProxyType(
    {  # reversed: the first kind wins; an upstream's 501 stays an upstream failure
        shape.status: kind for kind, shape in reversed(list(SHAPES.items())) if kind is not ErrorKind.NOT_SUPPORTED
    }
)


def shape_of(kind: ErrorKind) -> ErrorShape:
    return SHAPES[kind]


def status_of(kind: ErrorKind) -> int:
    return SHAPES[kind].status


def kind_of_status(status: int) -> ErrorKind:
    """The kind an upstream's error status stands for; unknown statuses by class (5xx upstream, else validation)."""
    kind = _KIND_BY_STATUS.get(status)
    if kind is not None:
        return kind
    return ErrorKind.UPSTREAM if status >= 500 else ErrorKind.VALIDATION

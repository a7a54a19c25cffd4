"""Domain errors carry a kind, never an HTTP status; the API layers map kinds to status codes once."""

from __future__ import annotations

from datetime import datetime
from enum import Enum


class ErrorKind(Enum):
    VALIDATION = "validation"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    UNAUTHENTICATED = "unauthenticated"
    FORBIDDEN = "forbidden"
    LIMIT_EXCEEDED = "limit_exceeded"
    TOO_LARGE = "too_large"
    UNAVAILABLE = "unavailable"
    # the gateway's own: the request's method, an upstream that failed or timed out, an upstream's
    # own rate limit or overload passed on, and a failure of the gateway itself
    METHOD_NOT_ALLOWED = "method_not_allowed"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    RATE_LIMITED = "rate_limited"
    UPSTREAM = "upstream"
    UPSTREAM_TIMEOUT = "upstream_timeout"
    OVERLOADED = "overloaded"
    INTERNAL = "internal"
    # an operation of an API Tollway speaks (OpenMeter's) that it does not implement; the message names
    # the alternative
    NOT_SUPPORTED = "not_supported"


class DomainError(Exception):
    kind: ErrorKind = ErrorKind.VALIDATION

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        code: str | None = None,
        details: tuple[tuple[str, str], ...] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.code = code  # a machine-readable reason within the kind (e.g. "model_not_found"), or None
        self.details = details  # (field, message) per problem, when there are several


class ValidationError(DomainError):
    kind = ErrorKind.VALIDATION


class NotFoundError(DomainError):
    kind = ErrorKind.NOT_FOUND


class ConflictError(DomainError):
    kind = ErrorKind.CONFLICT


class UnauthenticatedError(DomainError):
    kind = ErrorKind.UNAUTHENTICATED


class ForbiddenError(DomainError):
    kind = ErrorKind.FORBIDDEN


class LimitExceededError(DomainError):
    """A spending limit (entitlement, budget) would be passed: `limit` names it, `resets_at` when it resets."""

    kind = ErrorKind.LIMIT_EXCEEDED

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        retry_after_s: int | None = None,
        limit: str | None = None,
        resets_at: datetime | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.retry_after_s = retry_after_s
        self.limit = limit
        self.resets_at = resets_at
        self.headers: list[tuple[bytes, bytes]] = []  # more response headers (e.g. the caller's rate-limit ones)


class TooLargeError(DomainError):
    kind = ErrorKind.TOO_LARGE


class UnavailableError(DomainError):
    kind = ErrorKind.UNAVAILABLE


class MethodNotAllowedError(DomainError):
    kind = ErrorKind.METHOD_NOT_ALLOWED

    def __init__(self, message: str, *, allowed: str) -> None:
        super().__init__(message)
        self.allowed = allowed


class UnsupportedMediaTypeError(DomainError):
    kind = ErrorKind.UNSUPPORTED_MEDIA_TYPE


class UpstreamFailedError(DomainError):
    """An upstream could not be reached or broke its answer off."""

    kind = ErrorKind.UPSTREAM


class UpstreamTimeoutError(DomainError):
    kind = ErrorKind.UPSTREAM_TIMEOUT


class RateLimitedError(DomainError):
    """Too many requests (e.g. failed authentications from one address): try again in `retry_after_s`."""

    kind = ErrorKind.RATE_LIMITED

    def __init__(self, message: str, *, retry_after_s: int, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after_s = retry_after_s


class InternalError(DomainError):
    kind = ErrorKind.INTERNAL


class NotSupportedError(DomainError):
    """An operation Tollway's API shape includes but Tollway cannot express (answered 501, naming what to use)."""

    kind = ErrorKind.NOT_SUPPORTED


class ConfigError(Exception):
    """The configuration file or environment is invalid. `problems` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems

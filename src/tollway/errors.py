"""Domain errors carry a kind, never an HTTP status; the API layers map kinds to status codes once."""

from __future__ import annotations

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


class DomainError(Exception):
    kind: ErrorKind = ErrorKind.VALIDATION

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


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
    kind = ErrorKind.LIMIT_EXCEEDED


class TooLargeError(DomainError):
    kind = ErrorKind.TOO_LARGE


class UnavailableError(DomainError):
    kind = ErrorKind.UNAVAILABLE


class ConfigError(Exception):
    """The configuration file or environment is invalid. `problems` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems

"""The provider port: what the gateway needs from an upstream, whatever speaks behind it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol

from tollway.errors import ValidationError
from tollway.gateway.resilience import Timeouts

# The trace context of the upstream try running in this task (W3C `traceparent`, ...), set by the OpenTelemetry
# observer when tracing is on (gateway/telemetry.py) and added to the request by the HTTP client; empty when off.
TRACE_HEADERS: ContextVar[tuple[tuple[str, str], ...]] = ContextVar("tollway_trace_headers", default=())


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    """One call to an upstream. `body` is the exact bytes to send; `payload` is the same, parsed."""

    path: str  # below the provider's base URL, e.g. "/chat/completions"
    body: bytes
    payload: dict[str, Any]
    stream: bool
    request_id: str
    # Client headers the gateway chose to pass on (an allowlist per endpoint, e.g. anthropic-beta).
    headers: tuple[tuple[str, str], ...] = ()
    # A target's own connect / idle timeouts (None: the provider's); see gateway/resilience.py
    timeouts: Timeouts | None = None


# Upstream headers a client sees on the answer (success, relayed error, stream): its rate limits and when to
# retry. OpenAI's x-ratelimit-{limit,remaining,reset}-{requests,tokens}, Anthropic's anthropic-ratelimit-*.
RELAYED_HEADER_NAMES = frozenset({b"retry-after", b"retry-after-ms"})
RELAYED_HEADER_PREFIXES = (b"x-ratelimit-", b"anthropic-ratelimit-")


def relayed_headers(raw: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The rate-limit and retry headers among an upstream's response headers (names lower-cased)."""
    found = []
    for name, value in raw:
        lowered = name.lower()
        if lowered in RELAYED_HEADER_NAMES or lowered.startswith(RELAYED_HEADER_PREFIXES):
            found.append((lowered, value))
    return found


class UpstreamResponse(Protocol):
    status: int
    content_type: str
    content_length: int | None  # when the upstream declared it

    @property
    def relayed_headers(self) -> list[tuple[bytes, bytes]]:
        """Upstream headers to pass on to the client (rate limits, Retry-After); see `relayed_headers`."""
        ...

    def iter_chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives. Raises UpstreamError if the connection breaks."""
        ...

    async def read(self) -> bytes: ...

    def close(self) -> None: ...


class Provider(Protocol):
    name: str
    # The request paths this provider speaks natively. Every provider also accepts "/chat/completions"
    # (OpenAI chat is the pivot format): natively, or translated to its own API.
    native_paths: frozenset[str]

    async def start(self) -> None: ...

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        """Send a request. Raises UpstreamError when no response could be had."""
        ...

    async def close(self) -> None: ...


class UpstreamError(Exception):
    """The upstream could not be reached, timed out, or broke the connection."""

    def __init__(self, message: str, *, timeout: bool = False) -> None:
        super().__init__(message)
        self.timeout = timeout


def is_event_stream(response: UpstreamResponse) -> bool:
    """A successful answer that streams (an upstream may answer a stream request with plain JSON)."""
    return response.status == 200 and "event-stream" in response.content_type


async def read_up_to(response: UpstreamResponse, limit: int) -> tuple[bytes, AsyncIterator[bytes] | None]:
    """The whole body if it fits in `limit`; else what was read so far and the rest of the stream."""
    if response.content_length is not None and response.content_length <= limit:
        return await response.read(), None
    chunks = response.iter_chunks()
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        parts.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(parts), chunks
    return b"".join(parts), None


class BufferedResponse:
    """An UpstreamResponse whose body is already in memory (or produced by a generator)."""

    def __init__(self, status: int, content_type: str, chunks: AsyncIterator[bytes]) -> None:
        self.status = status
        self.content_type = content_type
        self.content_length: int | None = None
        self.relayed_headers: list[tuple[bytes, bytes]] = []
        self._chunks = chunks

    def iter_chunks(self) -> AsyncIterator[bytes]:
        return self._chunks

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self._chunks])

    def close(self) -> None:
        """Nothing to release: the body lives in this process."""


def not_served(name: str, path: str) -> ValidationError:
    """The 400 for an endpoint a provider cannot serve (raised before any upstream call; records nothing)."""
    return ValidationError(
        f"The model's provider '{name}' does not serve {path}; see docs/providers.md for which endpoints reach "
        "which providers.",
        code="unsupported_endpoint",
    )

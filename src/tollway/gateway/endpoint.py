"""An endpoint described as data: what the one request flow (flow.py) needs to know about one API.

An LLM endpoint (chat completions, embeddings, messages, responses) names its parser, how it builds
the upstream request for a target, how it watches a stream, where its usage is and how to estimate it,
and how its errors look. A plain endpoint (models, count_tokens) is a handler over the flow's public
steps. Endpoint modules import this module and flow.py's types; nothing here imports an endpoint.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from tollway.clock import Clock
from tollway.errors import DomainError
from tollway.gateway.call import Call
from tollway.gateway.errors import ErrorFormat
from tollway.gateway.hooks import Admit
from tollway.gateway.http import Receive, Scope, Send
from tollway.gateway.providers.base import Provider
from tollway.gateway.requests import ChatRequest
from tollway.gateway.routing import Route, Target
from tollway.gateway.state import GatewayState
from tollway.gateway.streaming import StreamTracker
from tollway.metering.llm import TokenUsage
from tollway.spend.admission import Estimate


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs ~1 µs more per request
class Parsed:
    """A client request read by an endpoint's parser."""

    payload: dict[str, Any]
    model: str
    stream: bool
    prompt: dict[str, Any]  # what a prompt-token estimate reads (the payload, or a view of it)
    client_wants_usage: bool = True
    chat: ChatRequest | None = None  # the chat endpoint's own parse, kept for its request builder
    strict: bool = False  # the route's translation setting: a field a translation would drop is a 400
    dropped: tuple[str, ...] = ()  # request fields the builder dropped for the target (x-tollway-dropped)


@dataclass(frozen=True, slots=True)
class LlmEndpoint:
    path: str  # the client's path, e.g. "/v1/chat/completions"
    upstream_path: str  # below the provider's base URL, e.g. "/chat/completions"
    parse: Callable[[bytes], Parsed]  # raises a DomainError (validation) for a bad request
    build: Callable[[Parsed, Target, bytes], tuple[bytes, dict[str, Any]]]  # the upstream body for a target
    usage_of: Callable[[dict[str, Any]], TokenUsage]  # the answer's reported usage block
    estimate: Callable[[Parsed, dict[str, Any]], TokenUsage]  # when a unary answer reported none
    errors: ErrorFormat
    tracker: Callable[[Parsed], StreamTracker] | None = None  # None: the endpoint never streams
    # Providers seen through this endpoint's format (natively or translated), made once per provider.
    adapter: Callable[[Clock], Callable[[Provider], Provider]] | None = None
    passed_on: tuple[bytes, ...] = field(default=())  # client headers that reach native providers
    method: str = "POST"
    # a stream's cost as its last SSE comment (x-tollway-cost); off where a client's SSE reader breaks on comments
    cost_comment: bool = True
    # The body as read, made what `parse` and `build` take (a configured route's default model); None: as is.
    prepare: Callable[[bytes], bytes] | None = None


class Steps(Protocol):
    """The flow's steps a plain endpoint may use (flow.Flow provides them)."""

    state: GatewayState

    def now(self) -> datetime: ...

    async def read(self, scope: Scope, receive: Receive) -> bytes:
        """The request body, within the size limit (TooLargeError past it)."""
        ...

    def resolve(self, call: Call, model: str) -> Route:
        """The route for `model` for this call's consumer (NotFoundError when there is none)."""
        ...

    async def respond(self, send: Send, call: Call, status: int, body: bytes) -> None:
        """Send a JSON answer and count the request."""
        ...

    async def run(self, endpoint: LlmEndpoint, scope: Scope, receive: Receive, send: Send, call: Call) -> None:
        """The one request flow, for an LLM endpoint a handler chose (e.g. by the model in its path)."""
        ...

    async def estimate(self, call: Admit) -> Estimate | None:
        """What a call would cost and whether spend control would admit it now (POST /v1/cost/estimate)."""
        ...

    def credentials_refused(self, provider: str) -> DomainError:
        """The 502 for an upstream that refused Tollway's own credentials (401/403), counted in /metrics."""
        ...


Handle = Callable[[Steps, Scope, Receive, Send, Call], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class HandlerEndpoint:
    """An endpoint that is not an LLM call (listing models, counting tokens): a handler over the flow's steps."""

    path: str  # exact path, or a prefix ending in "/" when `label` names the route template
    handle: Handle
    errors: ErrorFormat
    method: str = "GET"
    label: str | None = None  # for a prefix: the route label in metrics, e.g. "/v1/models/{model}"
    key_in_query: bool = False  # the API key may come as `?key=` (Google's clients); it is moved to a header


Endpoint = LlmEndpoint | HandlerEndpoint


def passed_on(scope: Scope, names: tuple[bytes, ...]) -> tuple[tuple[str, str], ...]:
    """The client headers in `names`, to pass on to providers that speak the endpoint's format natively."""
    if not names:
        return ()
    return tuple((name.decode("latin-1"), value.decode("latin-1")) for name, value in scope["headers"] if name in names)

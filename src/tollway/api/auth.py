"""Admin authentication for the management API: `Authorization: Bearer $TOLLWAY_ADMIN_TOKEN`.

`AdminGate` checks the token from the request's headers before anything reads its body: a request without
the right token is answered 401 (or 429 past the failure limit) at once, whatever body it announces, and
its connection is closed when a body was announced (so a client cannot keep dripping it). Each router's
`admin_guard` dependency checks again (and documents the requirement in the OpenAPI description).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import Request

from tollway.api.errors import problem_of
from tollway.auth_failures import AuthFailures, client_address
from tollway.errors import DomainError, RateLimitedError, UnauthenticatedError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def admin_guard(token: str | None, failures: AuthFailures | None = None) -> Callable[[Request], None]:
    """The dependency that admits a request with the admin token. With `failures`, each refusal is counted
    per client address, and an address past the limit is answered 429 before its token is compared."""
    expected = token.encode() if token else None

    def check(request: Request) -> None:
        address = client_address(request.scope.get("client"))
        if failures is not None and (wait := failures.retry_after(address)) is not None:
            raise RateLimitedError(
                f"too many failed authentications from this address; try again in {wait} seconds",
                retry_after_s=wait,
                code="too_many_auth_failures",
            )
        if expected is None:
            _failed(failures, address)
            raise UnauthenticatedError("the management API is disabled: set TOLLWAY_ADMIN_TOKEN to enable it")
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode(), expected):
            _failed(failures, address)
            raise UnauthenticatedError("missing or invalid admin token (Authorization: Bearer <TOLLWAY_ADMIN_TOKEN>)")

    return check


def as_dependency(check: Callable[[Request], None]) -> Callable[[Request], Awaitable[None]]:
    """`check` as a coroutine dependency: FastAPI runs a plain function dependency in its thread pool, a
    thread hop per request for a check that only compares a header."""

    async def checked(request: Request) -> None:
        check(request)

    return checked


def _failed(failures: AuthFailures | None, address: str) -> None:
    if failures is not None:
        failures.failed(address, "admin")


class AdminGate:
    """ASGI middleware: the admin token is checked before the app (or a body-limit middleware) reads a byte of
    the body. Paths for which `public(path)` is true pass unchecked (the Stripe webhook, docs assets)."""

    def __init__(self, app: ASGIApp, *, check: Callable[[Request], None], public: Callable[[str], bool]) -> None:
        self._app = app
        self._check = check
        self._public = public

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._public(scope["path"]):
            await self._app(scope, receive, send)
            return
        try:
            self._check(Request(scope))  # reads the headers and the client address only
        except DomainError as exc:
            response = problem_of(exc)
            if _announces_body(scope):
                response.headers["Connection"] = "close"  # the unread body is not waited for
            await response(scope, _no_body, send)
            return
        await self._app(scope, receive, send)


def _announces_body(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if (name == b"content-length" and value.strip() not in (b"", b"0")) or name == b"transfer-encoding":
            return True
    return False


async def _no_body() -> Message:
    """The refusal reads nothing of the request."""
    return {"type": "http.request", "body": b"", "more_body": False}

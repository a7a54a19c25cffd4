"""Domain errors as RFC 7807 problem details (as OpenMeter's API returns); the status comes from the one
kind table in tollway.error_shapes, shared with the gateway's OpenAI and Anthropic error bodies."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from tollway.error_shapes import status_of
from tollway.errors import DomainError, RateLimitedError

TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


PROBED_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
# What a client reads when a store (or another library Tollway uses) failed: the failure itself goes to the log.
GENERIC_DETAIL = {
    500: "Tollway failed to handle the request; the server log says why.",
    503: "A store Tollway depends on is unavailable or refused the change; try again shortly.",
}

log = logging.getLogger("tollway.api")


def problem(status: int, detail: str, *, headers: dict[str, str] | None = None, **extra: Any) -> Response:
    body = {"type": "about:blank", "title": TITLES.get(status, "Error"), "status": status, "detail": detail, **extra}
    headers = dict(headers or {})
    if status == 401:
        headers.setdefault("WWW-Authenticate", 'Bearer realm="tollway-admin"')
    return Response(orjson.dumps(body), status_code=status, media_type="application/problem+json", headers=headers)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route answers on this request's path (a 405's `Allow`): one route per method, so
    the route Starlette matched partially lists only its own."""
    return [
        method
        for method in PROBED_METHODS
        if any(route.matches({**request.scope, "method": method})[0] is Match.FULL for route in request.app.routes)
    ]


def problem_of(exc: DomainError, where: str = "") -> Response:
    """A domain error as problem details, with its field, its per-field errors and a Retry-After.

    A 5xx translated from a library's exception (a database driver's, say) gets a generic body: its text may
    quote the statement and its bound parameters. The message goes to the log (`where`: the request)."""
    status = status_of(exc.kind)
    if status >= 500 and exc.__cause__ is not None and not isinstance(exc.__cause__, DomainError):
        log.warning("%s answered %d: %s", where or "a management request", status, exc.message)
        return problem(status, GENERIC_DETAIL.get(status, GENERIC_DETAIL[503]))
    extra: dict[str, Any] = {"field": exc.field} if exc.field else {}
    if exc.details:
        extra["errors"] = [{"field": field, "message": message} for field, message in exc.details]
    response = problem(status, exc.message, **extra)
    if isinstance(exc, RateLimitedError):
        response.headers["Retry-After"] = str(exc.retry_after_s)
    return response


def install_error_handlers(app: FastAPI) -> None:
    async def domain_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, DomainError)
        return problem_of(exc, f"{request.method} {request.url.path}")

    async def validation_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {"field": ".".join(str(p) for p in e["loc"] if p not in ("body", "query", "path")), "message": e["msg"]}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or "invalid request"
        return problem(400, detail, errors=errors)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # TRACE, OPTIONS or any method the path does not serve
            headers["Allow"] = ", ".join(allowed_methods(request))
        return problem(exc.status_code, str(exc.detail), headers=headers)

    app.add_exception_handler(DomainError, domain_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)

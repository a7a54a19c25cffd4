"""Admin authentication for the management API: `Authorization: Bearer $TOLLWAY_ADMIN_TOKEN`."""

from __future__ import annotations

import hmac
from collections.abc import Callable

from fastapi import Request

from tollway.auth_failures import AuthFailures, client_address
from tollway.errors import RateLimitedError, UnauthenticatedError


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


def _failed(failures: AuthFailures | None, address: str) -> None:
    if failures is not None:
        failures.failed(address, "admin")

"""Admin authentication for the management API: `Authorization: Bearer $TOLLWAY_ADMIN_TOKEN`."""

from __future__ import annotations

import hmac
from collections.abc import Callable

from fastapi import Request

from tollway.errors import UnauthenticatedError


def admin_guard(token: str | None) -> Callable[[Request], None]:
    expected = token.encode() if token else None

    def check(request: Request) -> None:
        if expected is None:
            raise UnauthenticatedError("the management API is disabled: set TOLLWAY_ADMIN_TOKEN to enable it")
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode(), expected):
            raise UnauthenticatedError("missing or invalid admin token (Authorization: Bearer <TOLLWAY_ADMIN_TOKEN>)")

    return check

"""The management API called in-process: the catalog commands send the API's own requests to the API's own app,
built over the services the composition root builds on TOLLWAY_DATABASE_URL, so a command checks exactly what
the API checks, fails with the API's problem text, and prints (with --json) exactly what the API answers. No
socket, no server: one ASGI call per request."""

from __future__ import annotations

import secrets
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import orjson

from tollway.errors import DomainError

if TYPE_CHECKING:
    from fastapi import FastAPI

    from tollway.wiring.services import Services


class ApiProblem(DomainError):
    """A 4xx/5xx answer of the management API: its problem text, as the API wrote it."""


class LocalApi:
    def __init__(self, services: Services) -> None:
        from tollway.api.app import create_management_app

        self._token = secrets.token_urlsafe(24)  # this process's own: never leaves it
        self._app: FastAPI = create_management_app(
            metering=services.metering,
            admin_token=self._token,
            identity=services.identity,
            invoice_preview=services.invoice_preview,
            catalog=services.catalog,
            invoices=services.invoices,
            budgets=services.budgets,
            budget_status=services.budget_status,
            credits=services.credits,
            unit_grants=services.unit_grants,
        )

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: list[tuple[str, str]] | None = None,
    ) -> Any:
        """The decoded JSON answer (None for 204); ApiProblem with the API's detail for an error status."""
        payload = b"" if body is None else orjson.dumps(body)
        headers = [
            (b"authorization", f"Bearer {self._token}".encode()),
            (b"host", b"tollway-cli"),
        ]
        if body is not None:
            headers += [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": urlencode(params or []).encode(),
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 0),
            "server": ("tollway-cli", 80),
        }
        sent = False
        status = 500
        chunks: list[bytes] = []

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": payload, "more_body": False}

        async def send(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self._app(scope, receive, send)
        raw = b"".join(chunks)
        answer = orjson.loads(raw) if raw else None
        if status >= 400:
            detail = (answer.get("detail") or answer.get("title")) if isinstance(answer, dict) else None
            raise ApiProblem(str(detail or f"the API answered {status}"))
        return answer

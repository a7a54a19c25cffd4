"""Bare Python pass-through: the 100% reference of the benchmark.

A minimal ASGI app that forwards the request body to the upstream with one
pooled keep-alive client and returns the upstream's bytes unchanged. No auth,
no JSON parsing, no metering: whatever Tollway costs on top of this is the
price of its own work.

Configured through the environment (bench/run.py sets these):

    BENCH_CLIENT          aiohttp | httpx           (default aiohttp)
    BENCH_UPSTREAM        http://127.0.0.1:PORT/v1  (no trailing slash)
    BENCH_UPSTREAM_KEY    sent upstream as Authorization: Bearer ...

Run it under any candidate server, for example:

    uvicorn passthrough:app --loop uvloop --http httptools --no-access-log
    granian --interface asgi --loop uvloop passthrough:app
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

UPSTREAM = os.environ.get("BENCH_UPSTREAM", "http://127.0.0.1:8081/v1").rstrip("/")
UPSTREAM_KEY = os.environ.get("BENCH_UPSTREAM_KEY", "sk-upstream")
CLIENT = os.environ.get("BENCH_CLIENT", "aiohttp")
POOL_SIZE = 512  # more than any concurrency the bench uses: never a pool wait

JSON = b"application/json"


class AiohttpForwarder:
    def __init__(self) -> None:
        import aiohttp

        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=POOL_SIZE, keepalive_timeout=60),
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=600),
        )
        self._headers = {
            "Authorization": f"Bearer {UPSTREAM_KEY}",
            "Content-Type": "application/json",
        }

    async def request(self, method: str, path: str, body: bytes) -> tuple[int, bytes, bytes]:
        async with self._session.request(method, UPSTREAM + path, data=body or None, headers=self._headers) as resp:
            data = await resp.read()
            ctype = resp.headers.get("Content-Type", "application/json").encode("latin-1")
            return resp.status, ctype, data

    async def close(self) -> None:
        await self._session.close()


class HttpxForwarder:
    def __init__(self) -> None:
        import httpx

        self._client = httpx.AsyncClient(
            limits=httpx.Limits(
                max_connections=POOL_SIZE,
                max_keepalive_connections=POOL_SIZE,
                keepalive_expiry=60,
            ),
            timeout=httpx.Timeout(600.0),
            headers={
                "Authorization": f"Bearer {UPSTREAM_KEY}",
                "Content-Type": "application/json",
            },
        )

    async def request(self, method: str, path: str, body: bytes) -> tuple[int, bytes, bytes]:
        resp = await self._client.request(method, UPSTREAM + path, content=body or None)
        ctype = resp.headers.get("content-type", "application/json").encode("latin-1")
        return resp.status_code, ctype, resp.content

    async def close(self) -> None:
        await self._client.aclose()


FORWARDERS = {"aiohttp": AiohttpForwarder, "httpx": HttpxForwarder}
if CLIENT not in FORWARDERS:
    raise SystemExit(f"BENCH_CLIENT must be one of {sorted(FORWARDERS)}, not {CLIENT!r}")


class PassThrough:
    def __init__(self) -> None:
        self._fwd: AiohttpForwarder | HttpxForwarder | None = None

    def _forwarder(self) -> AiohttpForwarder | HttpxForwarder:
        # Created inside the running loop (lifespan startup, or the first
        # request on servers that skip lifespan).
        if self._fwd is None:
            self._fwd = FORWARDERS[CLIENT]()
        return self._fwd

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                self._forwarder()
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                if self._fwd is not None:
                    await self._fwd.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        if not path.startswith("/v1/") or method not in ("GET", "POST"):
            await _reply(send, 404, JSON, b'{"error":{"message":"Not found","type":"invalid_request_error"}}')
            return
        chunks = []
        more = True
        while more:
            msg = await receive()
            chunks.append(msg.get("body", b""))
            more = msg.get("more_body", False)
        body = b"".join(chunks)
        try:
            status, ctype, data = await self._forwarder().request(method, path[3:], body)
        except Exception as exc:  # the reference reports upstream failures, never crashes
            msg_bytes = repr(exc).replace('"', "'").encode()
            await _reply(send, 502, JSON, b'{"error":{"message":"upstream: ' + msg_bytes + b'","type":"api_error"}}')
            return
        await _reply(send, status, ctype, data)


async def _reply(send: Send, status: int, ctype: bytes, data: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", ctype), (b"content-length", str(len(data)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": data})


app = PassThrough()

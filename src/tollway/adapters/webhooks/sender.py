"""HttpWebhookSender: the WebhookSender port over aiohttp — one POST per attempt, no redirects followed,
a total timeout per attempt; library errors become a SendResult without a status (retried). Also the DNS
resolver the SSRF guard checks addresses with.

The connection itself goes through a resolver that refuses forbidden addresses (unless private targets are
allowed): the delivery worker checks a URL before sending, and the address aiohttp then connects to is
checked again as it is resolved, so a name that changes its answer between the two (DNS rebinding) still
cannot reach a private address."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Mapping, Sequence

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from tollway.notifications.ports import SendResult
from tollway.notifications.urls import forbidden_address

MAX_READ = 4096


class GuardedResolver(AbstractResolver):
    """Resolves like aiohttp's default, and refuses (OSError) a name with any address a webhook may not reach."""

    def __init__(self) -> None:
        self._inner = ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        for entry in found:
            why = forbidden_address(entry["host"])
            if why is not None:
                raise OSError(f"{host} resolves to {entry['host']}, {why}: not a webhook target")
        return found

    async def close(self) -> None:
        await self._inner.close()


class HttpWebhookSender:
    def __init__(self, *, allow_private: bool = False) -> None:
        self._allow_private = allow_private
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            resolver = None if self._allow_private else GuardedResolver()
            connector = aiohttp.TCPConnector(limit=64, force_close=True, resolver=resolver)
            self._session = aiohttp.ClientSession(connector=connector, auto_decompress=True)
        return self._session

    async def send(self, url: str, headers: Mapping[str, str], body: bytes, *, timeout_s: float) -> SendResult:
        started = time.monotonic()
        try:
            async with self._client().post(
                url,
                data=body,
                headers=dict(headers),
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
            ) as response:
                text = (await response.content.read(MAX_READ)).decode("utf-8", "replace")
                return SendResult(response.status, text, _ms(started))
        except TimeoutError:
            return SendResult(None, f"timed out after {timeout_s:g} s", _ms(started))
        except (aiohttp.ClientError, OSError) as exc:
            return SendResult(None, f"no answer: {exc.__class__.__name__}: {exc}"[:500], _ms(started))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


async def resolve(host: str, port: int) -> Sequence[str]:
    """Every address `host` resolves to (OSError when it does not)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})

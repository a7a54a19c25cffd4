"""HttpWebhookSender: the WebhookSender port over aiohttp — one POST per attempt, no redirects followed,
a total timeout per attempt; library errors become a SendResult without a status (retried). Also the DNS
resolver the SSRF guard checks addresses with."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Mapping, Sequence

import aiohttp

from tollway.notifications.ports import SendResult

MAX_READ = 4096


class HttpWebhookSender:
    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=64, force_close=True), auto_decompress=True
            )
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

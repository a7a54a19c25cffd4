"""The change feed on Redis pub/sub: for processes that share a database with no feed of its own (SQLite on one
host: `serve --workers N`, gateways on a shared disk), when TOLLWAY_REDIS_URL is set.

`PUBLISH {prefix}catalog-changes <origin>` announces a change; every process subscribes on a connection of its
own and refreshes on each announcement but its own. A lost connection is reopened (every second while Redis is
down) and followed by one refresh (for what was announced meanwhile); the version polls carry changes all along,
so the feed only makes them faster, never required. Every call is bounded by `timeout_s`: an API call that made a
change never waits longer than that on Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from tollway.adapters.redis.pubsub import next_message, raise_if_cancelling

log = logging.getLogger("tollway.changes")

RECONNECT_S = 1.0
CHANNEL = "catalog-changes"


class RedisChangeFeed:
    def __init__(self, url: str, *, prefix: str = "tollway:routing:", timeout_s: float = 0.5) -> None:
        self._url = url
        self._channel = prefix + CHANNEL
        self._timeout_s = timeout_s
        self._origin = secrets.token_hex(8)
        self._publisher: Redis | None = None
        self.published_total = 0
        self.publish_failures_total = 0
        self.received_total = 0

    def _client(self) -> Redis:
        return Redis.from_url(self._url, socket_timeout=self._timeout_s, socket_connect_timeout=self._timeout_s)

    async def publish(self) -> None:
        try:
            if self._publisher is None:
                self._publisher = self._client()
            async with asyncio.timeout(self._timeout_s):
                await self._publisher.publish(self._channel, self._origin)
            self.published_total += 1
        except (RedisError, OSError, TimeoutError) as exc:
            await self._drop_publisher()
            self.publish_failures_total += 1
            log.warning("change feed: PUBLISH failed (other processes see the change at their poll): %r", exc)

    async def _drop_publisher(self) -> None:
        publisher, self._publisher = self._publisher, None
        if publisher is not None:
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                await publisher.aclose()

    async def listen(self, on_change: Callable[[], Awaitable[None]]) -> None:
        failing = False
        while True:
            client = Redis.from_url(self._url, socket_connect_timeout=self._timeout_s)  # reads wait for news
            pubsub = client.pubsub()
            try:
                async with asyncio.timeout(self._timeout_s * 4):
                    await pubsub.subscribe(self._channel)
                if failing:
                    log.warning("change feed: listening again")
                    failing = False
                    await on_change()  # what was announced while the connection was down
                while True:
                    note = await next_message(pubsub)
                    if note is None or note.get("type") != "message":
                        continue
                    origin = note["data"].decode() if isinstance(note["data"], bytes) else str(note["data"])
                    if origin != self._origin:
                        self.received_total += 1
                        await on_change()
            except (RedisError, OSError, TimeoutError) as exc:
                raise_if_cancelling()
                if not failing:
                    log.warning("change feed: Redis subscription lost, retrying every %.0fs: %r", RECONNECT_S, exc)
                failing = True
            finally:
                with contextlib.suppress(RedisError, OSError, TimeoutError):
                    async with asyncio.timeout(self._timeout_s):  # a connection half gone must not hold a stop
                        await pubsub.aclose()
                        await client.aclose()
            await asyncio.sleep(RECONNECT_S)

    async def close(self) -> None:
        await self._drop_publisher()

"""Routing state shared through Redis: breaker moves and cool-downs one gateway makes, the others adopt.

Nothing here is on the request path. A breaker that opens (or closes, or hands out its probe) and a cool-down
after a 429 with Retry-After are queued in memory by the process that saw them (never blocking) and written by
a background task in one round trip: `HSET {prefix}state <label>:<kind> <json>` (so a gateway that starts
later learns the open breakers) and `PUBLISH {prefix}changes <json>`. Every gateway subscribes and applies what
the others publish to its own breakers and cool-downs. So a target that fails is taken out of every replica's
rotation once one replica's breaker opens, and one probe (from the replica that opened it, or the first whose
cool-down ends) decides for all.

Redis unreachable: each process keeps its own state, as without Redis; one warning when that starts and one when
it ends, `tollway_routing_shared` 0 meanwhile; moves made meanwhile are dropped from the queue once it is full.

The counts behind the moves (budgets, failure counts, latency averages) are exchanged by `RedisRoutingSync`
(routing_sync.py), started and stopped with this share.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from tollway.adapters.redis.pubsub import next_message, raise_if_cancelling
from tollway.adapters.redis.routing_sync import RedisRoutingSync

log = logging.getLogger("tollway.gateway.routing_share")

QUEUE_MAX = 1000
RECONNECT_S = 1.0
STATE_TTL_S = 3600

Adopt = Callable[[str, str, int, float], None]  # kind ("breaker" | "cool"), target label, state, time


class RedisRoutingShare:
    def __init__(
        self,
        url: str,
        adopt: Adopt,
        *,
        prefix: str = "tollway:routing:",
        timeout_s: float = 0.5,
        auth_limit: int = 0,
        block: Callable[[str, float], None] | None = None,
        now: Callable[[], float] = time.time,
        sync: RedisRoutingSync | None = None,
    ) -> None:
        self._url = url
        self._adopt = adopt
        self._prefix = prefix
        self._timeout_s = timeout_s
        self.auth_limit = auth_limit  # failed authentications per address per minute, fleet-wide (0: not shared)
        self._now = now
        self._block = block  # (address, seconds): blocked fleet-wide for the rest of the minute
        self._loop: asyncio.AbstractEventLoop | None = None
        self._origin = secrets.token_hex(6)
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(QUEUE_MAX)
        self._tasks: list[asyncio.Task[None]] = []
        self.up = False
        self._failing = False
        self.published_total = 0
        self.adopted_total = 0
        self.dropped_total = 0
        self.sync = sync

    @property
    def shared(self) -> bool:
        """Whether moves and counts are both shared now (`tollway_routing_shared`)."""
        return self.up and (self.sync is None or self.sync.up)

    def auth_failed(self, address: str) -> None:
        """Queue one failed authentication from `address`: counted fleet-wide per minute; at the limit every
        gateway blocks the address for the rest of that minute."""
        if self.auth_limit <= 0 or self._loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self.publish("authfail", address, 0, 0.0)
        else:  # the management API checks the admin token in worker threads
            self._loop.call_soon_threadsafe(self.publish, "authfail", address, 0, 0.0)

    def publish(self, kind: str, label: str, state: int, at: float) -> None:
        """Queue a move made here (from the request path: never waits)."""
        message = orjson.dumps({"o": self._origin, "k": kind, "t": label, "s": state, "a": at})
        try:
            self._queue.put_nowait(message)
        except asyncio.QueueFull:
            self.dropped_total += 1

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._publishing(), name="tollway-routing-publish"),
                asyncio.create_task(self._listening(), name="tollway-routing-listen"),
            ]
            if self.sync is not None:
                self.sync.start()

    async def close(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.sync is not None:
            await self.sync.close()

    def _client(self) -> Redis:
        return Redis.from_url(self._url, socket_timeout=self._timeout_s, socket_connect_timeout=self._timeout_s)

    def _down(self, exc: BaseException) -> None:
        self.up = False
        if not self._failing:
            log.warning("routing state: Redis unreachable, each gateway keeps its own breakers meanwhile: %r", exc)
        self._failing = True

    def _back(self) -> None:
        self.up = True
        if self._failing:
            log.warning("routing state: shared through Redis again")
        self._failing = False

    async def _publishing(self) -> None:
        while True:
            message = await self._queue.get()
            client = self._client()
            try:
                while True:
                    entry = orjson.loads(message)
                    if entry["k"] == "authfail":
                        await self._count_failure(client, str(entry["t"]))
                        message = await self._queue.get()
                        continue
                    async with client.pipeline(transaction=False) as pipe:
                        pipe.hset(self._prefix + "state", f"{entry['t']}|{entry['k']}", message)
                        pipe.expire(self._prefix + "state", STATE_TTL_S)
                        pipe.publish(self._prefix + "changes", message)
                        await asyncio.wait_for(pipe.execute(), self._timeout_s * 4)
                    self.published_total += 1
                    message = await self._queue.get()
            except (RedisError, OSError, TimeoutError) as exc:
                self._down(exc)
                await asyncio.sleep(RECONNECT_S)
            finally:
                await client.aclose()

    async def _count_failure(self, client: Redis, address: str) -> None:
        minute = int(self._now() // 60)
        key = f"{self._prefix}auth:{address}:{minute}"
        async with client.pipeline(transaction=False) as pipe:
            pipe.incr(key)
            pipe.expire(key, 120)
            total, _ = await asyncio.wait_for(pipe.execute(), self._timeout_s * 4)
        if int(total) == self.auth_limit:  # once per address and minute: every gateway blocks it
            block = orjson.dumps({"o": "", "k": "block", "t": address, "s": 0, "a": (minute + 1) * 60.0})
            await asyncio.wait_for(client.publish(self._prefix + "changes", block), self._timeout_s * 4)

    async def _listening(self) -> None:
        while True:
            client = Redis.from_url(self._url, socket_connect_timeout=self._timeout_s)
            pubsub = client.pubsub()
            try:
                await asyncio.wait_for(pubsub.subscribe(self._prefix + "changes"), self._timeout_s * 4)
                known = await asyncio.wait_for(client.hgetall(self._prefix + "state"), self._timeout_s * 4)
                for raw in known.values():
                    self._apply(raw)  # what the others decided before this process listened
                self._back()
                while True:
                    note = await next_message(pubsub)
                    if note is not None and note.get("type") == "message":
                        self._apply(note["data"])
            except (RedisError, OSError, TimeoutError) as exc:
                raise_if_cancelling()
                self._down(exc)
                await asyncio.sleep(RECONNECT_S)
            finally:
                with contextlib.suppress(RedisError, OSError, TimeoutError):
                    async with asyncio.timeout(self._timeout_s):  # a connection half gone must not hold a stop
                        await pubsub.aclose()
                        await client.aclose()

    def _apply(self, raw: Any) -> None:
        try:
            entry = orjson.loads(raw)
            if entry["o"] == self._origin:
                return
            if entry["k"] == "block":
                if self._block is not None:
                    self._block(str(entry["t"]), float(entry["a"]) - self._now())
                return
            self._adopt(str(entry["k"]), str(entry["t"]), int(entry["s"]), float(entry["a"]))
            self.adopted_total += 1
        except (ValueError, KeyError, TypeError):
            log.warning("routing state: ignored an unreadable message (%d bytes)", len(raw or b""))

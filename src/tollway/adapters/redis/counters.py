"""Spend counters in Redis, shared by every gateway process: one atomic Lua script per call.

A counter is a hash `{prefix}{key}` with `u` (used) and `r` (reserved), in billionths of a unit as Redis
64-bit integers (HINCRBY is exact; limits up to 9.2 billion units). `reserve` is one round trip for all of a
call's limits: it names the keys nobody seeded, or holds every amount, or refuses (the tightest limit) and
holds nothing. `seed` creates a counter only if it does not exist (set-if-absent), so replicas seeding the
same window at once, or seeding again after a flush, never add to each other. A counter expires an hour after
its window ends (a time to live from the injected clock); the next window is a new key, opened once by
whichever replica seeds it first.

Every call is bounded by `timeout_s`; a failure or timeout raises `CountersUnavailable` (the admission applies
the fail-open or fail-closed setting). `settle` and `release` never block a request: they are queued, and the
next `reserve` carries them in its own script (applied first), so a call costs one round trip; when no call
comes within `settle_delay_s` (20 ms), they are sent on their own. Until then the call's hold stays held (a
limit is never passed by it, only full a few milliseconds longer).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from tollway.clock import Clock
from tollway.spend.ports import Ask, Counter, CountersUnavailable, Reserved

log = logging.getLogger("tollway.spend")
SCALE = Decimal(10) ** 9  # amounts are stored in billionths
_NANO = Decimal(1)

# KEYS: the s keys of the settlements carried along, then the n keys of the asks, then the n previous buckets.
# ARGV: s, then (held given back, actual) per settlement, then per ask: amount, limit, ttl, weight (n each).
RESERVE = """
local s = tonumber(ARGV[1])
for i = 1, s do
  local k = KEYS[i]
  if redis.call('EXISTS', k) == 1 then
    local r = redis.call('HINCRBY', k, 'r', ARGV[2 * i])
    if r < 0 then redis.call('HSET', k, 'r', '0') end
    local actual = ARGV[2 * i + 1]
    if actual ~= '' and actual ~= '0' then redis.call('HINCRBY', k, 'u', actual) end
  end
end
local n = (#KEYS - s) / 2
local b = 1 + 2 * s
local missing = {}
for i = 1, n do
  if ARGV[b + 2 * n + i] == '' and redis.call('EXISTS', KEYS[s + i]) == 0 then missing[#missing + 1] = i end
end
if #missing > 0 then
  table.insert(missing, 1, 'missing')
  return missing
end
local out = {'held', 0}
local refused, tightest = 0, 0
for i = 1, n do
  local v = redis.call('HMGET', KEYS[s + i], 'u', 'r')
  local u, r = v[1] or '0', v[2] or '0'
  local p = 0
  local w = ARGV[b + 3 * n + i]
  if w ~= '' then
    local pv = redis.call('HMGET', KEYS[s + n + i], 'u', 'r')
    p = tonumber(pv[1] or '0') + tonumber(pv[2] or '0')
  end
  out[#out + 1] = u
  out[#out + 1] = r
  out[#out + 1] = p
  local limit = ARGV[b + n + i]
  if limit ~= '' then
    local counted = tonumber(u) + tonumber(r)
    if p > 0 then counted = counted + p * tonumber(w) / 1000000 end
    local room = tonumber(limit) - counted
    if tonumber(ARGV[b + i]) > room and (refused == 0 or room < tightest) then
      refused, tightest = i, room
    end
  end
end
if refused > 0 then
  out[1], out[2] = 'refused', refused
  return out
end
for i = 1, n do
  redis.call('HINCRBY', KEYS[s + i], 'r', ARGV[b + i])
  local ttl = ARGV[b + 2 * n + i]
  if ttl ~= '' then
    redis.call('HSETNX', KEYS[s + i], 'u', '0')
    redis.call('EXPIRE', KEYS[s + i], ttl)
  end
end
return out
"""

SEED = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'u', ARGV[1], 'r', '0')
if ARGV[2] ~= '' then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 1
"""

RAISE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local u = tonumber(redis.call('HGET', KEYS[1], 'u') or '0')
if tonumber(ARGV[1]) > u then redis.call('HSET', KEYS[1], 'u', ARGV[1]) return 1 end
return 0
"""


def to_units(amount: Decimal, *, up: bool = False) -> int:
    """An amount in billionths: a hold rounds up (never under-reserves), a settlement to the nearest."""
    return int((amount * SCALE).quantize(_NANO, rounding=ROUND_CEILING if up else ROUND_HALF_UP))


def from_units(units: Any) -> Decimal:
    text = units.decode() if isinstance(units, bytes) else str(units)
    return (Decimal(text) / SCALE).normalize() if text not in ("0", "") else Decimal(0)


class RedisCounterStore:
    def __init__(
        self,
        url: str,
        clock: Clock,
        *,
        prefix: str = "tollway:spend:",
        timeout_s: float = 0.25,
        settle_delay_s: float = 0.02,
    ) -> None:
        self._clock = clock
        self._redis: Redis = Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        self._prefix = prefix
        self._timeout_s = timeout_s
        self._reserve = self._redis.register_script(RESERVE)
        self._seed = self._redis.register_script(SEED)
        self._raise = self._redis.register_script(RAISE)
        self._pending: set[asyncio.Task[None]] = set()
        # settlements not sent yet: the next reserve carries them (one round trip per call), or a flush
        # `settle_delay_s` after the first of them when no call comes
        self._queued_keys: list[str] = []
        self._queued_args: list[Any] = []
        self._settle_delay_s = settle_delay_s
        self._flush_at: asyncio.TimerHandle | None = None

    def _key(self, key: str) -> str:
        return self._prefix + key

    async def _bounded(self, work: Awaitable[Any]) -> Any:
        try:
            async with asyncio.timeout(self._timeout_s):  # no task per call, unlike wait_for
                return await work
        except (RedisError, OSError, TimeoutError) as exc:
            raise CountersUnavailable(f"Redis did not answer: {exc.__class__.__name__}") from exc

    async def reserve(self, asks: Sequence[Ask]) -> Reserved:
        key = self._key
        mine = [key(ask.key) for ask in asks]
        settled, settle_args = self._take_queued()
        keys = [*settled, *mine]
        keys += [key(ask.previous) if ask.previous is not None else mine[i] for i, ask in enumerate(asks)]
        args: list[Any] = [len(settled), *settle_args]
        args += [to_units(ask.amount, up=True) for ask in asks]
        args += ["" if ask.limit is None else to_units(ask.limit) for ask in asks]
        args += ["" if ask.fresh_ttl_s is None else ask.fresh_ttl_s for ask in asks]
        args += ["" if ask.previous is None else ask.weight for ask in asks]
        try:
            answer = await self._bounded(self._reserve(keys=keys, args=args))
        except CountersUnavailable as exc:
            if settled:  # the hold expires with its window; the reconciler restores `used`
                log.warning("spend counters: %d settlements were lost (%s)", len(settled), exc.message)
            raise
        status = answer[0].decode() if isinstance(answer[0], bytes) else answer[0]
        if status == "missing":
            return Reserved(False, missing=tuple(asks[int(i) - 1].key for i in answer[1:]))
        counters = tuple(
            Counter(from_units(answer[2 + 3 * i]), from_units(answer[3 + 3 * i]), from_units(answer[4 + 3 * i]))
            for i in range(len(asks))
        )
        if status == "refused":
            return Reserved(False, refused=int(answer[1]) - 1, counters=counters)
        return Reserved(True, counters=counters)

    async def seed(self, key: str, used: Decimal, expires_at: datetime | None) -> None:
        # a time to live from the injected clock (Redis's own clock need not agree with it)
        expiry = "" if expires_at is None else str(max(1, int((expires_at - self._clock.now()).total_seconds())))
        await self._bounded(self._seed(keys=[self._key(key)], args=[to_units(used), expiry]))

    def settle(self, asks: Sequence[Ask], actual: Sequence[Decimal]) -> None:
        self._queue(asks, [str(to_units(amount)) for amount in actual])

    def release(self, asks: Sequence[Ask]) -> None:
        self._queue(asks, ["" for _ in asks])

    def _queue(self, asks: Sequence[Ask], actual: list[str]) -> None:
        for ask, amount in zip(asks, actual, strict=True):
            self._queued_keys.append(self._key(ask.key))
            self._queued_args += [-to_units(ask.amount, up=True), amount]  # what the hold took off, given back
        if self._flush_at is None:
            self._flush_at = asyncio.get_running_loop().call_later(self._settle_delay_s, self._flush)

    def _take_queued(self) -> tuple[list[str], list[Any]]:
        keys, args = self._queued_keys, self._queued_args
        if keys:
            self._queued_keys, self._queued_args = [], []
        if self._flush_at is not None:
            self._flush_at.cancel()
            self._flush_at = None
        return keys, args

    def _flush(self) -> None:
        """No call came to carry the settlements: send them on their own."""
        self._flush_at = None
        keys, args = self._take_queued()
        if keys:
            task = asyncio.get_running_loop().create_task(self._finish(keys, [len(keys), *args]))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _finish(self, keys: list[str], args: list[Any]) -> None:
        try:
            await self._bounded(self._reserve(keys=keys, args=args))
        except CountersUnavailable as exc:  # the hold expires with its window; the reconciler restores `used`
            log.warning("spend counters: a settlement was lost (%s)", exc.message)

    async def read(self, keys: Sequence[str]) -> list[Counter | None]:
        async def work() -> list[Any]:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.hmget(self._key(key), "u", "r")
                return list(await pipe.execute())

        rows = await self._bounded(work())
        return [None if row[0] is None else Counter(from_units(row[0]), from_units(row[1] or b"0")) for row in rows]

    async def raise_used(self, key: str, used: Decimal) -> None:
        await self._bounded(self._raise(keys=[self._key(key)], args=[to_units(used)]))

    async def close(self) -> None:
        self._flush()
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=self._timeout_s * 4)
        await self._redis.aclose()

"""Spend counters in Redis, shared by every gateway process: the calls of a moment share one atomic Lua script.

A counter is a hash `{prefix}{key}` with `u` (used) and `r` (reserved), in billionths of a unit as Redis
64-bit integers (HINCRBY is exact; limits up to 9.2 billion units). `reserve` covers all of a call's limits:
it names the keys nobody seeded, or holds every amount, or refuses (the tightest limit) and holds nothing.
`seed` creates a counter only if it does not exist (set-if-absent), so replicas seeding the same window at
once, or seeding again after a flush, never add to each other. A counter expires an hour after its window
ends (a time to live from the injected clock); the next window is a new key, opened once by whichever
replica seeds it first.

Coalescing: a call's reserve is sent at once when no script is in flight; the calls that come while one is
(or in the same turn of the event loop) wait and go together in the next script, which decides each of them
in order, exactly as one script per call would, and answers each its own verdict. At 64 calls in flight a
round trip and the client's work are shared by tens of calls; a lone call waits for nothing.

Every call is bounded by `timeout_s` from its own start; a failure or timeout raises `CountersUnavailable`
(the admission applies the fail-open or fail-closed setting). A caller that gives up (timeout, cancellation)
before its call is sent is left out of the script; after, a hold the script granted it is released.
`settle` and `release` never block a request: they are queued (summed per key), and the next script carries
them (applied first), so a call costs no extra round trip; when no call comes within `settle_delay_s`
(20 ms), they are sent on their own. Until then the call's hold stays held (a limit is never passed by it,
only full a few milliseconds longer).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
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
_ZERO = Decimal(0)

# KEYS: the distinct keys of the batch. ARGV[1]: the settlements, 'k back used' per key (k: index in KEYS; back:
# what the holds gave back, negative; used: what was metered). ARGV[2..]: one call each, 'k amount limit ttl p w'
# per ask (limit, ttl '-' for none; p: the previous bucket's index, 0 for none; w: its weight in millionths).
# Answers one line per call: 'm i ...' (asks whose keys nobody seeded, from 0), 'r i u r p ...' (refused at
# ask i, nothing held) or 'h 0 u r p ...' (every ask held); u r p: each ask's counter before the call.
# Reads and holds are gathered per key (one HMGET and one HINCRBY each); sums stay below 2^52, where a Lua
# number is still an exact integer.
RESERVE = """
local function words(s)
  local t, n = {}, 0
  for w in string.gmatch(s, '%S+') do
    n = n + 1
    t[n] = w
  end
  return t
end
local st = words(ARGV[1])
for j = 1, #st, 3 do
  local k = KEYS[tonumber(st[j])]
  if redis.call('EXISTS', k) == 1 then
    if redis.call('HINCRBY', k, 'r', st[j + 1]) < 0 then redis.call('HSET', k, 'r', '0') end
    if st[j + 2] ~= '0' then redis.call('HINCRBY', k, 'u', st[j + 2]) end
  end
end
local BIG = 4503599627370496
local seen = {}
local function counter(i)
  local c = seen[i]
  if c == nil then
    local v = redis.call('HMGET', KEYS[i], 'u', 'r')
    c = {u = v[1], r0 = v[2] or '0', r = tonumber(v[2] or '0'), held = 0, moved = false}
    c.un = tonumber(c.u or '0')
    seen[i] = c
  end
  return c
end
local out = {}
for a = 2, #ARGV do
  local t = words(ARGV[a])
  local n = #t / 6
  local missing = 'm'
  for i = 0, n - 1 do
    if t[6 * i + 4] == '-' and not counter(tonumber(t[6 * i + 1])).u then missing = missing .. ' ' .. i end
  end
  if missing ~= 'm' then
    out[#out + 1] = missing
  else
    local before = {}
    local refused, tightest = -1, 0
    for i = 0, n - 1 do
      local c = counter(tonumber(t[6 * i + 1]))
      local p, ps = 0, '0'
      if t[6 * i + 5] ~= '0' then
        local q = counter(tonumber(t[6 * i + 5]))
        p = q.un + q.r
        if p ~= 0 then ps = string.format('%.0f', p) end
      end
      local r = c.r0
      if c.moved then r = string.format('%.0f', c.r) end
      before[i + 1] = (c.u or '0') .. ' ' .. r .. ' ' .. ps
      local limit = t[6 * i + 3]
      if limit ~= '-' then
        local counted = c.un + c.r
        if p > 0 then counted = counted + p * tonumber(t[6 * i + 6]) / 1000000 end
        local room = tonumber(limit) - counted
        if tonumber(t[6 * i + 2]) > room and (refused < 0 or room < tightest) then refused, tightest = i, room end
      end
    end
    if refused >= 0 then
      out[#out + 1] = 'r ' .. refused .. ' ' .. table.concat(before, ' ')
    else
      for i = 0, n - 1 do
        local k = tonumber(t[6 * i + 1])
        local c = seen[k]
        local amount = tonumber(t[6 * i + 2])
        if amount >= BIG then
          redis.call('HINCRBY', KEYS[k], 'r', t[6 * i + 2])
        else
          if c.held + amount >= BIG then
            redis.call('HINCRBY', KEYS[k], 'r', string.format('%.0f', c.held))
            c.held = 0
          end
          c.held = c.held + amount
        end
        c.r = c.r + amount
        c.moved = true
        if t[6 * i + 4] ~= '-' then c.ttl = t[6 * i + 4] end
      end
      out[#out + 1] = 'h 0 ' .. table.concat(before, ' ')
    end
  end
end
for k = 1, #KEYS do
  local c = seen[k]
  if c ~= nil and c.moved then
    if c.held > 0 then redis.call('HINCRBY', KEYS[k], 'r', string.format('%.0f', c.held)) end
    if c.ttl then
      redis.call('HSETNX', KEYS[k], 'u', '0')
      redis.call('EXPIRE', KEYS[k], c.ttl)
    end
  end
end
return table.concat(out, '\\n')
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
    return (Decimal(text) / SCALE).normalize() if text not in ("0", "") else _ZERO


def _unavailable(exc: BaseException) -> CountersUnavailable:
    return CountersUnavailable(f"Redis did not answer: {exc.__class__.__name__}")


def _verdict(asks: Sequence[Ask], line: bytes, decimals: dict[bytes, Decimal]) -> Reserved:
    words = line.split()
    status = words[0]
    if status == b"m":
        return Reserved(False, missing=tuple(asks[int(i)].key for i in words[1:]))
    values = []
    for word in words[2:]:
        value = decimals.get(word)
        if value is None:
            value = decimals[word] = from_units(word)
        values.append(value)
    counters = tuple(Counter(values[i], values[i + 1], values[i + 2]) for i in range(0, len(values), 3))
    if status == b"r":
        return Reserved(False, refused=int(words[1]), counters=counters)
    return Reserved(True, counters=counters)


class _Call:
    """One call's reserve waiting for (or in) a script: its asks, the future its caller awaits, its deadline."""

    __slots__ = ("asks", "deadline", "future")

    def __init__(self, asks: Sequence[Ask], future: asyncio.Future[Reserved], deadline: float) -> None:
        self.asks = asks
        self.future = future
        self.deadline = deadline


class _Units:
    """Amounts in billionths, remembered (`known`, looked up inline on the hot path; `convert` on a miss): a
    call's limits and worst cases come back call after call."""

    __slots__ = ("_up", "known")

    def __init__(self, *, up: bool) -> None:
        self._up = up
        self.known: dict[Decimal, int] = {}

    def convert(self, amount: Decimal) -> int:
        if len(self.known) >= 4096:
            self.known.clear()
        units = self.known[amount] = to_units(amount, up=self._up)
        return units


class RedisCounterStore:
    def __init__(
        self,
        url: str,
        clock: Clock,
        *,
        prefix: str = "tollway:spend:",
        timeout_s: float = 0.25,
        settle_delay_s: float = 0.02,
        max_batch: int = 256,
    ) -> None:
        self._clock = clock
        self._redis: Redis = Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        self._prefix = prefix
        self._timeout_s = timeout_s
        self._reserve = self._redis.register_script(RESERVE)
        self._seed = self._redis.register_script(SEED)
        self._raise = self._redis.register_script(RAISE)
        self._max_batch = max_batch
        self._units, self._units_up = _Units(up=False), _Units(up=True)
        self._waiting: list[_Call] = []  # reserves for the next script
        self._batch: asyncio.Task[None] | None = None  # the script in flight
        self.scripts = 0  # scripts sent (a batch each)
        self.calls = 0  # reserves they carried
        # settlements not sent yet, per key (unprefixed): [held given back (negative), used], in billionths
        self._settling: dict[str, list[int]] = {}
        self._settle_delay_s = settle_delay_s
        self._flush_at: asyncio.TimerHandle | None = None

    def _key(self, key: str) -> str:
        return self._prefix + key

    async def reserve(self, asks: Sequence[Ask]) -> Reserved:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Reserved] = loop.create_future()
        # bounded from this call's start, wherever its batch is: the script that carries it is given until the
        # deadline of its oldest call (a timer per script, not one per call)
        self._waiting.append(_Call(asks, future, loop.time() + self._timeout_s))
        if self._batch is None:
            self._start()
        return await future

    def _start(self) -> None:
        self._batch = asyncio.get_running_loop().create_task(self._send())

    async def _send(self) -> None:
        """One script: the settlements queued so far and the calls waiting (those that arrived in this turn of the
        event loop included: the task runs after them)."""
        calls: list[_Call] = []
        try:
            now = asyncio.get_running_loop().time()
            for call in self._waiting[: self._max_batch]:
                if call.future.done():  # its caller gave up before it was sent
                    continue
                if call.deadline <= now:  # waited out its time behind a script that was slow to answer
                    call.future.set_exception(_unavailable(TimeoutError()))
                else:
                    calls.append(call)
            del self._waiting[: self._max_batch]
            settling = self._take_settlements()
            if calls or settling:
                within_s = calls[0].deadline - now if calls else self._timeout_s
                await self._run(calls, settling, within_s)
        except BaseException as exc:  # never leave a caller waiting for an answer that will not come
            self._fail(calls, exc)
            if not isinstance(exc, Exception):
                raise
            log.error("spend counters: a batch failed (%r)", exc)
        finally:
            self._batch = None
            if self._waiting:
                self._start()
            elif self._settling and self._flush_at is None:
                self._flush_at = asyncio.get_running_loop().call_later(self._settle_delay_s, self._flush)

    async def _run(self, calls: list[_Call], settling: dict[str, list[int]], within_s: float) -> None:
        index: dict[str, int] = {}  # each key once in KEYS, named by its place (from 1)
        sent = [f"{index.setdefault(key, len(index) + 1)} {back} {used}" for key, (back, used) in settling.items()]
        args = [" ".join(sent)]
        held, held_miss = self._units_up.known, self._units_up.convert
        limits, limit_miss = self._units.known, self._units.convert
        for call in calls:
            words = []
            for ask in call.asks:
                key = index.get(ask.key)
                if key is None:
                    key = index[ask.key] = len(index) + 1
                previous = 0
                if ask.previous is not None:
                    previous = index.get(ask.previous) or 0
                    if not previous:
                        previous = index[ask.previous] = len(index) + 1
                amount = held.get(ask.amount)
                if amount is None:
                    amount = held_miss(ask.amount)
                limit: int | str = "-"
                if ask.limit is not None:
                    limit = limits.get(ask.limit) or limit_miss(ask.limit)
                ttl = "-" if ask.fresh_ttl_s is None else ask.fresh_ttl_s
                words.append(f"{key} {amount} {limit} {ttl} {previous} {ask.weight}")
            args.append(" ".join(words))
        prefix = self._prefix
        keys = [prefix + key for key in index]  # in order of their places
        self.scripts += 1
        self.calls += len(calls)
        try:
            async with asyncio.timeout(within_s):
                answer = await self._reserve(keys=keys, args=args)
        except (RedisError, OSError, TimeoutError) as exc:
            self._fail(calls, exc)
            if settling:  # the hold expires with its window; the reconciler restores `used`
                log.warning("spend counters: %d settlements were lost (%s)", len(settling), _unavailable(exc).message)
            return
        decimals: dict[bytes, Decimal] = {b"0": _ZERO}  # the calls of a batch see much the same counters
        for call, line in zip(calls, answer.split(b"\n") if calls else (), strict=True):
            verdict = _verdict(call.asks, line, decimals)
            if not call.future.done():
                call.future.set_result(verdict)
            elif verdict.held:  # its caller gave up while the script was in flight: give the hold back
                self.release(call.asks)

    @staticmethod
    def _fail(calls: list[_Call], exc: BaseException) -> None:
        for call in calls:
            if not call.future.done():
                call.future.set_exception(_unavailable(exc))

    async def _bounded(self, work: Any) -> Any:
        try:
            async with asyncio.timeout(self._timeout_s):  # no task per call, unlike wait_for
                return await work
        except (RedisError, OSError, TimeoutError) as exc:
            raise _unavailable(exc) from exc

    async def seed(self, key: str, used: Decimal, expires_at: datetime | None) -> None:
        # a time to live from the injected clock (Redis's own clock need not agree with it)
        expiry = "" if expires_at is None else str(max(1, int((expires_at - self._clock.now()).total_seconds())))
        await self._bounded(self._seed(keys=[self._key(key)], args=[to_units(used), expiry]))

    def settle(self, asks: Sequence[Ask], actual: Sequence[Decimal]) -> None:
        settling = self._settling
        held, held_miss = self._units_up.known, self._units_up.convert
        used, used_miss = self._units.known, self._units.convert
        for ask, amount in zip(asks, actual, strict=True):
            back = held.get(ask.amount)  # what the hold took off, given back
            if back is None:
                back = held_miss(ask.amount)
            units = used.get(amount)
            if units is None:
                units = used_miss(amount)
            entry = settling.get(ask.key)
            if entry is None:
                settling[ask.key] = [-back, units]
            else:
                entry[0] -= back
                entry[1] += units
        if self._flush_at is None and self._batch is None:
            self._arm()

    def release(self, asks: Sequence[Ask]) -> None:
        settling = self._settling
        for ask in asks:
            back = self._units_up.known.get(ask.amount) or self._units_up.convert(ask.amount)
            entry = settling.get(ask.key)
            if entry is None:
                settling[ask.key] = [-back, 0]
            else:
                entry[0] -= back
        if self._flush_at is None and self._batch is None:
            self._arm()

    def _arm(self) -> None:
        self._flush_at = asyncio.get_running_loop().call_later(self._settle_delay_s, self._flush)

    def _take_settlements(self) -> dict[str, list[int]]:
        settling = self._settling
        if settling:
            self._settling = {}
        if self._flush_at is not None:
            self._flush_at.cancel()
            self._flush_at = None
        return settling

    def _flush(self) -> None:
        """No call came to carry the settlements: send them on their own (after the script in flight, if any)."""
        self._flush_at = None
        if self._settling and self._batch is None:
            self._start()

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
        for _ in range(4):  # the script in flight, then the settlements left (each bounded by the timeout)
            if self._batch is not None:
                await asyncio.wait({self._batch}, timeout=self._timeout_s * 2)
            elif self._settling:
                self._start()  # it takes them (and stops the timer)
            else:
                break
        if self._flush_at is not None:
            self._flush_at.cancel()
            self._flush_at = None
        log.info("spend counters: %d reserves in %d scripts", self.calls, self.scripts)
        await self._redis.aclose()

"""Routing counts shared through Redis: per-target budgets, breaker failure counts and latency averages.

The policy counts in memory on the request path (gateway/balancing/fleet.py); this task exchanges its counts
with Redis every `interval_s` (0.1 s) in one round trip — one Lua script, atomic — and hands the fleet's figures
back to the policy:

- `{prefix}budget:<minute>`, fields `<target>|r` and `<target>|t`: `HINCRBY` of the requests and tokens this
  process took since the last exchange; answers the fleet's totals for the minute (the key expires after 2 min);
- `{prefix}failures`, field `<target>`: `HINCRBY` of the failures counted since, or `HSET` when the count
  restarted here (a success, a breaker that changed state); answers the fleet's consecutive failures;
- `{prefix}latency`, fields `<target>|ttfb` and `<target>|total`: the fleet's moving averages, each batch of
  samples folded in by the script; answers the averages.

Every exchange is bounded by `timeout_s`. Redis unreachable or slow: the policy forgets the others' counts and
each process counts alone (as without Redis); one warning when that starts and one when it ends, `up` False
meanwhile (`tollway_routing_shared` 0). A request never waits on any of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger("tollway.gateway.routing_share")

INTERVAL_S = 0.1
RETRY_S = 1.0  # after a failed exchange
STATE_TTL_S = 3600
BUDGET_TTL_S = 120

SYNC = """
local out = {}
local i = 3
while i <= #ARGV do
  local op = ARGV[i]
  if op == 'b' then
    out[#out + 1] = redis.call('HINCRBY', KEYS[tonumber(ARGV[i + 1])], ARGV[i + 2], ARGV[i + 3])
    i = i + 4
  elseif op == 'f' then
    if ARGV[i + 2] == '1' then
      redis.call('HSET', KEYS[1], ARGV[i + 1], ARGV[i + 3])
      out[#out + 1] = tonumber(ARGV[i + 3])
    else
      out[#out + 1] = redis.call('HINCRBY', KEYS[1], ARGV[i + 1], ARGV[i + 3])
    end
    i = i + 4
  else
    local n = tonumber(ARGV[i + 3])
    local value = redis.call('HGET', KEYS[2], ARGV[i + 1])
    if n > 0 then
      local mean = tonumber(ARGV[i + 4])
      if value then
        local old = tonumber(value)
        mean = old + (1 - (1 - tonumber(ARGV[i + 2])) ^ n) * (mean - old)
      end
      value = string.format('%.17g', mean)
      redis.call('HSET', KEYS[2], ARGV[i + 1], value)
    end
    out[#out + 1] = value or ''
    i = i + 5
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[1])
for k = 3, #KEYS do redis.call('EXPIRE', KEYS[k], ARGV[2]) end
return out
"""


class _Budget(Protocol):
    @property
    def label(self) -> str: ...
    @property
    def window(self) -> int: ...
    @property
    def requests(self) -> int: ...
    @property
    def tokens(self) -> int: ...


class _Failures(Protocol):
    @property
    def label(self) -> str: ...
    @property
    def restart(self) -> bool: ...
    @property
    def count(self) -> int: ...


class _Latency(Protocol):
    @property
    def label(self) -> str: ...
    @property
    def alpha(self) -> float: ...
    @property
    def ttfb_n(self) -> int: ...
    @property
    def ttfb_mean(self) -> float: ...
    @property
    def total_n(self) -> int: ...
    @property
    def total_mean(self) -> float: ...


class Exchange(Protocol):
    """What the policy hands over (tollway.gateway.balancing.fleet.Exchange)."""

    @property
    def budgets(self) -> Sequence[_Budget]: ...
    @property
    def failures(self) -> Sequence[_Failures]: ...
    @property
    def latencies(self) -> Sequence[_Latency]: ...
    def __bool__(self) -> bool: ...
    def settle(
        self,
        budgets: Sequence[tuple[int, int]],
        failures: Sequence[int],
        latencies: Sequence[tuple[float | None, float | None]],
    ) -> None: ...


class RedisRoutingSync:
    def __init__(
        self,
        url: str,
        take: Callable[[], Exchange],
        forget: Callable[[], None],
        *,
        prefix: str = "tollway:routing:",
        timeout_s: float = 0.25,
        interval_s: float = INTERVAL_S,
        retry_s: float = RETRY_S,
    ) -> None:
        self._url = url
        self._take = take
        self._forget = forget
        self._prefix = prefix
        self._timeout_s = timeout_s
        self._interval_s = interval_s
        self._retry_s = retry_s
        self._client: Redis | None = None
        self._script: Any = None
        self._task: asyncio.Task[None] | None = None
        self.up = True  # until an exchange fails
        self._failing = False
        self.exchanges_total = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="tollway-routing-sync")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._drop_client()

    async def exchange_once(self) -> bool:
        """One exchange (the task's step; tests call it directly): True when Redis answered."""
        exchange = self._take()
        if not exchange:
            return True
        keys, args = self._encode(exchange)
        try:
            if self._client is None:
                self._client = Redis.from_url(
                    self._url, socket_timeout=self._timeout_s, socket_connect_timeout=self._timeout_s
                )
                self._script = self._client.register_script(SYNC)  # EVALSHA, loaded on first use
            async with asyncio.timeout(self._timeout_s):
                answer = await self._script(keys=keys, args=args)
        except (RedisError, OSError, TimeoutError) as exc:
            await self._drop_client()
            self._down(exc)
            return False
        self._settle(exchange, answer)
        self.exchanges_total += 1
        self._back()
        return True

    async def _run(self) -> None:
        while True:
            ok = await self.exchange_once()
            await asyncio.sleep(self._interval_s if ok else self._retry_s)

    def _encode(self, exchange: Exchange) -> tuple[list[str], list[Any]]:
        prefix = self._prefix
        keys = [prefix + "failures", prefix + "latency"]
        windows: dict[int, int] = {}
        args: list[Any] = [STATE_TTL_S, BUDGET_TTL_S]
        for budget in exchange.budgets:
            index = windows.get(budget.window)
            if index is None:
                keys.append(f"{prefix}budget:{budget.window}")
                index = windows[budget.window] = len(keys)
            args += ["b", index, f"{budget.label}|r", budget.requests, "b", index, f"{budget.label}|t", budget.tokens]
        for failures in exchange.failures:
            args += ["f", failures.label, "1" if failures.restart else "0", failures.count]
        for latency in exchange.latencies:
            args += ["l", f"{latency.label}|ttfb", repr(latency.alpha), latency.ttfb_n, repr(latency.ttfb_mean)]
            args += ["l", f"{latency.label}|total", repr(latency.alpha), latency.total_n, repr(latency.total_mean)]
        return keys, args

    def _settle(self, exchange: Exchange, answer: list[Any]) -> None:
        budgets = len(exchange.budgets)
        failures = len(exchange.failures)
        counts = [int(value) for value in answer[: 2 * budgets + failures]]
        averages = [_float(value) for value in answer[2 * budgets + failures :]]
        exchange.settle(
            [(counts[2 * i], counts[2 * i + 1]) for i in range(budgets)],
            counts[2 * budgets :],
            [(averages[2 * i], averages[2 * i + 1]) for i in range(len(exchange.latencies))],
        )

    async def _drop_client(self) -> None:
        client, self._client = self._client, None
        self._script = None
        if client is not None:
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                await client.aclose()

    def _down(self, exc: BaseException) -> None:
        self.up = False
        self._forget()
        if not self._failing:
            log.warning(
                "routing state: Redis unreachable, each gateway keeps its own budgets, failure counts and latency"
                " averages meanwhile: %r",
                exc,
            )
        self._failing = True

    def _back(self) -> None:
        self.up = True
        if self._failing:
            log.warning("routing state: budgets, failure counts and latency averages shared through Redis again")
        self._failing = False


def _float(value: Any) -> float | None:
    text = value.decode() if isinstance(value, bytes) else str(value)
    return float(text) if text else None

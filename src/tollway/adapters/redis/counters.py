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

Exactly once: a script that settles or reserves is named by a marker key (`{prefix}settled:<pid>-<random>:<n>`).
When its answer does not come (timeout, connection cut, or a reply lost after it ran), nobody knows whether it
ran, so it is kept and resolved by every following script until one is answered: the Lua sets the marker with
NX; if that succeeds the script never ran and its settlements are applied now (a late copy then finds the
marker and does nothing); if not, it ran, and the holds it granted its failed callers are given back. The
settlements queued meanwhile wait (merged per key) until the script carrying settlements is resolved, so at
most one unresolved script carries settlements; the others carry only calls and are capped (`max_unanswered`:
beyond it the newest is dropped, logged: during an outage the later scripts never reach Redis, the first may
have). One that stays unresolved for half the marker's time to live (`marker_ttl_s`, an hour) is dropped,
logged: resolving it later could apply it twice. An answered script's marker is deleted by the next script.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import Sequence
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from tollway.adapters.redis.counters_lua import RAISE, RESERVE, SEED
from tollway.clock import Clock
from tollway.spend.ports import Ask, Counter, CountersUnavailable, Reserved

log = logging.getLogger("tollway.spend")
SCALE = Decimal(10) ** 9  # amounts are stored in billionths
_NANO = Decimal(1)
_ZERO = Decimal(0)


def to_units(amount: Decimal, *, up: bool = False) -> int:
    """An amount in billionths: a hold rounds up (never under-reserves), a settlement to the nearest."""
    return int((amount * SCALE).quantize(_NANO, rounding=ROUND_CEILING if up else ROUND_HALF_UP))


def from_units(units: Any) -> Decimal:
    text = units.decode() if isinstance(units, bytes) else str(units)
    return (Decimal(text) / SCALE).normalize() if text not in ("0", "") else _ZERO


def _unavailable(exc: BaseException) -> CountersUnavailable:
    return CountersUnavailable(f"Redis did not answer: {exc.__class__.__name__}")


def _settlements(index: dict[str, int], settling: dict[str, list[int]]) -> str:
    return " ".join(f"{index.setdefault(key, len(index) + 1)} {back} {used}" for key, (back, used) in settling.items())


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


class _Unanswered:
    """A script whose answer never came (timeout, connection cut): it may or may not have run. It is re-sent with
    every following script until one is answered; the Lua resolves it exactly once by its marker."""

    __slots__ = ("at", "calls", "marker", "settling")

    def __init__(
        self, marker: str, settling: dict[str, list[int]], calls: list[list[tuple[str, int]]], at: float
    ) -> None:
        self.marker = marker  # unprefixed key
        self.settling = settling  # what it carried: per key [held given back (negative), used]
        self.calls = calls  # per call it carried: (key, units) of each ask it would have held
        self.at = at


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
        marker_ttl_s: int = 3600,
        max_unanswered: int = 256,
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
        # exactly-once settlements: each script that settles or reserves is named by a marker key
        self._token = f"{os.getpid()}-{secrets.token_hex(4)}"
        self._serial = 0
        self._marker_ttl_s = marker_ttl_s
        self._unanswered: list[_Unanswered] = []  # oldest first; re-sent until a script is answered
        self._max_unanswered = max_unanswered
        self.dropped = 0  # unanswered scripts given up on (logged): their effect on `r` may be lost
        self._answered: list[str] = []  # markers of answered scripts: the next script deletes them
        self._retry_s = settle_delay_s  # the delay before re-sending unanswered scripts (doubles, up to 1 s)

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

    def reserve_now(self, asks: Sequence[Ask]) -> None:
        return None  # always a script in Redis: `reserve`

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
            if calls or settling or self._unanswered:
                within_s = calls[0].deadline - now if calls else self._timeout_s
                await self._run(calls, settling, within_s, now)
        except BaseException as exc:  # never leave a caller waiting for an answer that will not come
            self._fail(calls, exc)
            if not isinstance(exc, Exception):
                raise
            log.error("spend counters: a batch failed (%r)", exc)
        finally:
            self._batch = None
            if self._waiting:
                self._start()
            elif (self._settling or self._unanswered) and self._flush_at is None:
                delay = self._retry_s if self._unanswered else self._settle_delay_s
                self._flush_at = asyncio.get_running_loop().call_later(delay, self._flush)

    async def _run(self, calls: list[_Call], settling: dict[str, list[int]], within_s: float, now: float) -> None:
        index: dict[str, int] = {}  # each key once in KEYS, named by its place (from 1)
        marker = None
        if calls or settling:
            self._serial += 1
            marker = f"settled:{self._token}:{self._serial}"
        resent, answered = self._resend(now), self._answered[:]
        head = [str(index.setdefault(marker, 1)) if marker else "0", str(self._marker_ttl_s)]
        head += [str(index.setdefault(key, len(index) + 1)) for key in answered]
        lines = []
        for old in resent:
            parts = [str(index.setdefault(old.marker, len(index) + 1)), _settlements(index, old.settling)]
            parts += [" ".join(f"{index.setdefault(k, len(index) + 1)} {units}" for k, units in c) for c in old.calls]
            lines.append("|".join(parts))
        args = [" ".join(head), _settlements(index, settling), "\n".join(lines)]
        holds: list[list[tuple[str, int]]] = []  # what each call would hold, should the answer not come
        held, held_miss = self._units_up.known, self._units_up.convert
        limits, limit_miss = self._units.known, self._units.convert
        for call in calls:
            words = []
            held_units: list[tuple[str, int]] = []
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
                held_units.append((ask.key, amount))
            args.append(" ".join(words))
            holds.append(held_units)
        prefix = self._prefix
        keys = [prefix + key for key in index]  # in order of their places
        self.scripts += 1
        self.calls += len(calls)
        try:
            async with asyncio.timeout(within_s):
                answer = await self._reserve(keys=keys, args=args)
            if answer == b"void":  # cannot happen: only a script its sender gave up on is void
                raise RedisError("the script was voided")
        except (RedisError, OSError, TimeoutError) as exc:
            self._fail(calls, exc)
            self._retry_s = min(1.0, self._retry_s * 2)
            if marker is not None:
                self._keep(_Unanswered(marker, settling, holds, now), exc)
            return
        self._retry_s = self._settle_delay_s
        if resent:
            done = {id(old) for old in resent}
            self._unanswered = [old for old in self._unanswered if id(old) not in done]
        del self._answered[: len(answered)]
        if marker is not None:
            self._answered.append(marker)
        decimals: dict[bytes, Decimal] = {b"0": _ZERO}  # the calls of a batch see much the same counters
        for call, line in zip(calls, answer.split(b"\n") if calls else (), strict=True):
            verdict = _verdict(call.asks, line, decimals)
            if not call.future.done():
                call.future.set_result(verdict)
            elif verdict.held:  # its caller gave up while the script was in flight: give the hold back
                self.release(call.asks)

    def _resend(self, now: float) -> list[_Unanswered]:
        """The unanswered scripts to resolve: all of them, less those too old to resolve safely (their marker may
        have expired: resolving one again could apply its settlements twice)."""
        old = [u for u in self._unanswered if now - u.at > self._marker_ttl_s / 2]
        if old:
            self._unanswered = [u for u in self._unanswered if now - u.at <= self._marker_ttl_s / 2]
            self.dropped += len(old)
            log.error(
                "spend counters: %d unanswered scripts dropped after %d s unresolved; their holds may stay held "
                "until their counters expire, `used` is restored by the reconciler",
                len(old),
                self._marker_ttl_s // 2,
            )
        return self._unanswered[:]

    def _keep(self, script: _Unanswered, exc: BaseException) -> None:
        """Queue a failed script for resolution. Full: the newest is dropped, not the oldest, which is the one
        most likely to have run (an outage's first failure; the later ones were refused before they reached
        Redis), and which carries the settlements held back since."""
        if len(self._unanswered) < self._max_unanswered or script.settling:  # at most one carries settlements
            self._unanswered.append(script)
            log.warning(
                "spend counters: a script got no answer (%s); it is resolved by the next one (%d waiting)",
                _unavailable(exc).message,
                len(self._unanswered),
            )
            return
        self.dropped += 1
        log.error(
            "spend counters: %d scripts wait to be resolved: one more (%d calls) dropped; holds it may have "
            "granted stay until their counters expire",
            len(self._unanswered),
            len(script.calls),
        )

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
        """The settlements for the next script; none while an unanswered script that carried some waits (at most
        one unresolved script carries settlements: a long outage queues calls, not ever more settlements)."""
        settling = self._settling
        if settling and any(old.settling for old in self._unanswered):
            settling = {}
        elif settling:
            self._settling = {}
        if self._flush_at is not None:
            self._flush_at.cancel()
            self._flush_at = None
        return settling

    def _flush(self) -> None:
        """No call came to carry the settlements: send them on their own (after the script in flight, if any)."""
        self._flush_at = None
        if (self._settling or self._unanswered) and self._batch is None:
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
            elif self._settling or self._unanswered:
                self._start()  # it takes them (and stops the timer)
            else:
                break
        if self._flush_at is not None:
            self._flush_at.cancel()
            self._flush_at = None
        log.info("spend counters: %d reserves in %d scripts", self.calls, self.scripts)
        await self._redis.aclose()

"""Spend counters in this process's memory (one process enforces its limits alone; see docs/spend-control.md)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from tollway.clock import Clock
from tollway.spend.ports import Ask, Counter, Reserved
from tollway.spend.rate_limits import WEIGHT_SCALE

_ZERO = Decimal(0)


@dataclass(slots=True)
class _Entry:
    used: Decimal
    reserved: Decimal
    expires_at: datetime | None


class MemoryCounterStore:
    """Every operation runs without an await point, so on one event loop each is atomic."""

    def __init__(self, clock: Clock, *, max_keys: int = 1_000_000) -> None:
        self._clock = clock
        self._max = max_keys
        self._counters: dict[str, _Entry] = {}

    async def reserve(self, asks: Sequence[Ask]) -> Reserved:
        return self.reserve_now(asks)

    def reserve_now(self, asks: Sequence[Ask]) -> Reserved:
        # one pass: each ask's counter (a rate counter nobody holds yet starts fresh, added only once held), what
        # it held before, and the tightest limit without room; then either nothing is held or every ask is
        get = self._counters.get
        entries: list[_Entry] = []
        before: list[Counter] = []
        missing: list[str] | None = None
        fresh: list[tuple[str, _Entry]] | None = None
        refused: int | None = None
        tightest = _ZERO
        for ask in asks:
            entry = get(ask.key)
            if entry is None:
                if ask.fresh_ttl_s is None:
                    if missing is None:
                        missing = []
                    missing.append(ask.key)
                    continue
                entry = self._fresh(ask)
                if fresh is None:
                    fresh = []
                fresh.append((ask.key, entry))
            if missing is not None:
                continue
            entries.append(entry)
            used = entry.used
            reserved = entry.reserved
            previous = _ZERO
            if ask.previous is not None:
                earlier = get(ask.previous)
                if earlier is not None:
                    previous = earlier.used + earlier.reserved
            before.append(Counter(used, reserved, previous))
            limit = ask.limit
            if limit is None:
                continue
            if previous:
                room = limit - (used + reserved + previous * ask.weight / WEIGHT_SCALE)
            else:
                room = limit - (used + reserved)  # the tightest limit (least room) is the one named
            if ask.amount > room and (refused is None or room < tightest):
                refused, tightest = len(before) - 1, room
        if missing is not None:
            return Reserved(False, tuple(missing))
        if refused is not None:
            return Reserved(False, (), refused, tuple(before))
        for ask, entry in zip(asks, entries, strict=True):
            entry.reserved += ask.amount
        if fresh is not None:
            for key, entry in fresh:
                self._add(key, entry)
        return Reserved(True, (), None, tuple(before))

    def _fresh(self, ask: Ask) -> _Entry:
        assert ask.fresh_ttl_s is not None
        return _Entry(_ZERO, _ZERO, self._clock.now() + timedelta(seconds=ask.fresh_ttl_s))

    def _add(self, key: str, entry: _Entry) -> None:
        if len(self._counters) >= self._max:
            self._forget_expired()
        self._counters[key] = entry

    async def seed(self, key: str, used: Decimal, expires_at: datetime | None) -> None:
        if key in self._counters:
            return
        self._add(key, _Entry(used, _ZERO, expires_at))

    def settle(self, asks: Sequence[Ask], actual: Sequence[Decimal]) -> None:
        counters = self._counters
        for ask, amount in zip(asks, actual, strict=True):
            entry = counters.get(ask.key)
            if entry is not None:
                entry.used += amount
                left = entry.reserved - ask.amount
                entry.reserved = left if left > 0 else _ZERO

    def release(self, asks: Sequence[Ask]) -> None:
        counters = self._counters
        for ask in asks:
            entry = counters.get(ask.key)
            if entry is not None:
                left = entry.reserved - ask.amount
                entry.reserved = left if left > 0 else _ZERO

    async def read(self, keys: Sequence[str]) -> list[Counter | None]:
        entries = [self._counters.get(key) for key in keys]
        return [None if entry is None else Counter(entry.used, entry.reserved) for entry in entries]

    async def raise_used(self, key: str, used: Decimal) -> None:
        entry = self._counters.get(key)
        if entry is not None and used > entry.used:
            entry.used = used

    async def close(self) -> None:
        self._counters.clear()

    def _forget_expired(self) -> None:
        now = self._clock.now()
        for key in [k for k, e in self._counters.items() if e.expires_at is not None and e.expires_at <= now]:
            del self._counters[key]

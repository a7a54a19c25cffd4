"""The counter store: per limit and window, the metered usage so far (`used`) and what admitted calls hold.

One counter per key (a limit's entity and window). `reserve` is atomic over all the asks of one request:
either every hard ask fits (used + reserved + amount <= limit) and all are held, or nothing is held.
A rate limit's counter starts at 0 (`fresh_ttl_s`); a sliding window's ask also counts the previous
bucket's counter at a weight (`previous`, `weight`). A key nobody seeded yet is not guessed at: `reserve`
names it in `missing`, the caller seeds it from the metered usage (set-if-absent: a second seeding of the
same window changes nothing) and asks again.
`settle` and `release` never block the request: an adapter may finish them in the background.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from tollway.errors import UnavailableError
from tollway.spend.budgets import Budget
from tollway.spend.rate_limits import RateLimit


# built per call, never changed after: not frozen (a frozen __init__ costs a setattr per field)
@dataclass(slots=True, unsafe_hash=True)
class Ask:
    """Hold `amount` on counter `key`; refuse when `limit` is set and it would not fit."""

    key: str
    amount: Decimal
    limit: Decimal | None  # None: counted, never refused (a soft limit)
    expires_at: datetime | None  # when the counter may be forgotten (after its window); None: never
    # a rate limit's counter: it starts at 0 (never `missing`, nothing to seed) and lives `fresh_ttl_s` seconds
    fresh_ttl_s: int | None = None
    # a sliding window: the previous bucket's counter, counted at `weight` millionths of what it holds
    previous: str | None = None
    weight: int = 0


# built per call, never changed after: not frozen (a frozen __init__ costs a setattr per field)
@dataclass(slots=True, unsafe_hash=True)
class Counter:
    used: Decimal
    reserved: Decimal
    previous: Decimal = Decimal(0)  # a sliding window's previous bucket (used + reserved), unweighted


# built per call, never changed after: not frozen (a frozen __init__ costs a setattr per field)
@dataclass(slots=True, unsafe_hash=True)
class Reserved:
    """The outcome of `reserve`. held: everything was held. Else `missing` names unseeded keys, or
    `refused` is the index of the ask that did not fit with the least room left: the tightest limit
    (nothing held either way).
    `counters`: each ask's counter as it stood before this request (for remaining-balance headers)."""

    held: bool
    missing: tuple[str, ...] = ()
    refused: int | None = None
    counters: tuple[Counter, ...] = ()


class CounterStore(Protocol):
    async def reserve(self, asks: Sequence[Ask]) -> Reserved: ...

    def reserve_now(self, asks: Sequence[Ask]) -> Reserved | None:
        """`reserve` answered without an await where the store can (in this process's memory: the same outcome as
        `reserve`); None, holding nothing, where it must await (then call `reserve`)."""
        ...

    async def seed(self, key: str, used: Decimal, expires_at: datetime | None) -> None:
        """Set the counter's used amount if the key does not exist yet (set-if-absent)."""
        ...

    def settle(self, asks: Sequence[Ask], actual: Sequence[Decimal]) -> None:
        """The held amounts become the call's metered amounts (reserved -= ask, used += actual)."""
        ...

    def release(self, asks: Sequence[Ask]) -> None:
        """Drop the held amounts (reserved -= ask)."""
        ...

    async def read(self, keys: Sequence[str]) -> list[Counter | None]: ...

    async def raise_used(self, key: str, used: Decimal) -> None:
        """Reconcile: used = max(used, metered) for a seeded key (the store saw usage this process did not)."""
        ...

    async def close(self) -> None: ...


class BudgetStore(Protocol):
    """Budgets, unique by key. Every write moves `version` (the gateway rebuilds its limits when it moves)."""

    async def insert_budget(self, budget: Budget) -> None:
        """ConflictError (field "key") when the key is taken."""
        ...

    async def update_budget(self, budget: Budget) -> None:
        """NotFoundError when no budget has its id."""
        ...

    async def delete_budget(self, budget_id: str) -> bool: ...

    async def get_budget(self, id_or_key: str) -> Budget | None: ...

    async def list_budgets(self) -> list[Budget]: ...

    async def budgets_version(self) -> int: ...


class RateLimitStore(Protocol):
    """Rate limits, unique by key; every write moves the same version as the budgets'."""

    async def insert_rate_limit(self, limit: RateLimit) -> None: ...

    async def update_rate_limit(self, limit: RateLimit) -> None: ...

    async def delete_rate_limit(self, limit_id: str) -> bool: ...

    async def get_rate_limit(self, id_or_key: str) -> RateLimit | None: ...

    async def list_rate_limits(self) -> list[RateLimit]: ...


class SpendLimitStore(BudgetStore, RateLimitStore, Protocol):
    """Where budgets and rate limits are kept (one version for both)."""


class CountersUnavailable(UnavailableError):
    """The counter store did not answer in time (Redis down or slow)."""

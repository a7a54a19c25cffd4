"""Failover and timeout settings of one target, resolved from the config, and the backoff between tries.

Every setting is read from the most specific level that sets it: the model's target, then the model,
then the provider, then the built-in default (docs/configuration.md, "Retries and timeouts").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from random import Random
from typing import Protocol, TypeVar

from tollway.config.resilience import RetryConfig, TimeoutsConfig

DEFAULT_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
DEFAULT_BACKOFF_INITIAL_S = 0.1
DEFAULT_BACKOFF_MAX_S = 2.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When and how often a request is tried again before the first byte reached its client.

    max_attempts None: each target once. deadline_s None: no overall deadline beyond the timeouts.
    """

    statuses: frozenset[int] = DEFAULT_RETRY_STATUSES
    max_attempts: int | None = None
    backoff_initial_s: float = DEFAULT_BACKOFF_INITIAL_S
    backoff_max_s: float = DEFAULT_BACKOFF_MAX_S
    deadline_s: float | None = None

    def backoff_s(self, repeat: int, rng: Random) -> float:
        """The wait before the `repeat`-th (1, 2, ...) try of a target this request already tried:
        capped exponential, with half of it jittered (so two gateways do not retry in step)."""
        capped = min(self.backoff_max_s, self.backoff_initial_s * 2.0 ** (repeat - 1))
        return capped / 2 + rng.random() * capped / 2


@dataclass(frozen=True, slots=True)
class Timeouts:
    """A target's timeouts in seconds; None: none of that kind (connect_s / idle_s: the provider's own).

    connect_s: opening the connection. first_byte_s: from sending the request to the upstream's first
    byte (the response head; for a stream also its first chunk). idle_s: the longest silence while
    reading. total_s: a whole unary try, head and body (a stream has none).
    """

    connect_s: float | None = None
    first_byte_s: float | None = None
    idle_s: float | None = None
    total_s: float | None = None
    # whether this target sets its own connect or idle timeout (else its provider's apply); read per request
    transport: bool = field(init=False, default=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "transport", self.connect_s is not None or self.idle_s is not None)


DEFAULT_RETRY = RetryPolicy()
NO_TIMEOUTS = Timeouts()

T = TypeVar("T")


class _Levels(Protocol):
    """A model or one of its targets, as configured."""

    @property
    def retry(self) -> RetryConfig | None: ...

    @property
    def timeouts(self) -> TimeoutsConfig | None: ...


class _ProviderLevels(_Levels, Protocol):
    @property
    def timeout_s(self) -> float | None: ...


def _first(*values: T | None) -> T | None:
    for value in values:
        if value is not None:
            return value
    return None


def resolve_retry(levels: Sequence[RetryConfig | None]) -> RetryPolicy:
    """The retry policy from configs ordered most specific first (target, model, provider)."""
    found = [level for level in levels if level is not None]
    if not found:
        return DEFAULT_RETRY
    statuses = _first(*(level.statuses for level in found))
    initial_ms = _first(*(level.backoff_initial_ms for level in found))
    max_ms = _first(*(level.backoff_max_ms for level in found))
    return RetryPolicy(
        statuses=DEFAULT_RETRY_STATUSES if statuses is None else frozenset(statuses),
        max_attempts=_first(*(level.max_attempts for level in found)),
        backoff_initial_s=DEFAULT_BACKOFF_INITIAL_S if initial_ms is None else initial_ms / 1000,
        backoff_max_s=DEFAULT_BACKOFF_MAX_S if max_ms is None else max_ms / 1000,
        deadline_s=_first(*(level.deadline_s for level in found)),
    )


def resolve_timeouts(
    target: TimeoutsConfig | None,
    model: TimeoutsConfig | None,
    provider: TimeoutsConfig | None,
    provider_timeout_s: float | None,
) -> Timeouts:
    """A target's timeouts. Connect and idle timeouts set on the provider are its connection pool's own
    (the provider applies them); only a target's or model's own are carried per request. A provider's
    `timeout_s` is the total of a unary try when `timeouts.total_s` is not set anywhere."""
    own = [level for level in (target, model) if level is not None]
    every = [*own, *([provider] if provider is not None else [])]
    if not every and provider_timeout_s is None:
        return NO_TIMEOUTS
    return Timeouts(
        connect_s=_first(*(level.connect_s for level in own)),
        first_byte_s=_first(*(level.first_byte_s for level in every)),
        idle_s=_first(*(level.idle_s for level in own)),
        total_s=_first(*(level.total_s for level in every), provider_timeout_s),
    )


def retry_after_s(value: str | None, now: datetime) -> float | None:
    """Seconds from an HTTP Retry-After header (delay-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if seconds >= 0 and seconds == seconds and seconds != float("inf") else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())


def target_resilience(target: _Levels, model: _Levels, provider: _ProviderLevels) -> tuple[RetryPolicy, Timeouts]:
    """A configured target's retry policy and timeouts (target, then model, then provider settings)."""
    retry = resolve_retry((target.retry, model.retry, provider.retry))
    timeouts = resolve_timeouts(target.timeouts, model.timeouts, provider.timeouts, provider.timeout_s)
    return retry, timeouts

"""Failover and timeout settings of one target, and the backoff between tries.

The composition root resolves each target's from the config file (tollway.config.resilience: every setting is
read from the most specific level that sets it, the model's target, then the model, then the provider, then the
built-in default here; docs/configuration.md, "Retries and timeouts").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from random import Random

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

"""Rate limits: requests, tokens or cost per minute, hour or day, or requests in flight, as a sliding window.

A rate limit is on a scope: every `consumer`, `key` (an API key managed through the API, by its id),
`customer` (all its subjects' calls together) or `model` (every caller's calls of the model, by the name
clients use); `target` names one of them, or `*` for each of them separately.

The window slides: two fixed buckets of the window's length, the previous one weighted by how much of it
still lies inside the window (the sliding-window counter), so a burst at a bucket's end cannot double the
rate. `in_flight` counts the calls admitted and not yet finished.

Pure: the model, its validation, and the arithmetic of the sliding window (what is counted now, when the
next call fits, when the window is empty again).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_CEILING, Decimal
from typing import Literal, get_args

from tollway.errors import ValidationError
from tollway.money import parse_decimal
from tollway.spend.budgets import OnRedisFailure, check_on_redis_failure

RateScope = Literal["consumer", "key", "customer", "model"]
RateMetric = Literal["requests", "tokens", "input_tokens", "output_tokens", "cost", "in_flight"]
RateWindow = Literal["minute", "hour", "day"]
RATE_SCOPES: tuple[RateScope, ...] = get_args(RateScope)
RATE_METRICS: tuple[RateMetric, ...] = get_args(RateMetric)
RATE_WINDOWS: tuple[RateWindow, ...] = get_args(RateWindow)
WINDOW_SECONDS: dict[str, int] = {"minute": 60, "hour": 3600, "day": 86400}
EACH = "*"  # target: each consumer (key, customer, model) separately
KEY = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
WEIGHT_SCALE = 1_000_000  # the previous bucket's weight, in millionths
IN_FLIGHT_TTL_S = 3600  # a process that died with calls in flight: its count is forgotten after an idle hour
METRIC_TEXT = {
    "requests": "requests",
    "tokens": "tokens",
    "input_tokens": "input tokens",
    "output_tokens": "output tokens",
    "cost": "cost",
    "in_flight": "requests in flight",
}


@dataclass(frozen=True)
class RateLimit:
    id: str
    key: str
    scope: RateScope
    target: str  # the consumer's username, the key's id, the customer's key, the model's name, or "*"
    metric: RateMetric
    limit: Decimal  # a whole number, except for cost (money in the customer's currency, USD without a plan)
    window: RateWindow | None = "minute"  # None for in_flight
    name: str = ""
    managed_by: str = "api"  # api | config
    created_at: datetime | None = None
    updated_at: datetime | None = None
    on_redis_failure: OnRedisFailure | None = None  # Redis unreachable: open, closed, or None (the default)

    @property
    def window_s(self) -> int:
        return WINDOW_SECONDS[self.window] if self.window is not None else 0


def check_rate_limit(limit: RateLimit) -> RateLimit:
    """The rate limit, or a ValidationError naming the first bad field (API spelling)."""
    if not isinstance(limit.key, str) or not KEY.match(limit.key):
        raise ValidationError("key must be 1-64 of a-z, 0-9, '_' and '-', starting with a letter or digit", field="key")
    if limit.scope not in RATE_SCOPES:
        raise ValidationError(f"scope must be one of {', '.join(RATE_SCOPES)}", field="scope")
    if not isinstance(limit.target, str) or not limit.target or len(limit.target) > 255:
        raise ValidationError(
            "target must name the consumer (username), API key (id), customer (key) or model, or be '*' (each)",
            field="target",
        )
    if limit.metric not in RATE_METRICS:
        raise ValidationError(f"metric must be one of {', '.join(RATE_METRICS)}", field="metric")
    if limit.metric == "in_flight":
        if limit.window is not None:
            raise ValidationError("an in_flight limit has no window", field="window")
    elif limit.window not in RATE_WINDOWS:
        raise ValidationError(f"window must be one of {', '.join(RATE_WINDOWS)}", field="window")
    amount = parse_decimal(limit.limit, field="limit")
    if amount <= 0:
        raise ValidationError("limit must be > 0", field="limit")
    if limit.metric != "cost" and amount != amount.to_integral_value():
        raise ValidationError(f"a {limit.metric} limit is a whole number", field="limit")
    check_on_redis_failure(limit.on_redis_failure)
    return limit


# -- the sliding window ---------------------------------------------------------------------------------


# built per call, never changed after: not frozen (a frozen __init__ costs a setattr per field)
@dataclass(slots=True, unsafe_hash=True)
class Slide:
    """Where a moment falls in a window of `length_s`: its bucket, how far into it, the previous bucket's weight."""

    bucket: int
    into_us: int
    length_us: int
    weight: int  # in millionths: the share of the previous bucket still inside the window (rounded down)

    @property
    def left_s(self) -> Decimal:
        """Seconds until the current bucket ends."""
        return Decimal(self.length_us - self.into_us) / 1_000_000


def slide_at(at: datetime, length_s: int) -> Slide:
    since = at - EPOCH  # whole microseconds since the epoch (dividing by a timedelta costs twice this)
    micros = (since.days * 86_400 + since.seconds) * 1_000_000 + since.microseconds
    length = length_s * 1_000_000
    bucket, into = divmod(micros, length)
    weight = (length - into) * WEIGHT_SCALE // length
    return Slide(bucket, into, length, weight)


def counted(previous: Decimal, current: Decimal, weight: int) -> Decimal:
    """What the window counts now: the previous bucket weighted, plus the current one."""
    return previous * weight / WEIGHT_SCALE + current


def wait_s(previous: Decimal, current: Decimal, amount: Decimal, limit: Decimal, slide: Slide) -> int:
    """Whole seconds (at least 1) until `amount` more would fit, with no other call meanwhile."""
    length = Decimal(slide.length_us)
    into = Decimal(slide.into_us)
    if current + amount <= limit:  # fits within this bucket once enough of the previous one slides out
        if previous <= 0:
            return 1
        need = length * (1 - (limit - current - amount) / previous) - into
    elif amount > limit:  # never fits: the window's full length
        need = 2 * length - into
    else:  # the next bucket, once enough of this one (then the previous) slides out
        need = length - into + (length * (1 - (limit - amount) / current) if current > 0 else Decimal(0))
    return max(1, int((need / 1_000_000).to_integral_value(rounding=ROUND_CEILING)))


def openai_duration(micros: int) -> str:
    """OpenAI's reset format for a duration in microseconds: "1s", "6m0s", "1h2m3s", "20ms" (rounded up)."""
    if micros <= 0:
        return "0s"
    if micros < 1_000_000:
        return f"{-(-micros // 1000)}ms"
    whole = -(-micros // 1_000_000)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"

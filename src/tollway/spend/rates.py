"""The rate limits in force on one call, each as a `Governed` (pure): a sliding-window counter per limit, entity
and bucket, or the calls in flight; and the headers that tell a caller where it stands (OpenAI's
`x-ratelimit-*`, Anthropic's `anthropic-ratelimit-*`).

A rate counter starts at 0 (nothing is seeded: the event store keeps no per-minute totals) and lives two
windows. Token and cost limits hold the call's worst case at admission and settle to its usage, like budgets;
a request limit holds 1 and counts it once the call is settled (a call that fails before any upstream answer,
or is cancelled, is not counted); an in-flight limit holds 1 until the call ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal

from tollway.metering.llm import LlmCall
from tollway.money import decimal_text
from tollway.spend.limits import Amount, Governed, worst
from tollway.spend.ports import Ask, Counter
from tollway.spend.rate_limits import (
    IN_FLIGHT_TTL_S,
    METRIC_TEXT,
    WEIGHT_SCALE,
    RateLimit,
    Slide,
    counted,
    openai_duration,
    slide_at,
    wait_s,
)
from tollway.spend.windows import Window

_ZERO = Decimal(0)
_ONE = Decimal(1)
# metric, limit, whole units remaining, microseconds until the window is empty, its header values spelt once (if kept)
Standing = tuple[str, Decimal, int, int, "RateText | None"]
PER = {"minute": "per minute", "hour": "per hour", "day": "per day"}


def _requests(call: LlmCall) -> Decimal:
    return _ONE


def _nothing(call: LlmCall) -> Decimal:
    return _ZERO


def _tokens(call: LlmCall) -> Decimal:
    return _ZERO if call.usage is None else Decimal(call.usage.total)


def _input_tokens(call: LlmCall) -> Decimal:
    return _ZERO if call.usage is None else Decimal(call.usage.total - call.usage.output)


def _output_tokens(call: LlmCall) -> Decimal:
    return _ZERO if call.usage is None else Decimal(call.usage.output)


MEASURES: dict[str, Amount] = {
    "requests": _requests,
    "in_flight": _nothing,
    "tokens": _tokens,
    "input_tokens": _input_tokens,
    "output_tokens": _output_tokens,
}


async def _unmetered(at: datetime) -> Decimal:  # rate counters start at 0: nothing to seed or reconcile from
    return _ZERO


def rate_governed(
    rate: RateLimit,
    entity: str,
    who: str,
    cost_of: Amount | None,
    events: Sequence[LlmCall],
    now: datetime,
    *,
    amount: Decimal | None = None,
) -> Governed | None:
    """The rate limit on this call (`entity`: the consumer, key, customer or model it counts), or None for a cost
    limit when the call cannot be priced. `amount`: the call's worst case on it, when already measured."""
    amount_of = cost_of if rate.metric == "cost" else MEASURES[rate.metric]
    if amount_of is None:
        return None
    base = f"rl:{rate.id}:{entity}"
    label = f"the {METRIC_TEXT[rate.metric]} rate limit '{rate.key}' of {who}"
    if rate.metric == "in_flight":
        return Governed(
            ask=Ask(base, _ONE, rate.limit, None, fresh_ttl_s=IN_FLIGHT_TTL_S),
            amount_of=amount_of,
            metered=_unmetered,
            window=Window(now, None),
            counted_from=now,
            name=f"rate:{rate.key}",
            what=label,
            per="at once",
            rate=rate,
        )
    slide = slide_at(now, rate.window_s)
    if rate.metric == "requests":
        amount = _ONE
    elif amount is None:
        amount = worst(amount_of, events)
    length = timedelta(seconds=rate.window_s)
    end = now + timedelta(microseconds=slide.length_us - slide.into_us)
    return Governed(
        ask=Ask(
            f"{base}:{slide.bucket}",
            amount,
            rate.limit,
            None,
            fresh_ttl_s=2 * rate.window_s + 60,
            previous=f"{base}:{slide.bucket - 1}",
            weight=slide.weight,
        ),
        amount_of=amount_of,
        metered=_unmetered,
        window=Window(end - length, end),
        counted_from=end - 2 * length,
        name=f"rate:{rate.key}",
        what=label,
        per=PER[rate.window or "minute"],
        rate=rate,
        slide=slide,
    )


def rate_refusal_text(governed: Governed, counter: Counter, now: datetime) -> tuple[str, int, datetime]:
    """A rate limit's refusal: the message, Retry-After (seconds) and when the call would fit."""
    rate, ask = governed.rate, governed.ask
    assert rate is not None
    limit = decimal_text(rate.limit)
    if governed.slide is None:  # in flight
        return (
            f"Rate limit reached: {governed.what} allows {limit} at once; {decimal_text(counter.reserved)} "
            "in flight. Try again when one of them has finished.",
            1,
            now + timedelta(seconds=1),
        )
    slide = governed.slide
    current = counter.used + counter.reserved
    wait = wait_s(counter.previous, current, ask.amount, rate.limit, slide)
    at = now + timedelta(seconds=wait)
    window = rate.window or "minute"
    held = f" ({decimal_text(counter.reserved)} held by calls in flight)" if counter.reserved else ""
    count = counted(counter.previous, current, slide.weight).quantize(Decimal("0.0001"), rounding=ROUND_FLOOR)
    text = (
        f"Rate limit reached: {governed.what} allows {limit} {governed.per} (a sliding window); "
        f"{decimal_text(count.normalize())} counted in the last {window}{held}, and this request needs "
        f"{decimal_text(ask.amount)}. Try again in {wait}s (at {at.strftime('%Y-%m-%dT%H:%M:%SZ')})."
    )
    return text, wait, at


# -- headers ------------------------------------------------------------------------------------------------

TOKEN_METRICS = ("tokens", "input_tokens", "output_tokens")


class RateText:
    """A rate limit's header values spelt once: its limit, and its reset in OpenAI's format, rendered again only when
    the whole second it rounds up to moves (a compiled plan keeps one per rate limit)."""

    __slots__ = ("_reset", "_second", "limit")

    def __init__(self, limit: Decimal) -> None:
        self.limit = b"%d" % int(limit)
        self._second = -1
        self._reset = b""

    def reset(self, micros: int) -> bytes:
        if micros < 1_000_000:  # milliseconds: not kept
            return openai_duration(micros).encode()
        whole = -(-micros // 1_000_000)  # what openai_duration reads of a duration of a second or more
        if whole != self._second:
            self._reset, self._second = openai_duration(micros).encode(), whole
        return self._reset


def standing(
    rate: RateLimit | None, slide: Slide | None, before: Counter, spent: Decimal, text: RateText | None = None
) -> Standing | None:
    """(metric, limit, remaining, microseconds until the window is empty) of a sliding rate limit (`slide`: where
    now falls in it) after this call, which counts `spent` on it; None for other limits."""
    if rate is None or slide is None or rate.metric == "cost":
        return None
    current = before.used + before.reserved + spent
    previous = before.previous
    left = rate.limit - (previous * slide.weight / WEIGHT_SCALE + current if previous else current)
    remaining = int(left) if left > 0 else 0  # whole units left (int() of a positive decimal rounds down)
    if current > 0:  # the window is empty again once this bucket and then the next have slid out
        empty_us = 2 * slide.length_us - slide.into_us
    else:
        empty_us = slide.length_us - slide.into_us if previous > 0 else 0
    return rate.metric, rate.limit, remaining, empty_us, text


def _header_names(family: str, group: str) -> tuple[bytes, bytes, bytes]:
    if family == "anthropic":
        prefix = f"anthropic-ratelimit-{group}-"
        return (prefix + "limit").encode(), (prefix + "remaining").encode(), (prefix + "reset").encode()
    limit, remaining, reset = (f"x-ratelimit-{part}-{group}".encode() for part in ("limit", "remaining", "reset"))
    return limit, remaining, reset


# (family, group) -> the names of its three headers, spelt once
HEADER_NAMES = {
    (family, group): _header_names(family, group)
    for family in ("openai", "anthropic")
    for group in ("requests", "tokens", "input-tokens", "output-tokens")
}


def rate_headers(family: str, standings: Sequence[Standing], now: datetime) -> list[tuple[bytes, bytes]]:
    """The caller's rate-limit headers (`family`: "openai" or "anthropic"), from the tightest limit of each kind."""
    if not standings:
        return []
    anthropic = family == "anthropic"
    if len(standings) == 1 and standings[0][0] == "requests":  # the common case: one requests limit
        return _three(HEADER_NAMES[family, "requests"], standings[0], now, anthropic)
    groups: dict[str, Standing] = {}
    for found in standings:
        metric = found[0]
        if metric == "requests":
            kinds: tuple[str, ...] = ("requests",)
        elif metric in TOKEN_METRICS:
            kinds = ("tokens", metric.replace("_", "-")) if anthropic and metric != "tokens" else ("tokens",)
        else:
            continue
        for group in kinds:
            kept = groups.get(group)
            if kept is None or found[2] < kept[2]:
                groups[group] = found
    headers: list[tuple[bytes, bytes]] = []
    for group in sorted(groups) if len(groups) > 1 else groups:  # whole numbers (no cost limit here)
        headers += _three(HEADER_NAMES[family, group], groups[group], now, anthropic)
    return headers


def _three(
    names: tuple[bytes, bytes, bytes], found: Standing, now: datetime, anthropic: bool
) -> list[tuple[bytes, bytes]]:
    """A kind's limit, remaining and reset headers."""
    _, limit, remaining, reset_us, text = found
    if anthropic:
        reset = (now + timedelta(microseconds=reset_us)).strftime("%Y-%m-%dT%H:%M:%SZ").encode()
    elif text is not None:
        reset = text.reset(reset_us)
    else:
        reset = openai_duration(reset_us).encode()
    limit_text = text.limit if text is not None else b"%d" % int(limit)
    return [(names[0], limit_text), (names[1], b"%d" % remaining), (names[2], reset)]

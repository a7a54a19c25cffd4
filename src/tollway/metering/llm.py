"""LLM traffic as usage events: one `llm.tokens` event per token type, one `llm.request` per call."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from tollway.metering.events import Event, parse_time
from tollway.money import decimal_text

GATEWAY_SOURCE = "tollway/gateway"
TOKENS_EVENT = "llm.tokens"
REQUEST_EVENT = "llm.request"
ATTEMPT_EVENT = "llm.attempt"  # a try of a target that did not serve the call: zero tokens, never billed
TOKEN_TYPES = ("input", "output", "cache_read", "cache_write")


@dataclass(slots=True, unsafe_hash=True)
class TokenUsage:
    """Disjoint token counts: `input` excludes cached tokens, `output` includes reasoning. Never changed once
    built: not `frozen` only because a frozen dataclass's __init__ costs ~1 µs more (built per call, on the
    request path and again when the storage process reads the journal); hashed by its fields all the same."""

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0
    reasoning: int = 0

    def by_type(self) -> dict[str, int]:
        return {
            "input": self.input,
            "output": self.output,
            "cache_read": self.cache_read,
            "cache_write": self.cache_write,
        }

    @property
    def total(self) -> int:
        return self.input + self.output + self.cache_read + self.cache_write


@dataclass(frozen=True, slots=True)
class TokenPrice:
    """Provider cost per token in USD for each token type (cache prices default to the input price)."""

    input: Decimal
    output: Decimal
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None
    # the four prices as a journal line writes them, worked out once (journal lines are the hot path)
    texts: list[str | None] = field(init=False, repr=False, compare=False, hash=False)
    # per_type's values in its order (input, output, cache_read, cache_write), for the storage process
    ordered: tuple[Decimal, Decimal, Decimal, Decimal] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        texts = [str(self.input), str(self.output), _optional_text(self.cache_read), _optional_text(self.cache_write)]
        object.__setattr__(self, "texts", texts)
        prices = self.per_type()
        ordered = (prices["input"], prices["output"], prices["cache_read"], prices["cache_write"])
        object.__setattr__(self, "ordered", ordered)

    def per_type(self) -> dict[str, Decimal]:
        return {
            "input": self.input,
            "output": self.output,
            "cache_read": self.input if self.cache_read is None else self.cache_read,
            "cache_write": self.input if self.cache_write is None else self.cache_write,
        }


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """A try of a target that did not serve the call (failover): it cost nothing and is never billed.

    cause: "status" (a retryable status, `status_code`), "timeout", "unreachable" or "skipped" (the
    target could not take the request; no network call)."""

    provider: str
    upstream_model: str
    status_code: int | None
    cause: str


@dataclass(slots=True, unsafe_hash=True)
class LlmCall:
    """What the gateway knows about one finished call. Built once per call on the request path and never
    changed after: not `frozen` only because a frozen dataclass's __init__ costs ~1.3 µs more (one
    object.__setattr__ per field); hashed by its fields all the same."""

    request_id: str
    subject: str
    time: datetime
    model: str
    upstream_model: str
    provider: str
    route: str
    status_code: int
    streamed: bool
    usage: TokenUsage | None  # None: the upstream failed before reporting any usage
    partial: bool = False
    estimated: bool = False
    price: TokenPrice | None = None
    requested_model: str | None = None  # the name the client asked for (an alias or a pattern match); None: `model`
    attempts: tuple[AttemptRecord, ...] = ()  # failed tries of other targets before this one, in order
    interrupted: bool = False  # the gateway stopped before the call finished: estimated from its write-ahead intent
    duration_ms: int | None = None  # from the request's arrival to its usage being known (the dashboard's latency)


CALL_RECORD = "llm.call"


def call_record(call: LlmCall, *, newline: bool = False) -> bytes:
    """The call as one journal line (what the request path writes; expanded to events when stored),
    ending in a newline if `newline` (appended by orjson, not by concatenating)."""
    usage, price = call.usage, call.price
    line: dict[str, object] = {
        "record": CALL_RECORD,
        "request_id": call.request_id,
        "subject": call.subject,
        "time": call.time,
        "model": call.model,
        "requested_model": call.requested_model,
        "upstream_model": call.upstream_model,
        "provider": call.provider,
        "route": call.route,
        "status_code": call.status_code,
        "streamed": call.streamed,
        "partial": call.partial,
        "estimated": call.estimated,
        "usage": None
        if usage is None
        else [usage.input, usage.output, usage.cache_read, usage.cache_write, usage.reasoning],
        "price": None if price is None else price.texts,
    }
    if call.attempts:
        line["attempts"] = [[a.provider, a.upstream_model, a.status_code, a.cause] for a in call.attempts]
    if call.interrupted:
        line["interrupted"] = True
    if call.duration_ms is not None:
        line["duration_ms"] = call.duration_ms
    return orjson.dumps(line, option=LINE_OPTIONS if newline else orjson.OPT_UTC_Z)


LINE_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_APPEND_NEWLINE


PriceCache = dict[tuple[Any, ...], TokenPrice]  # prices read back, by their texts (a few per model)
PRICE_CACHE_MAX = 1_000


def call_from_record(raw: dict[str, Any], prices: PriceCache | None = None) -> LlmCall:
    """Read a journal line written by `call_record`. Raises KeyError / ValueError / TypeError.
    `prices`: the prices already read, by their texts (a TokenPrice is immutable: calls share one)."""
    usage, price = raw["usage"], raw["price"]
    if price is not None and prices is not None:
        key = tuple(price)
        known = prices.get(key)
        if known is None:
            known = _price(price)
            if len(prices) >= PRICE_CACHE_MAX:
                prices.clear()
            prices[key] = known
        price = known
    elif price is not None:
        price = _price(price)
    return LlmCall(
        request_id=str(raw["request_id"]),
        subject=str(raw["subject"]),
        time=parse_time(str(raw["time"])),
        model=str(raw["model"]),
        requested_model=None if raw.get("requested_model") is None else str(raw["requested_model"]),
        upstream_model=str(raw["upstream_model"]),
        provider=str(raw["provider"]),
        route=str(raw["route"]),
        status_code=int(raw["status_code"]),
        streamed=bool(raw["streamed"]),
        partial=bool(raw["partial"]),
        estimated=bool(raw["estimated"]),
        usage=None if usage is None else TokenUsage(*(int(n) for n in usage)),
        price=price,
        attempts=tuple(
            AttemptRecord(str(p), str(m), None if status is None else int(status), str(cause))
            for p, m, status, cause in attempts
        )
        if (attempts := raw.get("attempts"))
        else (),
        interrupted=raw.get("interrupted") is True,
        duration_ms=_duration(raw.get("duration_ms")),
    )


def _price(texts: Any) -> TokenPrice:
    return TokenPrice(
        Decimal(texts[0]),
        Decimal(texts[1]),
        None if texts[2] is None else Decimal(texts[2]),
        None if texts[3] is None else Decimal(texts[3]),
    )


def _duration(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def llm_event_count(call: LlmCall) -> int:
    """How many events `llm_call_events(call)` gives (input, output, the request, cache types when used)."""
    usage = call.usage
    return 3 + len(call.attempts) + (0 if usage is None else (usage.cache_read > 0) + (usage.cache_write > 0))


def _optional_text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def llm_call_events(call: LlmCall) -> list[Event]:
    """The events of one call. Ids derive from the request id, so a replay deduplicates."""
    common: dict[str, object] = {
        "model": call.model,
        "requested_model": call.requested_model or call.model,
        "upstream_model": call.upstream_model,
        "provider": call.provider,
        "status_code": call.status_code,
        "route": call.route,
        "streamed": call.streamed,
        "partial": call.partial,
        "estimated": call.estimated,
    }
    if call.interrupted:
        common["interrupted"] = True
    usage = call.usage or TokenUsage()
    prices = call.price.per_type() if call.price is not None else None
    events: list[Event] = []
    total_cost = Decimal(0)
    for token_type, tokens in usage.by_type().items():
        if tokens == 0 and token_type not in ("input", "output"):
            continue
        data: dict[str, object] = {"tokens": tokens, "type": token_type, **common}
        if token_type == "output":
            data["reasoning_tokens"] = usage.reasoning
        if prices is not None:
            cost = prices[token_type] * tokens
            total_cost += cost
            data["cost_usd"] = decimal_text(cost)
        events.append(_event(call, f"{call.request_id}:{token_type}", TOKENS_EVENT, data))
    request_data: dict[str, object] = {
        **common,
        "input_tokens": usage.input,
        "output_tokens": usage.output,
        "cache_read_tokens": usage.cache_read,
        "cache_write_tokens": usage.cache_write,
        "reasoning_tokens": usage.reasoning,
    }
    if prices is not None:
        request_data["cost_usd"] = decimal_text(total_cost)
    if call.duration_ms is not None:
        request_data["duration_ms"] = call.duration_ms
    if call.attempts:
        request_data["attempts"] = len(call.attempts) + 1
        events.extend(_attempt_events(call, common))
    events.append(_event(call, f"{call.request_id}:request", REQUEST_EVENT, request_data))
    return events


def _attempt_events(call: LlmCall, common: dict[str, object]) -> list[Event]:
    """One `llm.attempt` event per failed try: which target, why, and zero tokens (never billed)."""
    events = []
    for number, attempt in enumerate(call.attempts, start=1):
        data: dict[str, object] = {
            **common,
            "upstream_model": attempt.upstream_model,
            "provider": attempt.provider,
            "status_code": attempt.status_code,
            "cause": attempt.cause,
            "attempt": number,
            "tokens": 0,
            "partial": False,
            "estimated": False,
        }
        events.append(_event(call, f"{call.request_id}:attempt-{number}", ATTEMPT_EVENT, data))
    return events


def _event(call: LlmCall, event_id: str, event_type: str, data: dict[str, object]) -> Event:
    return Event(id=event_id, source=GATEWAY_SOURCE, type=event_type, subject=call.subject, time=call.time, data=data)

"""One stored row per gateway call (migration 0021): the compact encoding of a call's CloudEvents.

A call reaches the store as the events `llm_call_events` made of it: `R:input`, `R:output`,
`R:cache_read` and `R:cache_write` when used (`llm.tokens`), `R:request` (`llm.request`), from
`tollway/gateway`. `compact` turns such a run of events back into one `CallRow` (the token counts,
the cost texts, the duration, and the fields many calls share as a `Shape`), and keeps it only when
`derived_rows` gives back exactly those events (ids, type, subject, time, and the JSON bytes of
`data`): anything else (failover attempts, an event missing, an odd value) is stored as plain events.
Readers see the derived events (event_rows.py builds the same rows in SQL); each call reserves five
sequence numbers (input +0, output +1, cache_read +2, cache_write +3, request +4).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson

from tollway.adapters.sql.event_keys import EventKey, EventRow, key_hash
from tollway.metering.events import Event, to_micros
from tollway.metering.llm import GATEWAY_SOURCE, REQUEST_EVENT, TOKENS_EVENT, LlmCall
from tollway.money import decimal_text

SUFFIXES = ("input", "output", "cache_read", "cache_write", "request")
TOKEN_SUFFIXES = SUFFIXES[:4]
SEQ_SPAN = len(SUFFIXES)  # sequence numbers a call reserves
Shape = tuple[str, str, str, str, str, int, int]  # model, requested, upstream, provider, route, status, flags
COMMON = ("model", "requested_model", "upstream_model", "provider", "status_code", "route")
FLAGS = ("streamed", "partial", "estimated")  # bits 1, 2, 4; interrupted (only when true) is 8
INT32 = 2**31


@dataclass(slots=True, unsafe_hash=True)
class CallRow:
    """A call's row. Never changed once built: not `frozen` only because a frozen dataclass's __init__ costs
    ~1.3 µs more (one object.__setattr__ per field; a row per stored call); hashed by its fields all the same."""

    request_id: str
    subject: str
    time_us: int
    shape: Shape
    tokens: tuple[int, int, int, int, int]  # input, output, cache_read, cache_write, reasoning
    costs: tuple[str | None, str | None, str | None, str | None, str | None]  # per type, then the total
    duration_ms: int | None
    keys: tuple[EventKey, ...] = field(init=False, repr=False, compare=False)  # the derived events' (source, id)

    @property
    def key_hash(self) -> int:
        return request_hash(self.request_id)

    def __post_init__(self) -> None:
        self.keys = derived_keys(self.request_id, self.tokens)

    @property
    def rows(self) -> tuple[EventRow, ...]:
        """The derived events (what readers see), built when asked: only a call that meets an event already
        stored (a replay, a call stored in pieces or before migration 0021) needs them."""
        return derived_rows(
            self.request_id, self.subject, self.time_us, self.shape, self.tokens, self.costs, self.duration_ms
        )


def derived_keys(request_id: str, tokens: Sequence[int]) -> tuple[EventKey, ...]:
    """The (source, id) of each event a call derives, in order (what duplicate detection looks up per call)."""
    prefix = request_id + ":"
    keys = [(GATEWAY_SOURCE, prefix + "input"), (GATEWAY_SOURCE, prefix + "output")]
    if tokens[2]:
        keys.append((GATEWAY_SOURCE, prefix + "cache_read"))
    if tokens[3]:
        keys.append((GATEWAY_SOURCE, prefix + "cache_write"))
    keys.append((GATEWAY_SOURCE, prefix + "request"))
    return tuple(keys)


_SUFFIX_BYTES = tuple(suffix.encode() for suffix in SUFFIXES)


def derived_hashes(request_id: str, tokens: Sequence[int]) -> list[int]:
    """`key_hash` of each of `derived_keys`, in order: the CRC of the common start (source, request id, ":")
    once, continued over each suffix (a CRC of a concatenation continues the CRC of its start)."""
    start = zlib.crc32((GATEWAY_SOURCE + request_id + ":").encode())
    hashes = []
    for index, suffix in enumerate(_SUFFIX_BYTES):
        if index in (2, 3) and not tokens[index]:
            continue
        value = zlib.crc32(suffix, start)
        hashes.append(value - 0x1_0000_0000 if value & 0x8000_0000 else value)
    return hashes


def request_hash(request_id: str) -> int:
    """CRC-32 of a request id, signed 32-bit: llm_calls.key_hash (narrows the lookup; request_id decides)."""
    value = zlib.crc32(request_id.encode())
    return value - 0x1_0000_0000 if value & 0x8000_0000 else value


def split_id(event_id: str) -> tuple[str, int] | None:
    """(request id, index in SUFFIXES) of a gateway event id a call derives, else None."""
    request_id, _, suffix = event_id.rpartition(":")
    if not request_id or suffix not in SUFFIXES:
        return None
    return request_id, SUFFIXES.index(suffix)


def derived_rows(
    request_id: str,
    subject: str,
    time_us: int,
    shape: Shape,
    tokens: Sequence[int],
    costs: Sequence[str | None],
    duration_ms: int | None,
) -> tuple[EventRow, ...]:
    """The events of a call, as `llm_call_events` makes them (same keys, same order)."""
    found = derived_data(shape, tokens, costs, duration_ms)
    return tuple(
        _row(request_id, suffix, kind, subject, time_us, orjson.dumps(data).decode()) for suffix, kind, data in found
    )


def derived_data(
    shape: Shape,
    tokens: Sequence[int],
    costs: Sequence[str | None],
    duration_ms: int | None,
    common: dict[str, object] | None = None,
) -> list[tuple[str, str, dict[str, object]]]:
    """(id suffix, type, data) of each event of a call, in order (`common`: the shape's fields, if known)."""
    if common is None:
        common = common_fields(shape)
    found: list[tuple[str, str, dict[str, object]]] = []
    for index, name in enumerate(TOKEN_SUFFIXES):
        if tokens[index] == 0 and index >= 2:
            continue
        data: dict[str, object] = {"tokens": tokens[index], "type": name, **common}
        if index == 1:
            data["reasoning_tokens"] = tokens[4]
        if costs[index] is not None:
            data["cost_usd"] = costs[index]
        found.append((name, TOKENS_EVENT, data))
    request: dict[str, object] = {
        **common,
        "input_tokens": tokens[0],
        "output_tokens": tokens[1],
        "cache_read_tokens": tokens[2],
        "cache_write_tokens": tokens[3],
        "reasoning_tokens": tokens[4],
    }
    if costs[4] is not None:
        request["cost_usd"] = costs[4]
    if duration_ms is not None:
        request["duration_ms"] = duration_ms
    found.append(("request", REQUEST_EVENT, request))
    return found


def common_fields(shape: Shape) -> dict[str, object]:
    model, requested, upstream, provider, route, status, flags = shape
    common: dict[str, object] = {
        "model": model,
        "requested_model": requested,
        "upstream_model": upstream,
        "provider": provider,
        "status_code": status,
        "route": route,
        "streamed": bool(flags & 1),
        "partial": bool(flags & 2),
        "estimated": bool(flags & 4),
    }
    if flags & 8:
        common["interrupted"] = True
    return common


def _row(request_id: str, suffix: str, kind: str, subject: str, time_us: int, data: str) -> EventRow:
    event_id = f"{request_id}:{suffix}"
    return (GATEWAY_SOURCE, event_id, kind, subject, time_us, data, key_hash(GATEWAY_SOURCE, event_id))


KnownShapes = dict[tuple[Any, ...], tuple[Shape, dict[str, object]]]  # a writer's cache of checked shapes
KNOWN_SHAPES_MAX = 10_000


def compact(run: Sequence[Event], encoded: Sequence[str], known: KnownShapes) -> CallRow | None:
    """The call behind `run` (one call's events, in order; `encoded`: their data as JSON), or None when
    its events are not exactly what the call row derives (the same JSON: equal values, in the same key
    order, of the same JSON types). `known`: shapes already checked, by their raw values."""
    last = run[-1]
    if last.type != REQUEST_EVENT or last.source != GATEWAY_SOURCE or last.time_defaulted:
        return None
    if not last.id.endswith(":request"):
        return None
    request_id, data, subject, time = last.id[:-8], last.data, last.subject, last.time
    try:
        raw = (*tuple(data[name] for name in _RAW_SHAPE), data.get("interrupted"))
        counts = (
            _count(data["input_tokens"]),
            _count(data["output_tokens"]),
            _count(data["cache_read_tokens"]),
            _count(data["cache_write_tokens"]),
            _count(data["reasoning_tokens"]),
        )
        duration = data.get("duration_ms")
        if duration is not None:
            duration = _count(duration)
        checked = known.get(raw)
        if checked is None:
            shape = _shape(data)
            checked = (shape, common_fields(shape))
            if len(known) >= KNOWN_SHAPES_MAX:
                known.clear()
            known[raw] = checked
    except (KeyError, TypeError, ValueError):
        return None
    try:
        costs: list[str | None] = [None, None, None, None, _cost(data.get("cost_usd"))]
        index = 0
        for event in run[:-1]:
            while index < 4 and event.id != f"{request_id}:{TOKEN_SUFFIXES[index]}":
                index += 1
            if index == 4:
                return None
            costs[index] = _cost(event.data.get("cost_usd"))
    except ValueError:
        return None
    shape, common = checked
    derived = derived_data(shape, counts, costs, duration, common)
    if len(derived) != len(run):
        return None
    for (suffix, kind, expected), event, text in zip(derived, run, encoded, strict=True):
        if event.id != f"{request_id}:{suffix}" or kind != event.type or event.subject != subject:
            return None
        # The same JSON bytes: equal values, in the same key order, of the same JSON types (True is not 1).
        if event.time_defaulted or event.source != GATEWAY_SOURCE or event.time != time:
            return None
        if orjson.dumps(expected).decode() != text:
            return None
    cost_row = (costs[0], costs[1], costs[2], costs[3], costs[4])
    return CallRow(request_id, subject, to_micros(time), shape, counts, cost_row, duration)


def call_row(call: LlmCall, known: KnownShapes) -> CallRow | None:
    """The row of a call handed over as an `LlmCall` (the storage process's direct path: no events built and
    compacted back), or None where `compact` would not take its events (failover attempts, a value a column
    cannot hold): those go as `llm_call_events`. tests/contract/test_call_rows.py proves the two paths give the
    same row over generated calls. `known`: shapes already checked, by their raw values."""
    request_id = call.request_id
    if call.attempts or not request_id:
        return None
    usage = call.usage
    counts = (
        (0, 0, 0, 0, 0)
        if usage is None
        else (usage.input, usage.output, usage.cache_read, usage.cache_write, usage.reasoning)
    )
    requested = call.requested_model or call.model
    raw = (
        call.model,
        requested,
        call.upstream_model,
        call.provider,
        call.route,
        call.status_code,
        call.streamed,
        call.partial,
        call.estimated,
        True if call.interrupted else None,
    )
    for count in counts:  # _count's test, inline (five a call)
        if type(count) is not int or not 0 <= count < INT32:
            return None
    duration = call.duration_ms
    if duration is not None and (type(duration) is not int or not 0 <= duration < INT32):
        return None
    try:
        checked = known.get(raw)
        if checked is None:
            fields: dict[str, Any] = dict(zip(_RAW_SHAPE, raw, strict=False))
            if call.interrupted:
                fields["interrupted"] = True
            shape = _shape(fields)
            checked = (shape, common_fields(shape))
            if len(known) >= KNOWN_SHAPES_MAX:
                known.clear()
            known[raw] = checked
    except (TypeError, ValueError):
        return None
    costs: tuple[str | None, str | None, str | None, str | None, str | None] = (None, None, None, None, None)
    price = call.price
    if price is not None:
        prices = price.ordered
        total = Decimal(0)
        texts: list[str | None] = [None, None, None, None]
        for index in range(4):
            if counts[index] == 0 and index >= 2:
                continue
            cost = prices[index] * counts[index]
            total += cost
            texts[index] = decimal_text(cost)
        costs = (texts[0], texts[1], texts[2], texts[3], decimal_text(total))
    return CallRow(request_id, call.subject, to_micros(call.time), checked[0], counts, costs, duration)


_RAW_SHAPE = (
    "model",
    "requested_model",
    "upstream_model",
    "provider",
    "route",
    "status_code",
    "streamed",
    "partial",
    "estimated",
)


def _shape(data: dict[str, Any]) -> Shape:
    texts = [data[name] for name in COMMON if name != "status_code"]
    status = data["status_code"]
    if not all(type(t) is str and t.isprintable() for t in texts):
        raise ValueError("not a plain text")
    if type(status) is not int or not -INT32 <= status < INT32:
        raise ValueError("not a status")
    flags = 0
    for bit, name in enumerate(FLAGS):
        value = data[name]
        if type(value) is not bool:
            raise ValueError("not a flag")
        flags |= int(value) << bit
    if "interrupted" in data:
        if data["interrupted"] is not True:
            raise ValueError("not a flag")
        flags |= 8
    model, requested, upstream, provider, route = texts
    return (model, requested, upstream, provider, route, status, flags)


def _count(value: Any) -> int:
    if type(value) is not int or not 0 <= value < INT32:
        raise ValueError("not a count")
    return value


def _cost(value: Any) -> str | None:
    if value is None or (type(value) is str and "\x00" not in value):  # PostgreSQL text holds no NUL
        return value
    raise ValueError("not a cost text")


def gateway_runs(batch: Sequence[Event]) -> list[tuple[int, int]]:
    """[start, end) of each run of consecutive gateway events of one request id ending in its `R:request`."""
    runs: list[tuple[int, int]] = []
    start, current = 0, None
    for index, event in enumerate(batch):
        parts = split_id(event.id) if event.source == GATEWAY_SOURCE else None
        if parts is None:
            current = None
            continue
        if parts[0] != current:
            start, current = index, parts[0]
        if parts[1] == 4:
            runs.append((start, index + 1))
            current = None
    return runs

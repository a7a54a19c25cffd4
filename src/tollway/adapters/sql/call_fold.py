"""Folding gateway calls stored as one row (llm_calls) straight from their columns, without building their JSON.

A meter over `llm.tokens` or `llm.request` whose value and group-by paths each read one top-level key of the
data (all the built-in meters do) reads, for a call's derived event, exactly what a column holds: the key's
value as `calls.derived_data` writes it (an integer count or status code, a text, a flag, a cost text, or
nothing: the key is absent). `call_rows` selects those columns in place of the derived JSON and reads them
the way the JSON fold reads the JSON (fold.py): the same eligibility, the same value, the same dimension
key text. A meter with any other path (nested, an index, a value read from a text or a flag) is folded from
the derived JSON as before (`call_columns` is None).

Cost texts ("0.0025") are SUMmed exactly in SQL. PostgreSQL reads them as `numeric`, as it reads a decimal
string in an event. SQLite has no exact decimals: it reads a plain decimal text (an optional minus, digits,
at most one point, no trailing zero after it, at most 12 places, at most 18 digits once scaled) as an
integer count of 10^-12 (`sqlite_units`), sums those, and writes the group's total back as the decimal text
Python's Decimal sum gives (`sqlite_total_text`: as many places as the longest input; min, max and latest
with their own, `sqlite_value_text`). Any other text, and a call whose value is absent, goes to the Python
fold, as an ineligible event does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from tollway.adapters.sql.event_rows import COST_SQL, TOKENS_SQL, TYPE_SQL, Where, calls_sql
from tollway.metering.jsonpath import compile_path
from tollway.metering.llm import REQUEST_EVENT, TOKENS_EVENT
from tollway.metering.meters import Aggregation, Meter

Kind = Literal["integer", "text", "flag", "decimal"]  # what a derived key holds (or NULL: absent)

_COMMON: dict[str, tuple[Kind, str]] = {
    "model": ("text", "s.model"),
    "requested_model": ("text", "s.requested_model"),
    "upstream_model": ("text", "s.upstream_model"),
    "provider": ("text", "s.provider"),
    "route": ("text", "s.route"),
    "status_code": ("integer", "s.status_code"),
    "streamed": ("flag", "CASE WHEN (s.flags & 1) <> 0 THEN 'true' ELSE 'false' END"),
    "partial": ("flag", "CASE WHEN (s.flags & 2) <> 0 THEN 'true' ELSE 'false' END"),
    "estimated": ("flag", "CASE WHEN (s.flags & 4) <> 0 THEN 'true' ELSE 'false' END"),
    "interrupted": ("flag", "CASE WHEN (s.flags & 8) <> 0 THEN 'true' END"),  # only when true
}
# The keys of each derived event's data (calls.derived_data), as columns of the call `c`, its shape `s`, `k.k`.
KEYS: dict[str, dict[str, tuple[Kind, str]]] = {
    TOKENS_EVENT: {
        "tokens": ("integer", TOKENS_SQL),
        "type": ("text", TYPE_SQL),
        **_COMMON,
        "reasoning_tokens": ("integer", "CASE WHEN k.k = 1 THEN c.reasoning END"),
        "cost_usd": ("decimal", COST_SQL),
    },
    REQUEST_EVENT: {
        **_COMMON,
        "input_tokens": ("integer", "c.input"),
        "output_tokens": ("integer", "c.output"),
        "cache_read_tokens": ("integer", "c.cache_read"),
        "cache_write_tokens": ("integer", "c.cache_write"),
        "reasoning_tokens": ("integer", "c.reasoning"),
        "cost_usd": ("decimal", "c.cost_total"),
        "duration_ms": ("integer", "c.duration_ms"),
    },
}
_ABSENT: tuple[Kind, str] = ("text", "NULL")  # a key no derived event has


@dataclass(frozen=True)
class CallColumns:
    """The columns a meter's paths read on a call: the value's (None: the meter reads none) and each dimension's."""

    value: tuple[Kind, str] | None
    dims: tuple[tuple[Kind, str], ...]

    @property
    def decimal(self) -> bool:
        return self.value is not None and self.value[0] == "decimal"


def call_columns(meter: Meter) -> CallColumns | None:
    """The columns `meter` reads on a call's derived events, or None where it must read their JSON."""
    keys = KEYS.get(meter.event_type)
    if keys is None:
        return None
    dims = []
    for path in meter.group_by.values():
        key = _top_key(path)
        if key is None:
            return None
        dims.append(keys.get(key, _ABSENT))
    value = None
    if meter.value_property is not None and meter.aggregation is not Aggregation.COUNT:
        key = _top_key(meter.value_property)
        value = keys.get(key) if key is not None else None
        if value is None or value[0] not in ("integer", "decimal"):
            return None
    return CallColumns(value, tuple(dims))


def _top_key(path: str) -> str | None:
    steps = compile_path(path)
    return steps[0] if len(steps) == 1 and isinstance(steps[0], str) else None


def call_rows(meter: Meter, columns: CallColumns, *, postgres: bool, with_data: bool) -> str:
    """The calls' events of `meter`'s type in the fold's range, as the fold's rows: seq, id, source, subject,
    time_us, data (id, source and data NULL unless `with_data`: only the rows left to Python need them),
    ok, sk (the value's key absent: a skipped value), v (SQLite, for a decimal value: in units of 10^-12), p
    (SQLite: a decimal value's places), dims.
    Parameters: seq_after, seq_upto, event_type (range_params)."""
    where = Where(
        event_type=meter.event_type,
        seq_after=0,
        seq_upto=0,
        by_seq=True,
        columns="seq, id, source, subject, time_us, data" if with_data else "seq, subject, time_us",
        data_keys=_read_keys(meter),
    )
    picked = [*([columns.value] if columns.value is not None else []), *columns.dims]
    extra = [f"{expression} AS x{n}" for n, (_, expression) in enumerate(picked)]
    inner = calls_sql(postgres, where, {}, extra)
    n = 0
    value, places = "NULL", "NULL"
    if columns.value is not None:
        n = 1
        if columns.value[0] == "integer":
            value = "x0::numeric" if postgres else "x0"
        elif postgres:
            value = f"CASE WHEN x0 ~ {PG_DECIMAL} THEN x0::numeric END"
        else:  # read once per call: OFFSET keeps SQLite from copying the expression into every use of v
            units, places = sqlite_units("x0")
            inner = f"SELECT *, {units} AS units FROM ({inner}) read LIMIT -1 OFFSET 0"
            value = "units"
    dims = [_dim_text(kind, f"x{n + m}", postgres) for m, (kind, _) in enumerate(columns.dims)]
    ok = "time_us >= 0" + (f" AND {value} IS NOT NULL" if columns.value is not None else "")
    # the value's key absent: skipped, as the reference skips it, counted here instead of read back by Python
    skip = "x0 IS NULL" if columns.value is not None else ("false" if postgres else "0")
    ids = "id, source" if with_data else "NULL AS id, NULL AS source"
    data = "data" if with_data else "NULL AS data"
    places_column = "" if postgres else f"{places} AS p, "
    return (
        f"SELECT seq, {ids}, subject, time_us, {data}, {ok} AS ok, {skip} AS sk, {value} AS v, {places_column}"
        f"{dims_key(dims, postgres)} AS dims FROM ({inner}) calls"
    )


def _read_keys(meter: Meter) -> tuple[str, ...]:
    paths = [*meter.group_by.values(), *([meter.value_property] if meter.value_property else [])]
    return tuple(dict.fromkeys(key for path in paths if (key := _top_key(path)) is not None))


def _dim_text(kind: Kind, column: str, postgres: bool) -> str:
    """A dimension's text as the fold's JSON reading gives it (integers as their digits, flags 'true'/'false')."""
    if kind == "integer":
        return f"{column}::text" if postgres else f"CAST({column} AS TEXT)"
    return column


def dims_key(texts: Sequence[str], postgres: bool) -> str:
    """The dimension key: the compact JSON array of the texts (NULL: null), as orjson writes it."""
    if not texts:
        return "'[]'"
    if postgres:
        return "'[' || concat_ws(',', " + ", ".join(f"COALESCE(to_json({t})::text, 'null')" for t in texts) + ") || ']'"
    return f"json_array({', '.join(texts)})"


PG_DECIMAL = "'^-?[0-9]{1,30}([.][0-9]{1,30})?$'"  # a decimal string PostgreSQL reads as numeric, exactly
SQLITE_PLACES = 12  # a decimal's scale when SQLite sums it: in units of 10^-12
SQLITE_DIGITS = 18  # digits of a value in units: below 10^18, so a sum of two stays within 64 bits


def sqlite_units(text: str) -> tuple[str, str]:
    """(its value in units of 10^-12, its places) of `text`, a column holding a text (or NULL): the value is NULL
    unless it is a plain decimal whose Decimal has exactly those places (no exponent, no sign but a leading minus,
    no trailing zero after the point, not a negative zero) and fits (at most 12 places, 18 digits in units); the
    places mean nothing then."""
    point = f"instr({text}, '.')"
    places = f"(CASE WHEN {point} > 0 THEN length({text}) - {point} ELSE 0 END)"
    plain = " AND ".join(
        [
            f"({text} GLOB '[0-9]*' OR {text} GLOB '-[0-9]*')",
            f"substr({text}, 2) NOT GLOB '*[^0-9.]*'",
            f"{text} NOT GLOB '*.*.*'",
            f"{text} NOT GLOB '*.'",
            f"{text} NOT GLOB '*.*0'",
            f"NOT ({text} GLOB '-*' AND {text} NOT GLOB '*[1-9]*')",
            f"{places} <= {SQLITE_PLACES}",
            f"length({text}) - ({text} GLOB '-*') - ({point} > 0) + {SQLITE_PLACES} - {places} <= {SQLITE_DIGITS}",
        ]
    )
    zeros = "0" * SQLITE_PLACES
    units = f"CAST(replace({text}, '.', '') || substr('{zeros}', 1, {SQLITE_PLACES} - {places}) AS INTEGER)"
    return f"(CASE WHEN {plain} THEN {units} END)", places


def _digits(units: str) -> str:
    return f"printf('%0{SQLITE_PLACES + 1}d', abs({units}))"


def sqlite_total_text(units: str, places: str) -> str:
    """A sum in units as the decimal text of Python's Decimal sum: `places` places (the most of its terms)."""
    digits = _digits(units)
    return (
        f"(CASE WHEN {units} IS NOT NULL THEN (CASE WHEN {units} < 0 THEN '-' ELSE '' END) || "
        f"substr({digits}, 1, length({digits}) - {SQLITE_PLACES}) || "
        f"CASE WHEN {places} > 0 THEN '.' || substr({digits}, -{SQLITE_PLACES}, {places}) ELSE '' END END)"
    )


def sqlite_value_text(units: str) -> str:
    """One value in units as the decimal text of its Decimal (a plain decimal has no trailing zero after the
    point): the minimum, maximum or latest of a group."""
    digits = _digits(units)
    fraction = f"rtrim(substr({digits}, -{SQLITE_PLACES}), '0')"
    return (
        f"(CASE WHEN {units} IS NOT NULL THEN (CASE WHEN {units} < 0 THEN '-' ELSE '' END) || "
        f"substr({digits}, 1, length({digits}) - {SQLITE_PLACES}) || "
        f"CASE WHEN {fraction} <> '' THEN '.' || {fraction} ELSE '' END END)"
    )

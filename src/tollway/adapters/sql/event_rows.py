"""Stored events as every reader sees them: the `events` table and the events derived from `llm_calls`.

`source_sql` gives one SELECT of both, UNION ALL, with the same columns as the events table (seq, id,
source, type, subject, time_us, stored_us, data). The conditions go into each arm on its stored
columns, so each is an index range: a call's derived event k (0..4: input, output, cache_read,
cache_write, request) has sequence number `seq + k`, type `llm.tokens` (k < 4) or `llm.request`, id
`request_id:suffix`, and its `data` is built in SQL (json_object on SQLite, json_build_object on
PostgreSQL) with the keys and values `calls.derived_rows` gives in Python (tested equal). Parameters
are named; `style` spells a placeholder (sqlite3 `:name`, psycopg `%(name)s`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tollway.adapters.sql.calls import SEQ_SPAN, request_hash, split_id
from tollway.metering.llm import GATEWAY_SOURCE, REQUEST_EVENT, TOKENS_EVENT

COLUMNS = "seq, id, source, type, subject, time_us, stored_us, data"
Style = Callable[[str], str]


def sqlite_style(name: str) -> str:
    return f":{name}"


def postgres_style(name: str) -> str:
    return f"%({name})s"


@dataclass(frozen=True)
class Where:
    """Which stored events: every condition given must hold (bounds as in EventFilter; seq: low < seq <= high)."""

    event_type: str | None = None
    seq_after: int | None = None
    seq_upto: int | None = None
    start_us: int | None = None
    end_us: int | None = None
    stored_from_us: int | None = None
    stored_to_us: int | None = None
    event_id: str | None = None
    subjects: Sequence[str] | None = None
    by_seq: bool = False  # the sequence range drives the read: keep the database off the type's index
    columns: str = COLUMNS  # which of COLUMNS to select, in this order
    data_keys: tuple[str, ...] | None = None  # derived events' data: only these top-level keys (folds)


def source_sql(
    postgres: bool, where: Where, params: dict[str, Any], *, order: str = "", limit: int | None = None
) -> str:
    """A SELECT of COLUMNS over both encodings; its parameters are added to `params`. With `order` and
    `limit`, each arm is ordered and cut first (the caller orders the union again)."""
    style = postgres_style if postgres else sqlite_style
    arms = [_events_arm(where, params, style, postgres)]
    calls = _calls_arm(postgres, where, params, style)
    if calls is not None:
        arms.append(calls)
    if limit is not None:
        params["arm_limit"] = limit
        arms = [f"SELECT * FROM ({arm} ORDER BY {order} LIMIT {style('arm_limit')}) a{n}" for n, arm in enumerate(arms)]
    return " UNION ALL ".join(arms)


def calls_sql(postgres: bool, where: Where, params: dict[str, Any], extra: Sequence[str] = ()) -> str:
    """The events derived from `llm_calls` alone (COLUMNS), for `where` (which must not name another type);
    `extra`: more expressions to select after `where.columns` (over the call `c`, its shape `s`, and `k.k`)."""
    arm = _calls_arm(postgres, where, params, postgres_style if postgres else sqlite_style, extra)
    assert arm is not None
    return arm


def events_sql(postgres: bool, where: Where, params: dict[str, Any]) -> str:
    """The `events` table's arm of `source_sql` alone."""
    return _events_arm(where, params, postgres_style if postgres else sqlite_style, postgres)


def _common(where: Where, params: dict[str, Any], style: Style, prefix: str) -> list[str]:
    conditions = []
    for bound, name, op in (
        (where.start_us, "start_us", ">="),
        (where.end_us, "end_us", "<"),
        (where.stored_from_us, "stored_from", ">="),
        (where.stored_to_us, "stored_to", "<="),
    ):
        if bound is not None:
            params[name] = bound
            column = "stored_us" if name.startswith("stored") else "time_us"
            conditions.append(f"{prefix}{column} {op} {style(name)}")
    if where.subjects is not None:
        names = []
        for n, subject in enumerate(dict.fromkeys(where.subjects)):
            params[f"s{n}"] = subject
            names.append(style(f"s{n}"))
        conditions.append(f"{prefix}subject IN ({', '.join(names)})" if names else "1 = 0")
    return conditions


def _events_arm(where: Where, params: dict[str, Any], style: Style, postgres: bool) -> str:
    conditions = _common(where, params, style, "")
    if where.seq_after is not None:
        params["seq_after"] = where.seq_after
        conditions.append(f"seq > {style('seq_after')}")
    if where.seq_upto is not None:
        params["seq_upto"] = where.seq_upto
        conditions.append(f"seq <= {style('seq_upto')}")
    if where.event_id is not None:
        params["event_id"] = where.event_id
        conditions.append(f"id = {style('event_id')}")
    typed = ""
    if where.event_type is not None:
        params["event_type"] = where.event_type
        typed = f"type = {style('event_type')}"
        if where.by_seq and postgres:  # a fenced subquery: the range by primary key, then the type
            inner = f"SELECT {where.columns}, type FROM events WHERE {' AND '.join(conditions) or 'true'} OFFSET 0"
            return f"SELECT {where.columns} FROM ({inner}) r WHERE {typed}"
        conditions.append(("+" if where.by_seq else "") + typed)
    return f"SELECT {where.columns} FROM events" + (f" WHERE {' AND '.join(conditions)}" if conditions else "")


def _calls_arm(
    postgres: bool, where: Where, params: dict[str, Any], style: Style, extra: Sequence[str] = ()
) -> str | None:
    conditions = _common(where, params, style, "c.")
    if where.event_type == TOKENS_EVENT:
        conditions.append("k.k < 4")
    elif where.event_type == REQUEST_EVENT:
        conditions.append("k.k = 4")
    elif where.event_type is not None:
        return None
    if where.seq_after is not None:
        params["seq_after"] = where.seq_after
        conditions += [f"c.seq > {style('seq_after')} - {SEQ_SPAN - 1}", f"c.seq + k.k > {style('seq_after')}"]
    if where.seq_upto is not None:
        params["seq_upto"] = where.seq_upto
        conditions += [f"c.seq <= {style('seq_upto')}", f"c.seq + k.k <= {style('seq_upto')}"]
    if where.event_id is not None:
        parts = split_id(where.event_id)
        if parts is None:
            return None
        params["call_hash"], params["call_id"], params["call_k"] = request_hash(parts[0]), parts[0], parts[1]
        conditions += [f"c.key_hash = {style('call_hash')}", f"c.request_id = {style('call_id')}"]
        conditions.append(f"k.k = {style('call_k')}")
    conditions.append("(k.k IN (0, 1, 4) OR (k.k = 2 AND c.cache_read <> 0) OR (k.k = 3 AND c.cache_write <> 0))")
    ks = (
        "(VALUES (0), (1), (2), (3), (4)) AS k(k)"
        if postgres
        else "(SELECT 0 AS k UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4) k"
    )
    expressions = {
        "seq": "c.seq + k.k",
        "id": f"c.request_id || {_SUFFIX}",
        "source": f"'{GATEWAY_SOURCE}'",
        "type": f"CASE WHEN k.k = 4 THEN '{REQUEST_EVENT}' ELSE '{TOKENS_EVENT}' END",
        "subject": "c.subject",
        "time_us": "c.time_us",
        "stored_us": "c.stored_us",
        "data": _data(postgres, where.data_keys),
    }
    selected = ", ".join([*(f"{expressions[name]} AS {name}" for name in where.columns.split(", ")), *extra])
    return (
        f"SELECT {selected} FROM llm_calls c CROSS JOIN {ks} "
        f"JOIN llm_call_shapes s ON s.id = c.shape WHERE {' AND '.join(conditions)}"
    )


_SUFFIX = (
    "CASE k.k WHEN 0 THEN ':input' WHEN 1 THEN ':output' WHEN 2 THEN ':cache_read' "
    "WHEN 3 THEN ':cache_write' ELSE ':request' END"
)
TYPE_SQL = "CASE k.k WHEN 0 THEN 'input' WHEN 1 THEN 'output' WHEN 2 THEN 'cache_read' ELSE 'cache_write' END"
TOKENS_SQL = "CASE k.k WHEN 0 THEN c.input WHEN 1 THEN c.output WHEN 2 THEN c.cache_read ELSE c.cache_write END"
COST_SQL = (
    "CASE k.k WHEN 0 THEN c.cost_input WHEN 1 THEN c.cost_output WHEN 2 THEN c.cost_cache_read "
    "ELSE c.cost_cache_write END"
)
_OPTIONAL = ("interrupted", "reasoning_tokens", "cost_usd", "duration_ms")  # keys a derived event may lack
_FLAGS = (("streamed", 1), ("partial", 2), ("estimated", 4))
_TEXT_KEYS = ("model", "requested_model", "upstream_model", "provider", "status_code", "route")
_COUNT_KEYS = (
    ("input_tokens", "input"),
    ("output_tokens", "output"),
    ("cache_read_tokens", "cache_read"),
    ("cache_write_tokens", "cache_write"),
    ("reasoning_tokens", "reasoning"),
)


def _keys(postgres: bool) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(key, value) of a token event's data and of a request event's data, in `llm_call_events`' order. A NULL
    value means the key is absent (interrupted only when true, reasoning_tokens only on output, cost_usd and
    duration_ms only when known); no derived key is null otherwise."""
    if postgres:
        flags = [(name, f"(s.flags & {bit}) <> 0") for name, bit in _FLAGS]
        interrupted = "CASE WHEN (s.flags & 8) <> 0 THEN true END"
    else:  # json() makes 'true' a JSON true inside json_object
        flags = [(name, f"json(CASE WHEN s.flags & {bit} THEN 'true' ELSE 'false' END)") for name, bit in _FLAGS]
        interrupted = "json(CASE WHEN s.flags & 8 THEN 'true' END)"
    common = [*((key, f"s.{key}") for key in _TEXT_KEYS), *flags, ("interrupted", interrupted)]
    tokens = [("tokens", TOKENS_SQL), ("type", TYPE_SQL), *common]
    tokens += [("reasoning_tokens", "CASE WHEN k.k = 1 THEN c.reasoning END"), ("cost_usd", COST_SQL)]
    request = [*common, *((key, f"c.{column}") for key, column in _COUNT_KEYS)]
    request += [("cost_usd", "c.cost_total"), ("duration_ms", "c.duration_ms")]
    return tokens, request


def _data(postgres: bool, wanted: Sequence[str] | None) -> str:
    """The `data` of a derived event as JSON text; with `wanted`, only those top-level keys (what a meter's
    paths read: the same values at those paths, less to build and parse)."""
    objects = []
    for pairs in _keys(postgres):
        chosen = [(key, value) for key, value in pairs if wanted is None or key in wanted]
        if not chosen:
            objects.append("json_build_object()" if postgres else "json_object()")
            continue
        arguments = ", ".join(f"'{key}', {value}" for key, value in chosen)
        if postgres:
            objects.append(f"json_build_object({arguments})")
            continue
        # json_remove drops the keys whose value is NULL ('$.x' removes nothing: no derived key is named x)
        paths = [
            f"CASE WHEN ({value}) IS NULL THEN '$.{key}' ELSE '$.x' END" for key, value in chosen if key in _OPTIONAL
        ]
        built = f"json_object({arguments})"
        objects.append(f"json_remove({built}, {', '.join(paths)})" if paths else built)
    chosen_data = f"CASE WHEN k.k = 4 THEN {objects[1]} ELSE {objects[0]} END"
    return f"json_strip_nulls({chosen_data})::text" if postgres else chosen_data


def max_seq_sql() -> str:
    """The highest sequence number stored or reserved (NULL when nothing is)."""
    return (
        "SELECT max(seq) FROM (SELECT max(seq) AS seq FROM events UNION ALL "
        f"SELECT max(seq) + {SEQ_SPAN - 1} FROM llm_calls) t"
    )

"""Rollup folding in the database: a meter's new events grouped into day, hour and minute partials
and merged into the stored rollups by SQL, so no event passes through Python. It must give exactly what the pure
reference (tollway.metering.rollup) gives, so it only takes events whose values it reads the same
way ("eligible"): the meter's value a JSON integer of at most 18 digits (PostgreSQL also: a plain
decimal string such as "0.0025"), each group-by value a string, boolean, such an integer, null or
absent, the event time not before 1970. Every other event is left to the Python fold, which also
counts the values it has to skip; the folding statement reports how many there are, so they are
read (`others`) only when there are some. UNIQUE_COUNT meters and JSONPath
steps the database cannot spell are folded in Python entirely (`sql_foldable` is False).

The range is read by sequence (the primary key) and narrowed to the meter's event type after: an
index on the type would have the database walk every stored event of that type (`+type` on SQLite,
a fenced subquery on PostgreSQL keep it off). Gateway calls stored as one row (llm_calls) are read from
their columns where the meter's paths each read a top-level key (call_fold.py: the built-in meters; on
SQLite their cost texts too, summed exactly in integer units), else as the events they derive (event_rows.py).

Dimension keys are built as the same compact JSON array orjson writes (`["gpt-4o",null,"input"]`),
so buckets folded either way meet under one key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from tollway.adapters.sql.bulk import POSTGRES_MERGE, ROLLUP_COLUMNS, ROLLUP_KEY, merge_assignments
from tollway.adapters.sql.call_fold import (
    PG_DECIMAL,
    CallColumns,
    call_columns,
    call_rows,
    sqlite_total_text,
    sqlite_units,
    sqlite_value_text,
)
from tollway.adapters.sql.event_rows import Where, events_sql, source_sql
from tollway.metering.jsonpath import compile_path
from tollway.metering.meters import Aggregation, Meter
from tollway.metering.rollup import LEVELS

_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PG_INTEGER = "'^-?[0-9]{1,18}$'"


@dataclass(frozen=True)
class FoldQuery:
    """PostgreSQL's fold (see postgres_fold): `grouped` folds the eligible events; `others` reads the
    raw rows of the rest (seq, id, source, subject, time_us, data). Both take `params` plus low and
    high (the sequence range, low exclusive), type and slug."""

    grouped: str
    others: str
    params: dict[str, Any]


def sql_foldable(meter: Meter) -> bool:
    if meter.aggregation is Aggregation.UNIQUE_COUNT:
        return False
    paths = [*meter.group_by.values(), *([meter.value_property] if meter.value_property else [])]
    return all(_sqlite_path(path) is not None for path in paths)


def _uses_value(meter: Meter) -> bool:
    return meter.value_property is not None and meter.aggregation is not Aggregation.COUNT


# -- SQLite ------------------------------------------------------------------------------------------


def _sqlite_path(path: str) -> str | None:
    spelled = "$"
    for step in compile_path(path):
        if isinstance(step, int):
            spelled += f"[{step}]"
        elif _PLAIN_NAME.fullmatch(step):
            spelled += "." + step
        elif '"' not in step and "\\" not in step:
            spelled += f'."{step}"'
        else:
            return None
    return spelled


SQLITE_STAGE_TABLE = (
    "CREATE TEMP TABLE IF NOT EXISTS fold_rows (meter TEXT, plain INTEGER, level_us INTEGER, bucket_us INTEGER, "
    "subject TEXT, dims TEXT, count INTEGER, total, minimum, maximum, latest, "
    "latest_us INTEGER, latest_seq INTEGER, first_us INTEGER)"
)
_FOLD_COLUMNS = (
    "level_us, bucket_us, subject, dims, count, total, minimum, maximum, latest, latest_us, latest_seq, first_us"
)


def _sqlite_plain(column: str) -> str:
    """A stored value SQLite can merge exactly: NULL, or an integer of at most 18 characters (no
    decimal point, no exponent), so that a sum of two stays within 64 bits."""
    return f"({column} IS NULL OR ({column} NOT GLOB '*[^0-9-]*' AND length({column}) <= 18))"


# SQLite merges in 64-bit integers, only rows whose stored and new values are plain (see above).
_SQLITE_MERGE = merge_assignments(
    lambda column: f"CAST({column} AS INTEGER)",
    "CAST(CAST(meter_rollups.total AS INTEGER) + CAST(excluded.total AS INTEGER) AS TEXT)",
)


@dataclass(frozen=True)
class SqliteFold:
    """SQLite folds in three steps through a per-connection temporary table (`SQLITE_STAGE_TABLE`):
    `stage` groups the eligible events into day, hour and minute partials and marks each `plain`
    (1) when SQLite can merge it into the stored row exactly in integer arithmetic, or not (0: Python
    merges it in Decimal); a row with plain -1 counts the events left to the Python fold. `merge`
    inserts or merges the plain rows; `leftovers` reads the others back. `others` reads the raw rows
    of the ineligible events. All take `params` plus low, high, type and slug."""

    stage: str
    merge: str
    leftovers: str
    others: str
    params: dict[str, Any]


def sqlite_fold(meter: Meter) -> SqliteFold:
    params: dict[str, Any] = {}
    columns = call_columns(meter)
    decimal = columns is not None and columns.decimal  # values summed in units of 10^-12 (call_fold.py)
    # SQLite's text values end at a NUL: an event with a \u0000 anywhere goes to the Python fold.
    eligible = ["time_us >= 0", "instr(data, char(92) || 'u0000') = 0"]
    value, places = "NULL", "NULL"
    if _uses_value(meter):
        assert meter.value_property is not None
        params["vp"] = _sqlite_path(meter.value_property)
        if decimal:  # a JSON integer or string read as a plain decimal text
            value, places = sqlite_units(
                "(CASE json_type(data, :vp) WHEN 'integer' THEN CAST(json_extract(data, :vp) AS TEXT) "
                "WHEN 'text' THEN json_extract(data, :vp) END)"
            )
            eligible.append(f"{value} IS NOT NULL")  # the places are read only where it holds
        else:
            value = "json_extract(data, :vp)"
            eligible.append("json_type(data, :vp) = 'integer' AND typeof(json_extract(data, :vp)) = 'integer'")
    dims = []
    for n, path in enumerate(meter.group_by.values()):
        name = f"d{n}"
        params[name] = _sqlite_path(path)
        kind = f"json_type(data, :{name})"
        dims.append(
            f"CASE {kind} WHEN 'text' THEN json_extract(data, :{name}) WHEN 'true' THEN 'true' "
            f"WHEN 'false' THEN 'false' WHEN 'integer' THEN CAST(json_extract(data, :{name}) AS TEXT) END"
        )
        eligible.append(
            f"({kind} IS NULL OR {kind} IN ('text', 'true', 'false', 'null') OR "
            f"({kind} = 'integer' AND typeof(json_extract(data, :{name})) = 'integer'))"
        )
    dims_key = f"json_array({', '.join(dims)})" if dims else "'[]'"
    json_rows = (
        f"SELECT seq, id, source, subject, time_us, data, COALESCE({' AND '.join(eligible)}, 0) AS ok, 0 AS sk, "
        f"{value} AS v, {places} AS p, {dims_key} AS dims FROM ({_range_source(meter, columns, postgres=False)}) ev"
    )
    rows, full_rows = json_rows, json_rows
    if columns is not None:  # the calls read from their columns (the data only of those left to Python)
        rows += " UNION ALL " + call_rows(meter, columns, postgres=False, with_data=False)
        full_rows += " UNION ALL " + call_rows(meter, columns, postgres=False, with_data=True)
    latest = "NULL AS latest, NULL AS latest_us, NULL AS latest_seq"
    ranked = ""
    if meter.aggregation is Aggregation.LATEST:  # each group's last event by (event time, sequence)
        ranked = (
            ", row_number() OVER (PARTITION BY level, time_us - time_us % level, subject, dims "
            "ORDER BY time_us DESC, seq DESC) AS rn"
        )
        latest = (
            "max(CASE WHEN rn = 1 THEN v END) AS latest, max(CASE WHEN rn = 1 THEN time_us END) AS latest_us, "
            "max(CASE WHEN rn = 1 THEN seq END) AS latest_seq"
        )
    levels = ", ".join(f"({level})" for level in LEVELS)
    stored = [_sqlite_plain(f"s.{c}") for c in ("total", "minimum", "maximum", "latest")]
    plain = f"s.meter IS NULL OR ({' AND '.join(stored)} AND length(CAST(COALESCE(g.total, 0) AS TEXT)) <= 18)"
    totals = "g.total, g.lo, g.hi, g.latest"
    if decimal:  # decimal texts: SQLite stores a new row as they are, Python merges them into a stored one
        plain = "s.meter IS NULL"
        texts = [sqlite_value_text(f"g.{name}") for name in ("lo", "hi", "latest")]
        totals = ", ".join([sqlite_total_text("g.total", "g.places"), *texts])
    grouped = (
        f"lv(level) AS (VALUES {levels}), "
        f"e AS (SELECT level, time_us - time_us % level AS bucket, subject, dims, v, p, time_us, seq{ranked} "
        "FROM r, lv WHERE ok), "
        "g AS (SELECT level, bucket, subject, dims, count(*) AS n, sum(v) AS total, min(v) AS lo, max(v) AS hi, "
        f"{latest}, min(time_us) AS first_us, max(p) AS places FROM e GROUP BY level, bucket, subject, dims)"
    )
    if meter.aggregation is not Aggregation.LATEST:  # minutes from the events, hours and days from the minutes
        minute, coarser = LEVELS[-1], ", ".join(f"({level})" for level in LEVELS[:-1])
        grouped = (
            f"lv(level) AS (VALUES {coarser}), "
            # NOT MATERIALIZED: read from r as m groups it (SQLite would otherwise copy every event a second time)
            f"e AS NOT MATERIALIZED (SELECT time_us - time_us % {minute} AS bucket, subject, dims, v, p, time_us "
            "FROM r WHERE ok), "
            "m AS (SELECT bucket, subject, dims, count(*) AS n, sum(v) AS total, min(v) AS lo, max(v) AS hi, "
            "min(time_us) AS first_us, max(p) AS places FROM e GROUP BY bucket, subject, dims), "
            f"g AS (SELECT {minute} AS level, bucket, subject, dims, n, total, lo, hi, NULL AS latest, "
            "NULL AS latest_us, NULL AS latest_seq, first_us, places FROM m UNION ALL "
            "SELECT lv.level, bucket - bucket % lv.level, subject, dims, sum(n), sum(total), min(lo), max(hi), NULL, "
            "NULL, NULL, min(first_us), max(places) FROM m, lv "
            "GROUP BY lv.level, bucket - bucket % lv.level, subject, dims)"
        )
    stage = (
        f"WITH r AS MATERIALIZED ({rows}), {grouped} "
        f"INSERT INTO temp.fold_rows (meter, plain, {_FOLD_COLUMNS}) "
        f"SELECT :slug, CASE WHEN {plain} THEN 1 ELSE 0 END, g.level, g.bucket, g.subject, g.dims, g.n, {totals}, "
        "g.latest_us, g.latest_seq, g.first_us FROM g LEFT JOIN meter_rollups s "
        "ON s.meter = :slug AND s.level_us = g.level AND s.bucket_us = g.bucket AND s.subject = g.subject "
        "AND s.dims = g.dims "
        "UNION ALL SELECT :slug, -1, 0, 0, NULL, NULL, count(*), NULL, NULL, NULL, NULL, NULL, NULL, NULL "
        "FROM r WHERE NOT ok AND NOT sk "
        "UNION ALL SELECT :slug, -2, 0, 0, NULL, NULL, count(*), NULL, NULL, NULL, NULL, NULL, NULL, NULL "
        "FROM r WHERE sk"
    )
    merge = (
        f"INSERT INTO meter_rollups ({ROLLUP_COLUMNS}) SELECT :slug, level_us, bucket_us, subject, dims, count, "
        "CAST(COALESCE(total, 0) AS TEXT), CAST(minimum AS TEXT), CAST(maximum AS TEXT), CAST(latest AS TEXT), "
        "latest_us, latest_seq, first_us FROM temp.fold_rows WHERE meter = :slug AND plain = 1 "
        f"ON CONFLICT ({ROLLUP_KEY}) DO UPDATE SET {_SQLITE_MERGE}"
    )
    leftovers = f"SELECT plain, {_FOLD_COLUMNS} FROM temp.fold_rows WHERE meter = :slug AND plain <= 0"
    others = (
        f"WITH r AS MATERIALIZED ({full_rows}) SELECT seq, id, source, subject, time_us, data FROM r "
        "WHERE NOT ok AND NOT sk"
    )
    return SqliteFold(stage, merge, leftovers, others + " ORDER BY seq", params)


FOLD_COLUMNS = "seq, id, source, subject, time_us, data"


class FoldCache:
    """Each meter's fold statements, built once per meter object (a store keeps its meters: `_meter_of`)
    rather than once per step: building them costs a few milliseconds a step, microseconds a call."""

    LIMIT = 1_000  # meters remembered (a redefined meter is a new object)

    def __init__(self) -> None:
        self._sqlite: dict[int, tuple[Meter, SqliteFold]] = {}
        self._postgres: dict[int, tuple[Meter, FoldQuery]] = {}

    def sqlite(self, meter: Meter) -> SqliteFold:
        found = self._sqlite.get(id(meter))
        if found is None or found[0] is not meter:  # the meter is held here, so its id is not reused meanwhile
            if len(self._sqlite) >= self.LIMIT:
                self._sqlite.clear()
            found = self._sqlite[id(meter)] = (meter, sqlite_fold(meter))
        return found[1]

    def postgres(self, meter: Meter) -> FoldQuery:
        found = self._postgres.get(id(meter))
        if found is None or found[0] is not meter:
            if len(self._postgres) >= self.LIMIT:
                self._postgres.clear()
            found = self._postgres[id(meter)] = (meter, postgres_fold(meter))
        return found[1]


def _range_source(meter: Meter, columns: CallColumns | None, *, postgres: bool) -> str:
    """The meter's events with seq_after < seq <= seq_upto, stored either way (event_rows.py); run with
    the parameters `range_params` gives. With `columns`, only the `events` table's: the calls are read from
    their columns (call_fold.py)."""
    where = Where(
        event_type=meter.event_type,
        seq_after=0,
        seq_upto=0,
        by_seq=True,
        columns=FOLD_COLUMNS,
        data_keys=read_keys(meter),
    )
    return events_sql(postgres, where, {}) if columns is not None else source_sql(postgres, where, {})


def read_keys(meter: Meter) -> tuple[str, ...] | None:
    """The top-level data keys the meter's paths start with (None: a path reads the whole data). A gateway
    call's derived events are built with only these for its folds: the same values at the meter's paths."""
    keys: list[str] = []
    paths = [*meter.group_by.values(), *([meter.value_property] if meter.value_property else [])]
    for path in paths:
        steps = compile_path(path)
        if not steps:
            return None
        if isinstance(steps[0], str):
            keys.append(steps[0])
    return tuple(dict.fromkeys(keys))


def range_params(low: int, high: int, event_type: str) -> dict[str, Any]:
    return {"seq_after": low, "seq_upto": high, "event_type": event_type}


# -- PostgreSQL --------------------------------------------------------------------------------------


def _pg_path(steps: tuple[str | int, ...], params: dict[str, Any], prefix: str) -> str:
    expression = "j"
    for n, step in enumerate(steps):
        if isinstance(step, int):
            expression += f" -> {int(step)}"  # an array index; on an object it reads NULL, as in Python
        else:
            params[f"{prefix}_{n}"] = step
            expression += f" -> %({prefix}_{n})s::text"
    return f"({expression})"


def postgres_fold(meter: Meter) -> FoldQuery:
    """PostgreSQL folds straight into the stored rollups: `grouped` inserts or merges the day, hour and
    minute partials of the eligible events (also taking :slug) and answers how many it left to Python."""
    columns = call_columns(meter)
    rows, params = _postgres_rows(meter, columns)
    full_rows = rows
    if columns is not None:  # the calls read from their columns (the data only of those left to Python)
        rows += " UNION ALL " + call_rows(meter, columns, postgres=True, with_data=False)
        full_rows += " UNION ALL " + call_rows(meter, columns, postgres=True, with_data=True)
    latest = "NULL, NULL::bigint, NULL::bigint"
    if meter.aggregation is Aggregation.LATEST:
        order = "ORDER BY r.time_us DESC, r.seq DESC"
        latest = f"((array_agg(r.v {order}))[1])::text, max(r.time_us), (array_agg(r.seq {order}))[1]"
    levels = ", ".join(f"({level}::bigint)" for level in LEVELS)
    grouped = (
        f"WITH r AS MATERIALIZED ({rows}), merged AS ("
        f"INSERT INTO meter_rollups ({ROLLUP_COLUMNS}) "
        "SELECT %(slug)s, lv.level, r.time_us - r.time_us %% lv.level, r.subject, r.dims, count(*), "
        f"COALESCE(sum(r.v), 0)::text, min(r.v)::text, max(r.v)::text, {latest}, min(r.time_us) "
        f"FROM r CROSS JOIN (VALUES {levels}) AS lv(level) WHERE r.ok "
        "GROUP BY lv.level, r.time_us - r.time_us %% lv.level, r.subject, r.dims "
        f"ON CONFLICT ({ROLLUP_KEY}) DO UPDATE SET {POSTGRES_MERGE} RETURNING 1) "
        "SELECT (SELECT count(*) FROM r WHERE NOT r.ok AND NOT r.sk), (SELECT count(*) FROM merged), "
        "(SELECT count(*) FROM r WHERE r.sk)"
    )
    others = (
        f"WITH r AS MATERIALIZED ({full_rows}) SELECT seq, id, source, subject, time_us, data FROM r "
        "WHERE NOT ok AND NOT sk"
    )
    return FoldQuery(grouped, others + " ORDER BY seq", params)


def _postgres_rows(meter: Meter, columns: CallColumns | None) -> tuple[str, dict[str, Any]]:
    """Four fenced levels (OFFSET 0 keeps each a subquery: pulled up, every mention of a column would
    be evaluated again): the range with a guard, the parsed JSON, each path read once (its JSON kind
    and text), then eligibility, value and dimension key."""
    params: dict[str, Any] = {}
    needs_json = bool(meter.group_by) or _uses_value(meter)
    # jsonb keeps a number's value, not its spelling: 1e16 reads back as 10000000000000000, which the
    # reference (a float) spells 1e+16. An event with an exponent anywhere goes to the Python fold, so
    # that a jsonb number spelled as an integer was written as one. \u0000 is valid JSON but not a
    # valid jsonb string: such events go to Python too.
    guard = "strpos(data, chr(92) || 'u0000') > 0 OR data ~ '[0-9][eE]'" if needs_json else "false"
    base = "seq, id, source, subject, time_us, data"
    reads: list[str] = []
    eligible = ["NOT bad", "time_us >= 0"]
    value = "NULL::numeric"
    if _uses_value(meter):
        assert meter.value_property is not None
        path = _pg_path(compile_path(meter.value_property), params, "vp")
        reads += [f"jsonb_typeof({path}) AS vk", f"{path} #>> '{{}}' AS vt"]
        usable = f"(vk = 'number' AND vt ~ {_PG_INTEGER} OR vk = 'string' AND vt ~ {PG_DECIMAL})"
        value = f"CASE WHEN {usable} THEN vt::numeric END"
        eligible.append(usable)
    dims = []
    for n, raw_path in enumerate(meter.group_by.values()):
        path = _pg_path(compile_path(raw_path), params, f"d{n}")
        reads += [f"jsonb_typeof({path}) AS d{n}k", f"{path} #>> '{{}}' AS d{n}t"]
        dims.append(
            f"COALESCE(to_json(CASE WHEN d{n}k IN ('string', 'boolean', 'number') THEN d{n}t END)::text, 'null')"
        )
        eligible.append(
            f"(d{n}k IS NULL OR d{n}k IN ('string', 'boolean', 'null') OR (d{n}k = 'number' AND d{n}t ~ {_PG_INTEGER}))"
        )
    dims_key = f"'[' || concat_ws(',', {', '.join(dims)}) || ']'" if dims else "'[]'"
    source = _range_source(meter, columns, postgres=True)
    guarded = f"(SELECT {base}, {guard} AS bad FROM ({source}) range OFFSET 0) g"
    parsed = f"(SELECT {base}, bad, CASE WHEN bad THEN NULL ELSE data::jsonb END AS j FROM {guarded} OFFSET 0) p"
    read = f"(SELECT {', '.join([base, 'bad', *reads])} FROM {parsed} OFFSET 0) x"
    rows = (
        f"SELECT {base}, COALESCE({' AND '.join(eligible)}, false) AS ok, false AS sk, {value} AS v, "
        f"{dims_key} AS dims FROM {read}"
    )
    return rows, params

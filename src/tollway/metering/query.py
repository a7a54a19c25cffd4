"""Answer a meter query from rollups: plan bucket segments, then merge buckets into windows (pure).

The plan: the range's whole minutes are cut at the range edges and every window boundary (none for
UTC windows and window-less queries: UTC windows fall on their own unit); each piece is covered by
day buckets for its whole days, hour buckets for the whole hours at its edges and minute buckets
for the minutes left (only the levels no finer than the window size), so no bucket straddles a
window or an edge. A month so far ending at 15:30 reads day buckets to 00:00, hours to 15:00 and
minutes to 15:30. The sub-minute edges, if `from` or `to` carry seconds, come from raw events.
Windows whose boundaries are not whole UTC minutes (zones with historical second offsets) are
answered from raw events entirely, by the reference aggregation.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from itertools import pairwise

from tollway.metering.aggregation import MeterQuery, QueryRow, _row_order, window_bounds
from tollway.metering.events import from_micros, to_micros
from tollway.metering.meters import Meter, WindowSize
from tollway.metering.rollup import HOUR_US, LEVELS, MINUTE_US, Partial, PartialRow, UniqueRow, parse_dims

MAX_ENUMERATED_WINDOWS = 200_000
MAX_SEGMENTS = 64  # more (many zoned windows): one level for the whole range, as fine as the boundaries need


@dataclass(frozen=True)
class Segment:
    """Buckets of one level in [start_us, end_us) (None: unbounded); edges are multiples of the level."""

    level_us: int
    start_us: int | None
    end_us: int | None


@dataclass(frozen=True)
class QueryPlan:
    level_us: int | None  # the coarsest level read; None: answer everything from raw events
    start_us: int | None  # rollup buckets in [start_us, end_us); None is unbounded
    end_us: int | None
    raw_ranges: tuple[tuple[datetime, datetime], ...] = ()
    segments: tuple[Segment, ...] = ()  # disjoint, in time order, covering [start_us, end_us)


def _ceil(value: int, step: int) -> int:
    return -((-value) // step) * step


def plan_query(query: MeterQuery, span: tuple[int, int] | None) -> QueryPlan:
    """`span`: [first day bucket, last day bucket end) holding the meter's rollups, None when empty."""
    start_us = to_micros(query.start) if query.start is not None else None
    end_us = to_micros(query.end) if query.end is not None else None
    aligned_start = _ceil(start_us, MINUTE_US) if start_us is not None else None
    aligned_end = end_us - end_us % MINUTE_US if end_us is not None else None
    if aligned_start is not None and aligned_end is not None and aligned_start >= aligned_end:
        return QueryPlan(None, start_us, end_us)
    raw: list[tuple[datetime, datetime]] = []
    if start_us is not None and aligned_start is not None and aligned_start != start_us:
        raw.append((from_micros(start_us), from_micros(aligned_start)))
    if end_us is not None and aligned_end is not None and aligned_end != end_us:
        raw.append((from_micros(aligned_end), from_micros(end_us)))
    points = [p for p in (aligned_start, aligned_end) if p is not None]
    candidates: tuple[int, ...] = LEVELS
    if query.window_size is not None:
        low = aligned_start if aligned_start is not None else (span[0] if span else None)
        high = aligned_end if aligned_end is not None else (span[1] if span else None)
        boundaries = _window_boundaries(query.window_size, query.window_tz, low, high)
        if boundaries is None:
            return QueryPlan(None, start_us, end_us)
        points.extend(boundaries)
        if query.window_size is WindowSize.MINUTE:
            candidates = (MINUTE_US,)
        elif query.window_size is WindowSize.HOUR:
            candidates = (HOUR_US, MINUTE_US)
    if any(point % MINUTE_US for point in points):
        return QueryPlan(None, start_us, end_us)
    cuts = sorted({p for p in points if p not in (aligned_start, aligned_end)})
    edges: list[int | None] = [aligned_start, *cuts, aligned_end]
    segments: list[Segment] = []
    for low_edge, high_edge in pairwise(edges):
        segments.extend(_cover(low_edge, high_edge, candidates))
    if len(segments) > MAX_SEGMENTS:
        for level in candidates:
            if all(point % level == 0 for point in points):
                segments = [Segment(level, aligned_start, aligned_end)]
                break
    merged = _merge(segments)
    coarsest = max(segment.level_us for segment in merged)
    return QueryPlan(coarsest, aligned_start, aligned_end, tuple(raw), tuple(merged))


def _cover(low: int | None, high: int | None, levels: tuple[int, ...]) -> list[Segment]:
    """[low, high) (minute multiples or unbounded) as buckets, coarsest first: no bucket crosses an edge."""
    if low is not None and high is not None and low >= high:
        return []
    level, finer = levels[0], levels[1:]
    inner_low = _ceil(low, level) if low is not None else None
    inner_high = high - high % level if high is not None else None
    if finer and inner_low is not None and inner_high is not None and inner_low >= inner_high:
        return _cover(low, high, finer)  # no whole bucket of this level inside: finer ones only
    if not finer:
        return [Segment(level, low, high)]
    before = _cover(low, inner_low, finer) if low is not None and inner_low is not None else []
    after = _cover(inner_high, high, finer) if high is not None and inner_high is not None else []
    return [*before, Segment(level, inner_low, inner_high), *after]


def _merge(segments: list[Segment]) -> list[Segment]:
    """Join neighbours of the same level (one range read each)."""
    merged: list[Segment] = []
    for segment in segments:
        last = merged[-1] if merged else None
        if last is not None and last.level_us == segment.level_us and last.end_us == segment.start_us:
            merged[-1] = Segment(last.level_us, last.start_us, segment.end_us)
        else:
            merged.append(segment)
    return merged


def _window_boundaries(size: WindowSize, zone: tzinfo, low: int | None, high: int | None) -> list[int] | None:
    """Window boundaries strictly inside (low, high) in UTC micros; None if there are too many to list."""
    if zone is UTC:
        return []  # UTC windows fall on their own unit (MONTH on whole days): the level choice covers them
    if low is None or high is None:
        return []
    found: list[int] = []
    moment = from_micros(low)
    while len(found) < MAX_ENUMERATED_WINDOWS:
        _, window_end = window_bounds(moment, size, zone)
        end_us = to_micros(window_end)
        if end_us >= high:
            return found
        found.append(end_us)
        moment = window_end
    return None


def assemble(
    meter: Meter,
    query: MeterQuery,
    rows: Iterable[PartialRow],
    uniques: Iterable[UniqueRow],
    *,
    now: datetime,
) -> list[QueryRow]:
    """Merge rollup buckets (each inside one window) into the query's rows."""
    names = list(meter.group_by)
    selected = [name for name in query.group_by if name != "subject"]
    positions = [names.index(name) for name in selected]
    filters = [(names.index(name), set(values)) for name, values in query.filter_group_by.items()]
    by_subject = "subject" in query.group_by or query.subjects is not None
    subjects = set(query.subjects) if query.subjects is not None else None
    decoded: dict[str, tuple[bool, tuple[str | None, ...]]] = {}
    windows: dict[int, tuple[datetime, datetime]] = {}

    def locate(
        bucket_us: int, subject: str, dims: str
    ) -> tuple[datetime, datetime, str | None, tuple[str | None, ...]] | None:
        if subjects is not None and subject not in subjects:
            return None
        found = decoded.get(dims)
        if found is None:
            values = parse_dims(dims)
            keep = all(values[index] in allowed for index, allowed in filters)
            found = decoded[dims] = (keep, tuple(values[index] for index in positions))
        if not found[0]:
            return None
        if query.window_size is None:
            window = (_WHOLE, _WHOLE)
        else:
            window = windows.get(bucket_us) or windows.setdefault(
                bucket_us, window_bounds(from_micros(bucket_us), query.window_size, query.window_tz)
            )
        return window[0], window[1], subject if by_subject else None, found[1]

    groups: dict[tuple[datetime, datetime, str | None, tuple[str | None, ...]], Partial] = {}
    first_us: int | None = None
    for row in rows:
        key = locate(row.bucket_us, row.subject, row.dims)
        if key is None:
            continue
        partial = groups.get(key)
        if partial is None:
            groups[key] = partial = Partial()
        partial.merge(row.partial)
        if row.partial.first_us is not None and (first_us is None or row.partial.first_us < first_us):
            first_us = row.partial.first_us
    distinct: dict[tuple[datetime, datetime, str | None, tuple[str | None, ...]], set[str]] = {}
    for unique in uniques:
        key = locate(unique.bucket_us, unique.subject, unique.dims)
        if key is not None:
            distinct.setdefault(key, set()).add(unique.digest)
    range_start = query.start or (from_micros(first_us) if first_us is not None else now)
    range_end = query.end or now
    result = []
    for key, partial in groups.items():
        count = len(distinct.get(key, ()))
        window_start, window_end, subject, values = key
        if window_start is _WHOLE:
            window_start, window_end = range_start, range_end
        result.append(
            QueryRow(
                value=partial.result(meter.aggregation, count),
                window_start=window_start,
                window_end=window_end,
                subject=subject,
                group_by=dict(zip(selected, values, strict=True)),
            )
        )
    result.sort(key=_row_order)
    return result


_WHOLE = datetime(1, 1, 1, tzinfo=UTC)

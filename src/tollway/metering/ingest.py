"""Validate CloudEvents 1.0 from outside services, with one error per bad field (pure).

Rules: specversion "1.0"; id, source, type, subject non-empty strings of at most 255 characters
without control characters; time an RFC 3339 string with an offset (default: now), from
1970-01-01T00:00:00Z and at most 5 minutes in the future (late events are fine); data a JSON
object (absent or null reads as {}); datacontenttype, if given, JSON.
A batch is all-or-nothing: one bad event rejects the whole request and nothing is stored.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from tollway.errors import ValidationError
from tollway.metering.aggregation import range_problem
from tollway.metering.events import SPEC_VERSION, Event, parse_time
from tollway.metering.jsonpath import compile_path, extract
from tollway.metering.meters import Aggregation, Meter

MAX_FUTURE = timedelta(minutes=5)
MAX_TEXT = 255
JSON_CONTENT_TYPES = ("application/json", "text/json")
_CONTROL = re.compile("[\x00-\x1f\x7f]")  # PostgreSQL text cannot hold U+0000; none belongs in an id


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


class EventValidationError(ValidationError):
    def __init__(self, errors: list[FieldError]) -> None:
        shown = "; ".join(f"{e.field}: {e.message}" for e in errors[:10])
        more = f" (and {len(errors) - 10} more)" if len(errors) > 10 else ""
        super().__init__(
            f"invalid event: {shown}{more}",
            field=errors[0].field if errors else None,
            details=tuple((e.field, e.message) for e in errors),
        )
        self.errors = errors


class RangeChecks:
    """The meters' range checks (tollway.metering.aggregation.range_problem), compiled once for a list of
    meters: per event type, the value paths that a meter of that type would aggregate as a number."""

    def __init__(self, meters: Sequence[Meter]) -> None:
        by_type: dict[str, list[tuple[Meter, tuple[str | int, ...]]]] = {}
        for meter in meters:
            if meter.value_property and meter.aggregation not in (Aggregation.COUNT, Aggregation.UNIQUE_COUNT):
                by_type.setdefault(meter.event_type, []).append((meter, compile_path(meter.value_property)))
        self._by_type = by_type

    def problems(self, events: Sequence[Event], *, batch: bool) -> list[FieldError]:
        """One error per event value a meter of its type would aggregate that lies outside the meter's range:
        refused with the batch, never silently left out."""
        by_type = self._by_type
        errors: list[FieldError] = []
        for index, event in enumerate(events):
            checks = by_type.get(event.type)
            if checks is None:
                continue
            seen: set[str] = set()
            for meter, steps in checks:
                if meter.value_property in seen:
                    continue
                problem = range_problem(extract(event.data, steps))
                if problem is not None:
                    assert meter.value_property is not None
                    seen.add(meter.value_property)
                    where = f"[{index}].data" if batch else "data"
                    errors.append(
                        FieldError(where + meter.value_property.removeprefix("$"), f"{problem} (meter {meter.slug})")
                    )
        return errors


def out_of_range(events: Sequence[Event], meters: Sequence[Meter], *, batch: bool) -> list[FieldError]:
    """One error per event value a meter of its type would aggregate that lies outside the meter's range
    (tollway.metering.aggregation.range_problem): refused with the batch, never silently left out."""
    return RangeChecks(meters).problems(events, batch=batch)


def parse_events(body: Any, *, now: datetime, not_before: datetime | None = None) -> list[Event]:
    """One event (a JSON object) or a batch (a JSON array). Raises EventValidationError.
    `not_before`: events older than this are refused (the raw events' retention)."""
    if isinstance(body, dict):
        items, batch = [body], False
    elif isinstance(body, list):
        if not body:
            raise EventValidationError([FieldError("body", "the batch is empty")])
        items, batch = body, True
    else:
        raise EventValidationError([FieldError("body", "expected a CloudEvent object or an array of them")])
    errors: list[FieldError] = []
    events: list[Event] = []
    found: list[FieldError] = []
    latest = now + MAX_FUTURE
    times: dict[str, datetime] = {}  # a batch's events often share their times
    for index, item in enumerate(items):
        event = _valid_event(item, now, latest, not_before, times)
        if event is None:  # not plainly valid: the full checks decide, and name what is wrong
            event = _parse_one(item, "", now, found, not_before)
        if found:  # parsed again with the item's place in the batch for the messages (only when refused)
            found.clear()
            _parse_one(item, f"[{index}]." if batch else "", now, errors, not_before)
        elif event is not None:
            events.append(event)
    if errors:
        raise EventValidationError(errors)
    return events


def _valid_event(
    raw: Any, now: datetime, latest: datetime, not_before: datetime | None, times: dict[str, datetime]
) -> Event | None:
    """The event of a plainly valid CloudEvent, checked in as few steps as possible (the usual case of a batch);
    None for anything else, which _parse_one then checks (it accepts exactly what this accepts, and more)."""
    if type(raw) is not dict or raw.get("specversion") != SPEC_VERSION or "data_base64" in raw:
        return None
    texts = (raw.get("id"), raw.get("source"), raw.get("type"), raw.get("subject"))
    for value in texts:
        # printable text holds no control character, and not only spaces
        if type(value) is not str or not 0 < len(value) <= MAX_TEXT or not value.isprintable() or value.isspace():
            return None
    event_id, source, event_type, subject = cast(tuple[str, str, str, str], texts)
    raw_time = raw.get("time")
    if raw_time is None:
        moment = now
    elif type(raw_time) is str:
        known = times.get(raw_time)
        if known is None:
            try:
                known = times[raw_time] = parse_time(raw_time)
            except ValueError:
                return None
        if known > latest or (not_before is not None and known < not_before):
            return None
        moment = known
    else:
        return None
    content_type = raw.get("datacontenttype")
    if (
        content_type is not None
        and content_type != "application/json"
        and (type(content_type) is not str or content_type.split(";")[0].strip().lower() not in JSON_CONTENT_TYPES)
    ):
        return None
    data = raw.get("data")
    if data is None:
        data = {}
    elif type(data) is not dict:
        return None
    # id, source, type, subject, time, data, time_defaulted: positional (a fifth cheaper than keywords)
    return Event(event_id, source, event_type, subject, moment, data, raw_time is None)


def _text(raw: dict[str, Any], name: str, where: str, errors: list[FieldError]) -> str:
    value = raw.get(name)
    # The usual case at C speed: printable text holds no control character, and not only spaces.
    if type(value) is str and 0 < len(value) <= MAX_TEXT and value.isprintable() and not value.isspace():
        return value
    if value is None:
        errors.append(FieldError(where + name, "required"))
        return ""
    if not isinstance(value, str):
        errors.append(FieldError(where + name, "must be a string"))
        return ""
    if not value.strip():
        errors.append(FieldError(where + name, "must not be empty"))
        return ""
    if len(value) > MAX_TEXT:
        errors.append(FieldError(where + name, f"at most {MAX_TEXT} characters"))
        return ""
    if _CONTROL.search(value):
        errors.append(FieldError(where + name, "must not contain control characters (U+0000 to U+001F, U+007F)"))
        return ""
    return value


def _parse_one(
    raw: Any, where: str, now: datetime, errors: list[FieldError], not_before: datetime | None = None
) -> Event | None:
    if not isinstance(raw, dict):
        errors.append(FieldError(where.rstrip(".") or "body", "must be a CloudEvent object"))
        return None
    before = len(errors)
    version = raw.get("specversion")
    if version is None:
        errors.append(FieldError(where + "specversion", "required"))
    elif version != SPEC_VERSION:
        errors.append(FieldError(where + "specversion", f"must be {SPEC_VERSION!r}"))
    event_id = _text(raw, "id", where, errors)
    source = _text(raw, "source", where, errors)
    event_type = _text(raw, "type", where, errors)
    subject = _text(raw, "subject", where, errors)
    moment = now
    raw_time = raw.get("time")
    if raw_time is not None:
        if not isinstance(raw_time, str):
            errors.append(FieldError(where + "time", "must be an RFC 3339 string, e.g. 2026-11-23T10:00:00Z"))
        else:
            try:
                moment = parse_time(raw_time)
            except ValueError as exc:
                errors.append(FieldError(where + "time", str(exc)))
            else:
                if moment > now + MAX_FUTURE:
                    errors.append(FieldError(where + "time", "more than 5 minutes in the future"))
                elif not_before is not None and moment < not_before:
                    errors.append(
                        FieldError(where + "time", "older than the events retention (TOLLWAY_EVENTS_RETENTION)")
                    )
    content_type = raw.get("datacontenttype")
    if content_type is not None and (
        not isinstance(content_type, str) or content_type.split(";")[0].strip().lower() not in JSON_CONTENT_TYPES
    ):
        errors.append(FieldError(where + "datacontenttype", "only application/json data is supported"))
    if "data_base64" in raw:
        errors.append(FieldError(where + "data_base64", "binary data is not supported; send a JSON object in data"))
    data = raw.get("data")
    if data is None:
        data = {}
    elif not isinstance(data, dict):
        errors.append(FieldError(where + "data", "must be a JSON object"))
    if len(errors) > before:
        return None
    return Event(
        id=event_id,
        source=source,
        type=event_type,
        subject=subject,
        time=moment,
        data=data,
        time_defaulted=raw_time is None,
    )

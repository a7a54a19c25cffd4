"""Journal records: a CloudEvent, an LLM call (written by the gateway, expanded when stored), or a
call's write-ahead intent and its end (intents.py)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import orjson

from tollway.metering.events import Event
from tollway.metering.intents import END_RECORD, INTENT_RECORD, intent_from_record, interrupted_call
from tollway.metering.llm import (
    CALL_RECORD,
    LlmCall,
    PriceCache,
    call_from_record,
    llm_call_events,
    llm_event_count,
)

log = logging.getLogger("tollway.metering.records")


def decode_record(line: bytes) -> list[Event]:
    """The events one journal line stands for. Raises ValueError for a line that is not a record.

    An intent or an end line stands for no event on its own (`replay_segment` pairs them)."""
    raw = _object(line)
    try:
        kind = raw.get("record")
        if kind == CALL_RECORD:
            return llm_call_events(call_from_record(raw))
        if kind in (INTENT_RECORD, END_RECORD):
            return []
        return [Event.from_cloudevent(raw)]
    except (KeyError, TypeError, IndexError, ValueError) as exc:
        raise ValueError(f"unreadable journal record: {exc}") from exc


class Replay:
    """Reads journal segments back into events, counting the lines it could not read.

    Completed calls and events are read as written. Intents are paired with their completion (or end)
    within the segment: a process copies the intents of calls still in flight into every segment it
    opens, so an intent left open in a writer's *final* segment is a call that was in flight when the
    writer died; it becomes one interrupted usage record. Open intents in earlier segments are the
    copies a later segment carries, and are left to it."""

    def __init__(self) -> None:
        self.unreadable = 0
        self.interrupted = 0
        self._prices: PriceCache = {}  # the prices read so far, shared by the calls that name them

    def segment(self, records: Sequence[bytes], *, final: bool) -> list[Event]:
        return expand(self.usage(records, final=final))

    def usage(self, records: Sequence[bytes], *, final: bool) -> list[Event | LlmCall]:
        """The segment's events and calls, calls not expanded (a store takes them as they are: insert_usage)."""
        events: list[Event | LlmCall] = []
        intents: dict[str, dict[str, Any]] = {}
        closed: set[str] = set()
        for line in records:
            try:
                raw = _object(line)
                kind = raw.get("record")
                if kind == CALL_RECORD:
                    call = call_from_record(raw, self._prices)
                    closed.add(call.request_id)
                    events.append(call)
                elif kind == INTENT_RECORD:
                    intents[str(raw["request_id"])] = raw  # a later copy knows more of the output
                elif kind == END_RECORD:
                    closed.add(str(raw["request_id"]))
                else:
                    events.append(Event.from_cloudevent(raw))
            except (KeyError, TypeError, IndexError, ValueError):
                self.unreadable += 1
                log.warning("journal: skipped an unreadable record (%d bytes)", len(line))
        if final:
            for request_id, raw in intents.items():
                if request_id in closed:
                    continue
                try:
                    call = interrupted_call(intent_from_record(raw))
                except (KeyError, TypeError, IndexError, ValueError):
                    self.unreadable += 1
                    log.warning("journal: skipped an unreadable intent of %s", request_id)
                    continue
                self.interrupted += 1
                events.append(call)
        return events


def expand(items: Sequence[Event | LlmCall]) -> list[Event]:
    """Calls as their events (`llm_call_events`), events as they are, in order."""
    events: list[Event] = []
    for item in items:
        if isinstance(item, LlmCall):
            events.extend(llm_call_events(item))
        else:
            events.append(item)
    return events


def usage_count(items: Sequence[Event | LlmCall]) -> int:
    """How many events `items` stand for."""
    return sum(llm_event_count(item) if isinstance(item, LlmCall) else 1 for item in items)


def _object(line: bytes) -> dict[str, Any]:
    try:
        raw: Any = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"unreadable journal record: {exc}") from exc
    if not isinstance(raw, dict):
        raise ValueError("unreadable journal record: not a JSON object")
    return raw

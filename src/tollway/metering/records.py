"""Journal records: a CloudEvent, or an LLM call (written by the gateway, expanded when stored)."""

from __future__ import annotations

from typing import Any

import orjson

from tollway.metering.events import Event
from tollway.metering.llm import CALL_RECORD, call_from_record, llm_call_events


def decode_record(line: bytes) -> list[Event]:
    """The events one journal line stands for. Raises ValueError for a line that is not a record."""
    try:
        raw: Any = orjson.loads(line)
        if not isinstance(raw, dict):
            raise TypeError("not a JSON object")
        if raw.get("record") == CALL_RECORD:
            return llm_call_events(call_from_record(raw))
        return [Event.from_cloudevent(raw)]
    except (orjson.JSONDecodeError, KeyError, TypeError, IndexError) as exc:
        raise ValueError(f"unreadable journal record: {exc}") from exc

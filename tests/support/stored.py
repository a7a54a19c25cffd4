"""Read what Tollway stored, straight from its database and journal (not through its API)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from tollway.adapters.sql.engine import create_sql_engine
from tollway.adapters.sql.event_rows import Where, source_sql


@dataclass(frozen=True)
class StoredEvent:
    id: str
    type: str
    subject: str
    data: dict[str, Any]

    @property
    def request_id(self) -> str:
        return self.id.rsplit(":", 1)[0]


def stored_events(database_url: str) -> list[StoredEvent]:
    """Every stored event (plain events and those derived from call rows), in insertion order."""
    engine = create_sql_engine(database_url, pool_size=1)
    try:
        with engine.connect() as connection:
            source = source_sql(engine.dialect.name == "postgresql", Where(), {})
            rows = connection.exec_driver_sql(f"SELECT id, type, subject, data FROM ({source}) ev ORDER BY seq").all()
    finally:
        engine.dispose()
    return [StoredEvent(id=r.id, type=r.type, subject=r.subject, data=orjson.loads(r.data)) for r in rows]


def calls_stored_through(
    database_url: str, marker: str, timeout_s: float = 15.0, *, subject: str | None = None
) -> list[str]:
    """The request ids of every call stored, in order, once the `llm.request` record of `marker` is there; with
    `subject`, of that subject's calls only (the calls of one test, where a module's tests share a gateway and
    each calls as a consumer of its own).

    How a test shows that a call was *not* metered without racing the flusher: after that call, it makes a
    metered call, passes that call's `x-request-id` as `marker` and asserts the list is `[marker]` (or the
    ids it expects). Records are stored in the order they were emitted, so once the later call's record is
    there, a record of the earlier call would be there too; waiting for a count, or for nothing, would not
    say which call a record belongs to.
    """
    found: list[StoredEvent] = []

    def stored() -> bool:
        found[:] = stored_events(database_url)
        return any(e.type == "llm.request" and e.request_id == marker for e in found)

    deadline = time.monotonic() + timeout_s
    while not stored():
        assert time.monotonic() < deadline, f"no record of call {marker} within {timeout_s}s"
        time.sleep(0.02)
    return list(dict.fromkeys(e.request_id for e in found if subject is None or e.subject == subject))


def request_records(events: list[StoredEvent]) -> list[StoredEvent]:
    """The `llm.request` events: one per gateway call."""
    return [e for e in events if e.type == "llm.request"]


def tokens_by_type(events: list[StoredEvent], request_id: str | None = None) -> dict[str, int]:
    totals: dict[str, int] = {}
    for event in events:
        if event.type == "llm.tokens" and (request_id is None or event.request_id == request_id):
            kind = str(event.data["type"])
            totals[kind] = totals.get(kind, 0) + int(event.data["tokens"])
    return totals


def journal_segments(directory: Path) -> dict[str, int]:
    """Journal segment files and their sizes in bytes."""
    if not directory.exists():
        return {}
    return {path.name: path.stat().st_size for path in sorted(directory.glob("*.jsonl"))}

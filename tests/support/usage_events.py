"""Read the usage events a Tollway process stored (SQLite), to check flags such as partial and estimated."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from tollway.adapters.sql.event_rows import Where, source_sql


def request_events(database: Path, subject: str | None = None) -> list[dict[str, Any]]:
    """The `llm.request` events' data, oldest first (one per gateway call); with `subject`, that subject's only."""
    params: dict[str, Any] = {}
    source = source_sql(False, Where(event_type="llm.request", subjects=None if subject is None else [subject]), params)
    with sqlite3.connect(database) as connection:
        rows = connection.execute(f"SELECT data FROM ({source}) ev ORDER BY seq", params).fetchall()
    return [json.loads(row[0]) for row in rows]

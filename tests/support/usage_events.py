"""Read the usage events a Tollway process stored (SQLite), to check flags such as partial and estimated."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any


def request_events(database: Path, subject: str | None = None) -> list[dict[str, Any]]:
    """The `llm.request` events' data, oldest first (one per gateway call); with `subject`, that subject's only."""
    query = "SELECT data FROM events WHERE type = 'llm.request' AND (? IS NULL OR subject = ?) ORDER BY seq"
    with sqlite3.connect(database) as connection:
        rows = connection.execute(query, (subject, subject)).fetchall()
    return [json.loads(row[0]) for row in rows]

"""Row shapes and the duplicate-lookup hash shared by event ingest (ingest.py) and call rows (calls.py)."""

from __future__ import annotations

import zlib

EventKey = tuple[str, str]  # (source, id)
EventRow = tuple[str, str, str, str, int, str, int]  # source, id, type, subject, time_us, data (JSON), key_hash
StoredCopy = tuple[str, str, int, str]  # type, subject, time_us, data (JSON text) of an event already stored


def key_hash(source: str, event_id: str) -> int:
    """CRC-32 of source then id (UTF-8), as a signed 32-bit integer: what migration 0020 stores for the events
    before it. It only narrows the duplicate lookup, the keys decide: a key shared by several events (one in
    ~4 billion) costs a row read, never a merge. (The CRC of the two texts one after the other is the CRC of
    their concatenation: one encode and one call.)"""
    value = zlib.crc32((source + event_id).encode())
    return value - 0x1_0000_0000 if value & 0x8000_0000 else value

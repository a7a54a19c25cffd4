"""MemoryJournal: the Journal port in memory (what a dead process 'left' can be preset)."""

from __future__ import annotations


class MemoryJournal:
    def __init__(self, left_over: list[bytes] | None = None) -> None:
        self._left_over = list(left_over or [])
        self.records: list[tuple[int, bytes]] = []  # (segment, record) not yet released
        self._segment = 1

    def recover(self) -> list[bytes]:
        records, self._left_over = self._left_over, []
        self.records = [(0, r) for r in records]
        return records

    def append(self, data: bytes) -> None:
        self.records.extend((self._segment, line) for line in data.split(b"\n") if line)

    def seal(self) -> int:
        mark = self._segment
        self._segment += 1
        return mark

    def release(self, mark: int) -> None:
        self.records = [(segment, r) for segment, r in self.records if segment > mark]

    def close(self) -> None:
        return None

"""MemoryJournal: the Journal port in memory (what a dead process 'left' can be preset)."""

from __future__ import annotations

from functools import partial

from tollway.metering.ports import Recovered, Sealed


class MemoryJournal:
    def __init__(self, left_over: list[bytes] | None = None) -> None:
        self._left_over = list(left_over or [])
        self.records: list[tuple[int, bytes]] = []  # (segment, record) not yet released
        self._segment = 1
        self.full = False  # a test's full disk: appends and probes raise ENOSPC, nothing is written

    def recover(self) -> list[Recovered]:
        records, self._left_over = self._left_over, []
        self.records = [(0, r) for r in records]
        return [Recovered(records)] if records else []

    def append(self, data: bytes) -> None:
        self._check()
        self.records.extend((self._segment, line) for line in data.split(b"\n") if line)

    def seal(self, carry: bytes = b"") -> int:
        if carry:
            self._check()
        mark = self._segment
        self._segment += 1
        self.records.extend((self._segment, line) for line in carry.split(b"\n") if line)
        return mark

    def sealed(self) -> list[Sealed]:
        marks = sorted({segment for segment, _ in self.records if segment < self._segment})
        return [Sealed(mark, partial(self._read, mark), final=mark == 0) for mark in marks]

    def _read(self, mark: int) -> list[bytes]:
        return [r for segment, r in self.records if segment == mark]

    def release(self, mark: int) -> None:
        self.records = [(segment, r) for segment, r in self.records if segment > mark]

    def probe(self) -> None:
        self._check()

    def close(self) -> None:
        return None

    def _check(self) -> None:
        if self.full:
            raise OSError(28, "No space left on device")

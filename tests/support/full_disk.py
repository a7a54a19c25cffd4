"""A disk that fills up, for the file journal: its `write` is what FileJournal writes with.

With `room` set, a write past it writes what still fits (as a real file system does when it runs out
part-way through a write) and the next write fails with ENOSPC; `free()` makes room again. The probe
/readyz runs goes through the same `write`, so a full disk fails it too.
"""

from __future__ import annotations

import errno
import os


class FullDisk:
    def __init__(self) -> None:
        self.room: int | None = None  # bytes left; None: as much as the real disk has
        self.refused = 0  # writes failed with ENOSPC
        self._writes_left: int | None = None  # full after this many more writes

    def write(self, fd: int, data: bytes | memoryview) -> int:
        if self._writes_left is not None:
            if self._writes_left == 0:
                self.room, self._writes_left = 0, None
            else:
                self._writes_left -= 1
        if self.room is None:
            return os.write(fd, data)
        if self.room == 0:
            self.refused += 1
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written = os.write(fd, data[: self.room])
        self.room -= written
        return written

    def fill(self, leaving: int = 0) -> None:
        self.room = leaving

    def fill_after(self, writes: int) -> None:
        """Full once `writes` more writes went through (e.g. 1: a call's intent, not its usage record)."""
        self._writes_left = writes

    def free(self) -> None:
        self.room, self._writes_left = None, None

"""FileJournal: newline-delimited records in segment files, one writer process per segment.

Each process writes its own segments (`<pid>-<nonce>-<seq>.jsonl`) and holds an exclusive
`flock` on every segment it has not released. At start, segments whose lock can be taken belong
to a process that died: they are adopted, replayed, and deleted once their events are stored.
Several gateway workers can therefore share one journal directory safely.
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("tollway.journal")

SUFFIX = ".jsonl"


@dataclass
class _Segment:
    path: Path
    fd: int
    seq: int
    size: int = 0


class FileJournal:
    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._prefix = f"{os.getpid()}-{secrets.token_hex(4)}-"
        self._seq = 0
        self._sealed: list[_Segment] = []
        self._current: _Segment | None = None

    def recover(self) -> list[bytes]:
        self._directory.mkdir(parents=True, exist_ok=True)
        records: list[bytes] = []
        for claimed in claim_segments(self._directory, exclude_prefix=self._prefix):
            records.extend(claimed.records)
            self._sealed.append(_Segment(path=claimed.path, fd=claimed.fd, seq=0, size=claimed.size))
        self._open_segment()
        return records

    def _open_segment(self) -> None:
        """Create the next segment, locked before it gets a name that other processes look at."""
        self._directory.mkdir(parents=True, exist_ok=True)
        self._seq += 1
        path = self._directory / f"{self._prefix}{self._seq:010d}{SUFFIX}"
        hidden = path.with_suffix(".new")
        fd = os.open(hidden, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(hidden, path)
        self._current = _Segment(path=path, fd=fd, seq=self._seq)

    def open(self) -> None:
        """Start writing, without adopting anything (the `tollway worker` does that in hand-off mode)."""
        if self._current is None:
            self._open_segment()

    def hand_off(self) -> bool:
        """Close the current segment, if it holds records, so that an ingest worker can take it.

        Used when another process stores the journal's events (`TOLLWAY_INGEST=external`): closing
        the file drops its lock, which is what tells the worker the segment is complete.
        """
        current = self._current
        if current is None or current.size == 0:
            return False
        self._open_segment()
        os.close(current.fd)
        return True

    def append(self, data: bytes) -> None:
        if self._current is None:
            self._open_segment()
        assert self._current is not None
        view = memoryview(data)
        while view:
            written = os.write(self._current.fd, view)
            view = view[written:]
        self._current.size += len(data)

    def seal(self) -> int:
        current = self._current
        if current is not None and current.size > 0:
            self._sealed.append(current)
            self._open_segment()
            return current.seq
        return self._seq - 1 if current is not None else self._seq

    def release(self, mark: int) -> None:
        keep: list[_Segment] = []
        for segment in self._sealed:
            if segment.seq <= mark:
                segment.path.unlink(missing_ok=True)
                os.close(segment.fd)
            else:
                keep.append(segment)
        self._sealed = keep

    def close(self) -> None:
        """Close files; segments still holding unstored events stay on disk for the next start."""
        for segment in [*self._sealed, *([self._current] if self._current else [])]:
            if segment is self._current and segment.size == 0:
                segment.path.unlink(missing_ok=True)
            os.close(segment.fd)
        self._sealed = []
        self._current = None

    @property
    def pending_segments(self) -> int:
        return len(self._sealed) + (1 if self._current is not None and self._current.size else 0)


@dataclass
class ClaimedSegment:
    """A segment taken from a process that no longer writes it. Holds its lock until `done` or `give_back`."""

    path: Path
    fd: int
    records: list[bytes]
    size: int

    def done(self) -> None:
        """Its records are stored: delete it."""
        self.path.unlink(missing_ok=True)
        os.close(self.fd)

    def give_back(self) -> None:
        """Storing failed: leave it for a later claim."""
        os.close(self.fd)


def claim_segments(directory: Path, *, exclude_prefix: str = "", limit: int | None = None) -> list[ClaimedSegment]:
    """Lock and read the segments no live writer holds (closed ones, and those of dead processes)."""
    claimed: list[ClaimedSegment] = []
    if not directory.exists():
        return claimed
    for path in sorted(directory.glob("*" + SUFFIX)):
        if limit is not None and len(claimed) >= limit:
            break
        if exclude_prefix and path.name.startswith(exclude_prefix):
            continue
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            continue  # taken and stored meanwhile
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)  # a live process owns it
            continue
        if not path.exists():
            os.close(fd)  # stored and deleted between our open and our lock
            continue
        with open(path, "rb") as handle:
            content = handle.read()
        lines = content.split(b"\n")
        if lines and lines[-1]:
            log.warning("journal %s: dropped a torn final record of %d bytes", path.name, len(lines[-1]))
        claimed.append(ClaimedSegment(path, fd, [line for line in lines[:-1] if line], len(content)))
    return claimed

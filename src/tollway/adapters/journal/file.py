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
        for path in sorted(self._directory.glob("*" + SUFFIX)):
            if path.name.startswith(self._prefix):
                continue
            try:
                fd = os.open(path, os.O_RDWR)
            except FileNotFoundError:
                continue  # released meanwhile by its (live) owner
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)  # a live process owns it
                continue
            if not path.exists():
                os.close(fd)
                continue
            with open(path, "rb") as handle:
                content = handle.read()
            lines = content.split(b"\n")
            if lines and lines[-1]:
                log.warning("journal %s: dropped a torn final record of %d bytes", path.name, len(lines[-1]))
            records.extend(line for line in lines[:-1] if line)
            self._sealed.append(_Segment(path=path, fd=fd, seq=0, size=len(content)))
        self._open_segment()
        return records

    def _open_segment(self) -> None:
        self._directory.mkdir(parents=True, exist_ok=True)
        self._seq += 1
        path = self._directory / f"{self._prefix}{self._seq:010d}{SUFFIX}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._current = _Segment(path=path, fd=fd, seq=self._seq)

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

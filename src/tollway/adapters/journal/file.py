"""FileJournal: newline-delimited records in segment files, one writer process per segment.

Each process writes its own segments (`<pid>-<nonce>-<seq>.jsonl`) and holds an exclusive
`flock` on every segment it has not released. At start, segments whose lock can be taken belong
to a process that died: they are adopted, replayed, and deleted once their events are stored.
Several gateway workers can therefore share one journal directory safely.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from tollway.metering.ports import Recovered, Sealed

log = logging.getLogger("tollway.journal")

SUFFIX = ".jsonl"
HIDDEN = ".new"  # a segment being created: locked, its carried records written, then renamed to SUFFIX
PROBE_BYTES = 4096
LEASE = ".lease-"  # <segment>.jsonl.lease-<worker>-<expiry, epoch seconds>: a worker is storing it
LEASE_S = 120.0  # a worker stores a claim in seconds; one that died is replaced after this

Write = Callable[[int, bytes | memoryview], int]  # os.write's shape: a test can inject a disk that fills up


@dataclass
class _Segment:
    path: Path
    fd: int
    seq: int
    size: int = 0
    carried: int = 0  # bytes at its start copied from the previous segment (intents of calls in flight)
    first_append_at: float | None = None  # wall-clock time of its first own record
    final: bool = False  # adopted from a dead writer whose last segment it was
    torn: bool = False  # a failed append left a partial record that could not be cut off

    @property
    def payload(self) -> int:
        """Bytes appended to this segment itself (beyond the copies carried into it)."""
        return self.size - self.carried


class TornWrite(OSError):
    """A write failed after `written` bytes of it reached the file (the errno is the write's)."""

    def __init__(self, written: int, cause: OSError) -> None:
        super().__init__(cause.errno, cause.strerror)
        self.written = written


class FileJournal:
    """Appends are atomic per record: a write that fails part-way (ENOSPC) is cut back off the file, so a
    torn record never glues onto the next one; where even that fails, the next record starts a new line."""

    def __init__(self, directory: Path, *, write: Write = os.write) -> None:
        self._directory = directory
        self._write = write
        self._prefix = f"{os.getpid()}-{secrets.token_hex(4)}-"
        self._seq = 0
        self._sealed: list[_Segment] = []
        self._current: _Segment | None = None

    def recover(self) -> list[Recovered]:
        self._directory.mkdir(parents=True, exist_ok=True)
        recovered: list[Recovered] = []
        for claimed in claim_segments(self._directory, exclude_prefix=self._prefix):
            recovered.append(Recovered(claimed.records, final=claimed.final))
            self._sealed.append(
                _Segment(path=claimed.path, fd=claimed.fd, seq=0, size=claimed.size, final=claimed.final)
            )
        self._open_segment()
        return recovered

    def _open_segment(self, carry: bytes = b"") -> None:
        """Create the next segment, locked and holding `carry` before it gets a name that other processes
        look at (a reader never sees a segment without the records carried into it)."""
        self._directory.mkdir(parents=True, exist_ok=True)
        seq = self._seq + 1
        path = self._directory / f"{self._prefix}{seq:010d}{SUFFIX}"
        hidden = path.with_suffix(HIDDEN)
        fd = os.open(hidden, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if carry:
                self._write_all(fd, carry)
            os.rename(hidden, path)
        except BaseException:
            os.close(fd)
            hidden.unlink(missing_ok=True)
            raise
        self._seq = seq
        self._current = _Segment(path=path, fd=fd, seq=seq, size=len(carry), carried=len(carry))

    def _write_all(self, fd: int, data: bytes) -> None:
        """Write all of `data`, or raise TornWrite saying how much of it reached the file."""
        try:  # the usual case, one call on the request path: the whole record in one write
            written = self._write(fd, data)
        except OSError as exc:
            raise TornWrite(0, exc) from exc
        if written == len(data):
            return
        view = memoryview(data)
        while written < len(data):
            try:
                written += self._write(fd, view[written:])
            except OSError as exc:
                raise TornWrite(written, exc) from exc

    def open(self) -> None:
        """Start writing, without adopting anything (the `tollway worker` does that in hand-off mode)."""
        if self._current is None:
            self._open_segment()

    def hand_off(self, carry: bytes = b"") -> bool:
        """Close the current segment, if it holds records, so that an ingest worker can take it.

        Used when another process stores the journal's events (`TOLLWAY_INGEST=external`): closing
        the file drops its lock, which is what tells the worker the segment is complete. `carry` (the
        intents of calls in flight) starts the next segment; if it cannot be written, nothing is handed
        over (False) and the current segment stays open.
        """
        current = self._current
        if current is None or current.payload == 0:
            return False
        try:
            self._open_segment(carry)
        except OSError as exc:
            log.error("journal: cannot start a new segment, keeping the current one: %s", exc)
            return False
        os.close(current.fd)
        return True

    def append(self, data: bytes) -> None:
        if self._current is None:
            self._open_segment()
        current = self._current
        assert current is not None
        if current.torn:
            data = b"\n" + data  # the partial record left by a failed append becomes a line of its own
        try:
            self._write_all(current.fd, data)
        except TornWrite as exc:
            if exc.written:
                try:
                    os.ftruncate(current.fd, current.size)  # cut the partial record off again
                except OSError:
                    current.size += exc.written
                    current.torn = True
            raise
        if current.first_append_at is None:
            current.first_append_at = time.time()
        current.size += len(data)
        current.torn = False

    def seal(self, carry: bytes = b"") -> int:
        """Start a new segment (holding `carry`) if the current one has records; the mark covers it."""
        current = self._current
        if current is not None and current.payload > 0:
            self._open_segment(carry)
            self._sealed.append(current)
            return current.seq
        return self._seq - 1 if current is not None else self._seq

    def probe(self) -> None:
        """Raise OSError unless a record-sized write to the journal's directory succeeds now."""
        self._directory.mkdir(parents=True, exist_ok=True)
        path = self._directory / f".probe-{self._prefix}tmp"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            self._write_all(fd, bytes(PROBE_BYTES))
        finally:
            os.close(fd)
            path.unlink(missing_ok=True)

    def sealed(self) -> list[Sealed]:
        return [
            Sealed(segment.seq, partial(_read_records, segment.path), final=segment.final)
            for segment in sorted(self._sealed, key=lambda s: s.seq)
        ]

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

    def oldest_unstored_age_s(self) -> float:
        """Seconds since the oldest record of this process's segments still on disk was written (0: none):
        the open segment's first record, else the last write of each segment handed over or sealed and not
        yet stored (a worker deletes a segment once stored; a lease-renamed one is being stored)."""
        now = time.time()
        oldest: float | None = None
        current = self._current
        if current is not None and current.payload > 0 and current.first_append_at is not None:
            oldest = current.first_append_at
        try:
            names = [p for p in self._directory.iterdir() if p.name.startswith(self._prefix)]
        except OSError:
            names = []
        for path in names:
            if (current is not None and path == current.path) or not (path.name.endswith(SUFFIX) or LEASE in path.name):
                continue
            try:
                written = path.stat().st_mtime
            except OSError:
                continue  # stored and deleted meanwhile
            oldest = written if oldest is None else min(oldest, written)
        return max(0.0, now - oldest) if oldest is not None else 0.0

    @property
    def pending_segments(self) -> int:
        return len(self._sealed) + (1 if self._current is not None and self._current.size else 0)


@dataclass
class ClaimedSegment:
    """A segment taken from a process that no longer writes it. Holds its lock until `done` or `give_back`.

    `final`: no later segment of the same writer exists, so the writer is gone and this was its last
    segment: intents left open in it are calls that were in flight when the writer died. `origin`: its name
    before a lease renamed it (given back under that name)."""

    path: Path
    fd: int
    records: list[bytes]
    size: int
    final: bool = True
    origin: Path | None = None

    def done(self) -> None:
        """Its records are stored: delete it."""
        self.path.unlink(missing_ok=True)
        os.close(self.fd)

    def give_back(self) -> None:
        """Storing failed: leave it for a later claim."""
        if self.origin is not None:
            with contextlib.suppress(OSError):
                os.rename(self.path, self.origin)
        os.close(self.fd)


def claim_segments(
    directory: Path,
    *,
    exclude_prefix: str = "",
    limit: int | None = None,
    holder: str | None = None,
    lease_s: float = LEASE_S,
    nested: bool = False,
) -> list[ClaimedSegment]:
    """Lock and read the segments no live writer holds (closed ones, and those of dead processes).

    With `holder` (a worker), each claim also takes a lease: the segment is renamed to
    `<name>.lease-<holder>-<expiry>`, an atomic step only one of several workers can win, even on hosts that
    share the journal volume without sharing locks; a lease whose worker died is taken over once expired.
    With `nested`, the immediate subdirectories are drained too (one per replica on a shared volume).
    """
    claimed: list[ClaimedSegment] = []
    directories = [directory]
    if nested and directory.exists():
        directories += sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))
    for folder in directories:
        left = None if limit is None else limit - len(claimed)
        if left is not None and left <= 0:
            break
        claimed.extend(_claim_in(folder, exclude_prefix=exclude_prefix, limit=left, holder=holder, lease_s=lease_s))
    return claimed


def _claim_in(
    directory: Path, *, exclude_prefix: str, limit: int | None, holder: str | None, lease_s: float
) -> list[ClaimedSegment]:
    claimed: list[ClaimedSegment] = []
    if not directory.exists():
        return claimed
    now = time.time()
    candidates = sorted(directory.glob("*" + SUFFIX))
    if holder is not None:
        candidates += sorted(p for p in directory.glob("*" + SUFFIX + LEASE + "*") if _lease_over(p, now))
    for path in candidates:
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
        origin = directory / _segment_name(path)
        taken = path
        if holder is not None:
            taken = directory / f"{origin.name}{LEASE}{holder}-{int(now + lease_s)}"
            try:
                os.rename(path, taken)
            except FileNotFoundError:
                os.close(fd)  # another worker's lease won
                continue
        with open(taken, "rb") as handle:
            content = handle.read()
        lines = content.split(b"\n")
        if lines and lines[-1]:
            log.warning("journal: %s: dropped a torn final record of %d bytes", origin.name, len(lines[-1]))
        records = [line for line in lines[:-1] if line]
        claimed.append(ClaimedSegment(taken, fd, records, len(content), origin=origin if holder is not None else None))
    if claimed:
        # A writer creates its next segment before it lets go of the previous one: looked at after the
        # claims, a segment with no later one of its writer is that writer's last.
        latest: dict[str, int] = {}
        for path in [*directory.glob("*" + SUFFIX), *directory.glob("*" + SUFFIX + LEASE + "*")]:
            writer, seq = _writer_and_seq(path)
            latest[writer] = max(seq, latest.get(writer, seq))
        for segment in claimed:
            writer, seq = _writer_and_seq(segment.path)
            segment.final = seq >= latest.get(writer, seq)
    return claimed


def _read_records(path: Path) -> list[bytes]:
    with open(path, "rb") as handle:
        lines = handle.read().split(b"\n")
    return [line for line in lines[:-1] if line]


def _segment_name(path: Path) -> str:
    """The segment's own name, without a lease suffix."""
    return path.name.partition(LEASE)[0]


def lease_holder() -> str:
    """This process as a lease holder: `<host>.<pid>.<nonce>` (no `-`, which ends the holder in a lease name)."""
    host = socket.gethostname().replace("-", "_").replace("/", "_").replace(".", "_")
    return f"{host}.{os.getpid()}.{secrets.token_hex(2)}"


def _lease_over(path: Path, now: float) -> bool:
    """Expired, or held by a process of this host that is gone (a restarted storage process takes over its
    predecessor's leases at once)."""
    holder, _, expiry = path.name.partition(LEASE)[2].rpartition("-")
    if not expiry.isdigit() or float(expiry) < now:
        return True
    host, _, rest = holder.partition(".")
    pid = rest.partition(".")[0]
    if host != socket.gethostname().replace("-", "_").replace("/", "_").replace(".", "_") or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _writer_and_seq(path: Path) -> tuple[str, int]:
    """`<pid>-<nonce>-` and the sequence number of a segment's name (-1 for a name not of that form)."""
    writer, _, seq = Path(_segment_name(path)).stem.rpartition("-")
    return writer, int(seq) if seq.isdigit() else -1

"""The request path's side of the usage journal: write-ahead intents, completions, and the journal's health.

A call is journaled before any upstream is called (`begin`); if that append fails (a full disk), the
call is refused then, before it can cost anything: usage the gateway could not record is never
spent. Its completion (`complete`, the usage record) or its end (`end`, nothing reached an upstream)
closes the intent. A completion or end that cannot be written when the call finishes is kept and
written again on the next flush; until then its intent stays open and is carried into every new
segment, so a crash in between still leaves one (interrupted) record of the call.

`error` is the journal's health: set when an append fails, cleared by the next one that succeeds or
by a successful `probe` (what /readyz runs).
"""

from __future__ import annotations

import logging
from typing import Protocol

from tollway.errors import UnavailableError
from tollway.metering.intents import CallIntent, end_record, intent_record

log = logging.getLogger("tollway.metering.journal")

JOURNAL_UNAVAILABLE = "usage_journal_unavailable"


class Appendable(Protocol):
    def append(self, data: bytes) -> None: ...

    def probe(self) -> None: ...


class JournalWriter:
    def __init__(self, journal: Appendable) -> None:
        self._journal = journal
        self.open: dict[str, CallIntent] = {}  # calls begun and not yet closed in the journal
        self._unwritten: list[tuple[str, bytes]] = []  # closing lines (request id, line) not yet written
        self.error: str | None = None  # why the last append failed; None while appends succeed
        self.failures_total = 0

    def begin(self, intent: CallIntent) -> None:
        """Journal a call before it is sent upstream; UnavailableError (nothing written) if that fails."""
        try:
            self._journal.append(intent_record(intent))
        except OSError as exc:
            self._failed(exc)
            raise UnavailableError(
                "The gateway cannot record usage right now (its usage journal is not writable), so the "
                "request was refused before it reached any provider. Try again later.",
                code=JOURNAL_UNAVAILABLE,
            ) from None
        self.error = None
        self.open[intent.request_id] = intent

    def complete(self, request_id: str, line: bytes) -> bool:
        """Journal a call's closing line (its usage record). Never raises: a line that cannot be written
        now is kept for `retry`, and the call's intent stays open meanwhile. False if it was kept."""
        if self._unwritten:
            self._unwritten.append((request_id, line))  # keep the journal's order
            return False
        try:
            self._journal.append(line)
        except OSError as exc:
            self._failed(exc)
            self._unwritten.append((request_id, line))
            return False
        self.error = None
        self.open.pop(request_id, None)
        return True

    def end(self, request_id: str) -> None:
        """A call that began but reached no upstream: close its intent, nothing to meter."""
        if request_id in self.open:
            self.complete(request_id, end_record(request_id))

    def retry(self) -> bool:
        """Write the closing lines kept after failed appends, in order. True if none is left."""
        while self._unwritten:
            request_id, line = self._unwritten[0]
            try:
                self._journal.append(line)
            except OSError as exc:
                self._failed(exc)
                return False
            self._unwritten.pop(0)
            self.open.pop(request_id, None)
            self.error = None
        return True

    def carry(self) -> bytes:
        """The intents of calls still open, for the next segment to start with."""
        return b"".join(intent_record(intent) for intent in self.open.values())

    def probe(self) -> None:
        """Raise OSError unless the journal takes writes now; on success the health flag is cleared."""
        try:
            self._journal.probe()
        except OSError as exc:
            self.error = str(exc)
            raise
        if not self.retry():
            raise OSError(f"usage records kept in memory cannot be journaled: {self.error}")
        self.error = None

    @property
    def unwritten(self) -> int:
        return len(self._unwritten)

    def _failed(self, exc: OSError) -> None:
        self.failures_total += 1
        if self.error is None:
            log.error("usage journal: an append failed; calls are refused until it is writable again: %s", exc)
        self.error = str(exc)

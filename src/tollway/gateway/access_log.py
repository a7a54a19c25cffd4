"""The opt-in access log: one line per gateway request, written by a thread of its own.

The request path only puts a small tuple on a queue; formatting and writing happen in the writer
thread. A line holds the request id, consumer, model, provider, status, tokens by type, latency and
route — never a key, a header or any part of a prompt or answer.
"""

from __future__ import annotations

import queue
import threading
import time
from datetime import UTC, datetime
from typing import IO, Literal

import orjson

from tollway.metering.llm import TokenUsage

AccessLogFormat = Literal["text", "json"]
FORMATS: tuple[AccessLogFormat, ...] = ("text", "json")

Entry = tuple[float, str, str, str, str, str, int, TokenUsage | None, float]
_STOP = None


class AccessLog:
    def __init__(self, stream: IO[str], fmt: AccessLogFormat = "text", *, owns_stream: bool = False) -> None:
        self._stream = stream
        self._format = fmt
        self._owns_stream = owns_stream
        self._queue: queue.SimpleQueue[Entry | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="tollway-access-log", daemon=True)
        self._thread.start()

    def write(
        self,
        *,
        request_id: str,
        route: str,
        consumer: str,
        model: str,
        provider: str,
        status: int,
        usage: TokenUsage | None,
        latency_s: float,
    ) -> None:
        self._queue.put((time.time(), request_id, route, consumer, model, provider, status, usage, latency_s))

    def close(self) -> None:
        """Write what is queued, then stop the writer thread."""
        self._queue.put(_STOP)
        self._thread.join(timeout=5)
        if self._owns_stream:
            self._stream.close()

    def _run(self) -> None:
        while True:
            entry = self._queue.get()
            lines = []
            stopping = entry is _STOP
            while entry is not _STOP:
                lines.append(self._line(entry))
                try:
                    entry = self._queue.get_nowait()
                except queue.Empty:
                    break
                stopping = entry is _STOP
            if lines:
                self._stream.write("".join(lines))
                self._stream.flush()
            if stopping:
                return

    def _line(self, entry: Entry) -> str:
        at, request_id, route, consumer, model, provider, status, usage, latency_s = entry
        moment = datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        tokens = usage.by_type() if usage is not None else {}
        latency_ms = round(latency_s * 1000, 3)
        if self._format == "json":
            record = {
                "time": moment,
                "request_id": request_id,
                "consumer": consumer,
                "model": model,
                "provider": provider,
                "status": status,
                "tokens": tokens,
                "latency_ms": latency_ms,
                "route": route,
            }
            return orjson.dumps(record).decode() + "\n"
        counts = " ".join(f"{name}={count}" for name, count in tokens.items())
        return (
            f"{moment} {request_id} consumer={consumer} model={model} provider={provider} status={status}"
            f"{' ' + counts if counts else ''} latency_ms={latency_ms} route={route}\n"
        )

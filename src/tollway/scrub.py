"""Secrets never leave the process: every known credential is cut out of relayed errors and log lines.

One `Scrubber` is built at the composition root from the secrets Tollway holds (each provider's API
key, the admin token) and is given to the gateway's relay, its error edge and the log handlers. The
key a consumer presented on a request is scrubbed as well: the gateway passes it per request (so keys
added at run time through the API count too), and the log filter reads it from the request's context.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Iterable

REDACTED = "[REDACTED]"
MIN_SECRET_LENGTH = 8  # a shorter value would cut ordinary words out of answers
# The key the consumer presented on the request being handled, for log lines written while handling it.
PRESENTED: contextvars.ContextVar[bytes | None] = contextvars.ContextVar("tollway_presented_key", default=None)


class Scrubber:
    """Replaces each known secret in a string or bytes with `[REDACTED]`."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._text: tuple[str, ...] = ()
        self._bytes: tuple[bytes, ...] = ()
        self.update(secrets)

    def update(self, secrets: Iterable[str | None]) -> None:
        """Replace the set of secrets (a config reload may change provider keys)."""
        unique = {s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}
        ordered = tuple(sorted(unique, key=len, reverse=True))  # longest first: one secret may contain another
        self._text = ordered
        self._bytes = tuple(s.encode() for s in ordered)
        self._longest = max((len(s) for s in self._bytes), default=0)

    def text(self, value: str, extra: bytes | str | None = None) -> str:
        """`value` without any known secret nor `extra` (the consumer's presented key)."""
        if isinstance(extra, bytes):
            extra = extra.decode("utf-8", "replace")
        secrets = (extra, *self._text) if extra and len(extra) >= MIN_SECRET_LENGTH else self._text
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value

    def bytes_after(self, value: bytes, scrubbed: int, extra: bytes | None = None) -> bytes:
        """`value` whose first `scrubbed` bytes were scrubbed already (a relay's kept tail, with a chunk
        appended): only the part where a secret could still be, one that ends past `scrubbed`, is searched."""
        longest = max(self._longest, len(extra) if extra and len(extra) >= MIN_SECRET_LENGTH else 0)
        start = max(0, scrubbed - longest + 1) if longest else len(value)
        if start >= len(value):
            return value
        if start == 0:
            return self.bytes(value, extra)
        rest = value[start:]
        cleaned = self.bytes(rest, extra)
        return value if cleaned is rest else value[:start] + cleaned

    def bytes(self, value: bytes, extra: bytes | None = None) -> bytes:
        """`value` without any known secret nor `extra` (the consumer's presented key).

        A containment check per secret first: a body that holds none is returned as is, never copied."""
        secrets = (extra, *self._bytes) if extra and len(extra) >= MIN_SECRET_LENGTH else self._bytes
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, REDACTED.encode())
        return value


class ScrubbingFilter(logging.Filter):
    """A log handler filter: the message, its arguments and a traceback are scrubbed before formatting."""

    def __init__(self, scrubber: Scrubber) -> None:
        super().__init__()
        self._scrubber = scrubber

    def filter(self, record: logging.LogRecord) -> bool:
        presented = PRESENTED.get()
        scrub = self._scrubber.text
        try:
            message = record.getMessage()
        except Exception:  # arguments that do not fit the message: the handler reports that itself
            return True
        cleaned = scrub(message, presented)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text, presented)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info, presented)
        return True


LOGGERS = ("", "uvicorn", "uvicorn.error", "uvicorn.access")


def scrub_logs(scrubber: Scrubber) -> Callable[[], None]:
    """Put a scrubbing filter on the handlers of the root and uvicorn loggers (and on logging's last resort);
    returns its removal."""
    scrubbing = ScrubbingFilter(scrubber)
    handlers = {id(h): h for name in LOGGERS for h in logging.getLogger(name).handlers}
    if logging.lastResort is not None:  # what a record reaches when no handler is configured (a spawned worker)
        handlers[id(logging.lastResort)] = logging.lastResort
    for handler in handlers.values():
        handler.addFilter(scrubbing)

    def remove() -> None:
        for handler in handlers.values():
            handler.removeFilter(scrubbing)

    return remove

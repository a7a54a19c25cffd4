"""What the gateway hands usage to. Two implementations: UsagePipeline (stores in-process) and
HandOffSink (journals only; `tollway worker` stores, see spool.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from tollway.metering.events import Event
from tollway.metering.intents import CallIntent
from tollway.metering.llm import LlmCall


class UsageSink(Protocol):
    @property
    def backlog(self) -> int:
        """Events emitted and not yet stored, as far as this process knows."""
        ...

    def emit(self, events: Sequence[Event]) -> None:
        """Take events. Durable against a kill of this process once it returns."""
        ...

    def begin(self, intent: CallIntent) -> None:
        """Journal a call before it is sent upstream (its write-ahead intent). Raises UnavailableError
        when that cannot be done: the call must then be refused before it reaches any provider."""
        ...

    def record_call(self, call: LlmCall) -> None:
        """Take one finished LLM call (journaled as one small record, expanded to events when stored).
        Closes the call's intent. Never fails on a full journal disk (the record is kept and retried)."""
        ...

    def end(self, request_id: str) -> None:
        """A begun call ended without reaching any upstream (and without a record): close its intent."""
        ...

    def probe(self) -> None:
        """Raise OSError unless usage can be journaled now (what /readyz asks)."""
        ...

    async def start(self) -> None: ...

    async def halt(self) -> None:
        """Stop the periodic work (a shutdown's first step) without storing what is left; `stop` does that."""
        ...

    async def stop(self, timeout_s: float = 10.0) -> bool:
        """Stop; True if nothing this process emitted is left unstored (or unhanded)."""
        ...

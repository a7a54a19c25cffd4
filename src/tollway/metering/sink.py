"""What the gateway hands usage to. Two implementations: UsagePipeline (stores in-process) and
HandOffSink (journals only; `tollway worker` stores, see spool.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from tollway.metering.events import Event
from tollway.metering.llm import LlmCall


class UsageSink(Protocol):
    @property
    def backlog(self) -> int:
        """Events emitted and not yet stored, as far as this process knows."""
        ...

    def emit(self, events: Sequence[Event]) -> None:
        """Take events. Durable against a kill of this process once it returns."""
        ...

    def record_call(self, call: LlmCall) -> None:
        """Take one finished LLM call (journaled as one small record, expanded to events when stored)."""
        ...

    async def start(self) -> None: ...

    async def stop(self, timeout_s: float = 10.0) -> bool:
        """Stop; True if nothing this process emitted is left unstored (or unhanded)."""
        ...

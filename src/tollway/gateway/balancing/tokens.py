"""Counts the tokens each target's answers used against its tokens_per_minute budget, on the way to the sink."""

from __future__ import annotations

from collections.abc import Sequence

from tollway.gateway.balancing.policy import BalancingPolicy
from tollway.metering.events import Event
from tollway.metering.intents import CallIntent
from tollway.metering.llm import LlmCall
from tollway.metering.sink import UsageSink


class TokenCounting:
    """A UsageSink that tells the policy each call's tokens, then hands the call on unchanged."""

    def __init__(self, inner: UsageSink, policy: BalancingPolicy) -> None:
        self._inner = inner
        self._policy = policy

    @property
    def backlog(self) -> int:
        return self._inner.backlog

    def emit(self, events: Sequence[Event]) -> None:
        self._inner.emit(events)

    def begin(self, intent: CallIntent) -> None:
        self._inner.begin(intent)

    def record_call(self, call: LlmCall) -> None:
        if call.usage is not None:
            self._policy.spent(call.provider, call.upstream_model, call.usage.total)
        self._inner.record_call(call)

    def end(self, request_id: str) -> None:
        self._inner.end(request_id)

    def probe(self) -> None:
        self._inner.probe()

    async def start(self) -> None:
        await self._inner.start()

    async def halt(self) -> None:
        await self._inner.halt()

    async def stop(self, timeout_s: float = 10.0) -> bool:
        return await self._inner.stop(timeout_s)

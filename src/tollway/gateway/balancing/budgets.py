"""A target's budget per minute (requests and tokens), in fixed windows that start on the clock's minute."""

from __future__ import annotations

from tollway.gateway.balancing.settings import BudgetSettings

MINUTE_S = 60.0


class Budget:
    __slots__ = ("_max_requests", "_max_tokens", "requests", "tokens", "window")

    def __init__(self, settings: BudgetSettings) -> None:
        self._max_requests = settings.requests_per_minute
        self._max_tokens = settings.tokens_per_minute
        self.window = -1.0  # the minute (epoch seconds // 60) the counts belong to
        self.requests = 0
        self.tokens = 0

    def _roll(self, now: float) -> None:
        window = now // MINUTE_S
        if window != self.window:
            self.window, self.requests, self.tokens = window, 0, 0

    def allows(self, now: float) -> bool:
        self._roll(now)
        if self._max_requests is not None and self.requests >= self._max_requests:
            return False
        return self._max_tokens is None or self.tokens < self._max_tokens

    def resets_at(self) -> float:
        return (self.window + 1) * MINUTE_S

    def take_request(self, now: float) -> None:
        self._roll(now)
        self.requests += 1

    def take_tokens(self, now: float, tokens: int) -> None:
        self._roll(now)
        self.tokens += tokens

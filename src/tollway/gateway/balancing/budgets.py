"""A target's budget per minute (requests and tokens), in fixed windows that start on the clock's minute.

With shared routing state (gateway/balancing/fleet.py) the budget is the fleet's: `others_requests` and
`others_tokens` are what the other processes took in this window as of the last exchange with them, counted
with this process's own `requests` and `tokens`.
"""

from __future__ import annotations

from tollway.gateway.balancing.settings import BudgetSettings

MINUTE_S = 60.0


class Budget:
    __slots__ = (
        "_max_requests",
        "_max_tokens",
        "others_requests",
        "others_tokens",
        "requests",
        "sent_requests",
        "sent_tokens",
        "tokens",
        "window",
    )

    def __init__(self, settings: BudgetSettings) -> None:
        self._max_requests = settings.requests_per_minute
        self._max_tokens = settings.tokens_per_minute
        self.window = -1.0  # the minute (epoch seconds // 60) the counts belong to
        self.requests = 0  # this process's, in the window
        self.tokens = 0
        self.others_requests = 0  # the other processes', in the window, as last learned (shared state only)
        self.others_tokens = 0
        self.sent_requests = 0  # of this process's, how many the others have been told of
        self.sent_tokens = 0

    def roll(self, now: float) -> None:
        window = now // MINUTE_S
        if window != self.window:
            self.window, self.requests, self.tokens = window, 0, 0
            self.others_requests = self.others_tokens = self.sent_requests = self.sent_tokens = 0

    def allows(self, now: float) -> bool:
        self.roll(now)
        if self._max_requests is not None and self.requests + self.others_requests >= self._max_requests:
            return False
        return self._max_tokens is None or self.tokens + self.others_tokens < self._max_tokens

    def resets_at(self) -> float:
        return (self.window + 1) * MINUTE_S

    def take_request(self, now: float) -> None:
        self.roll(now)
        self.requests += 1

    def take_tokens(self, now: float, tokens: int) -> None:
        self.roll(now)
        self.tokens += tokens

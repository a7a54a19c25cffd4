"""An admission hook that says when a call is refused at a limit, so that whoever watches limits can look now
(the notification worker's threshold round: a customer refused at its hard limit hears of its 100% at once,
not at the next round)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from tollway.errors import LimitExceededError
from tollway.gateway.hooks import Admission, Admit, Estimates, Reservation
from tollway.spend.admission import Estimate


class NoticeRefusals:
    def __init__(self, inner: Admission, on_refused: Callable[[str | None, datetime | None], None]) -> None:
        self._inner = inner
        self._on_refused = on_refused  # (the limit's name, when it resets); cheap: it runs on the request path

    async def estimate(self, call: Admit) -> Estimate | None:
        """The wrapped admission's cost estimate (POST /v1/cost/estimate), if it makes them."""
        if isinstance(self._inner, Estimates):
            return await self._inner.estimate(call)
        return None

    async def admit(self, call: Admit) -> Reservation:
        try:
            return await self._inner.admit(call)
        except LimitExceededError as exc:
            self._on_refused(exc.limit, exc.resets_at)
            raise

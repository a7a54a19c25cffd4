"""Usage events built by hand, for tests that feed the meters directly (no gateway in between)."""

from __future__ import annotations

from datetime import datetime

from tollway.metering.events import Event
from tollway.metering.llm import TOKENS_EVENT


def token_event(
    event_id: str,
    subject: str,
    at: datetime,
    tokens: int,
    *,
    kind: str = "output",
    model: str = "gpt-4o",
    provider: str = "openai",
) -> Event:
    """One `llm.tokens` event as the gateway writes one: `tokens` of one token type (`kind`) of a successful call,
    with the dimensions the built-in `llm_tokens` meter groups by (model, provider, type, status_code)."""
    data = {"tokens": tokens, "type": kind, "model": model, "provider": provider, "status_code": 200}
    return Event(id=event_id, source="test", type=TOKENS_EVENT, subject=subject, time=at, data=data)

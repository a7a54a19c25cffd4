"""One varied gateway call per number, for tests of how calls are stored (rows, their derived events, dedup)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from tollway.metering.llm import LlmCall, TokenPrice, TokenUsage

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
PRICE = TokenPrice(input=Decimal("0.0000025"), output=Decimal("0.00001"), cache_read=Decimal("0.00000125"))


def sample_call(n: int = 1, **changes: Any) -> LlmCall:
    """Call `n` (its id, subject, time before NOW, streaming and token counts vary with n), with `changes` applied."""
    fields: dict[str, Any] = {
        "request_id": f"req_{n:04d}",
        "subject": f"customer-{n % 3}",
        "time": NOW - timedelta(minutes=60 - n),
        "model": "gpt-4o",
        "upstream_model": "gpt-4o-2024-08-06",
        "provider": "openai",
        "route": "/v1/chat/completions",
        "status_code": 200,
        "streamed": n % 2 == 0,
        "usage": TokenUsage(input=100 + n, output=20 + n, cache_read=5 * (n % 4), cache_write=n % 5, reasoning=n % 3),
        "price": PRICE,
        "duration_ms": 40 + n,
    }
    fields.update(changes)
    return LlmCall(**fields)

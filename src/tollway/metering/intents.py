"""Write-ahead intents: a gateway call is journaled when it starts, before any upstream is called.

The intent (`llm.intent`) names the call (request id, subject, model, the target first in line, the
time, an estimate of its input tokens and the target's price). The call's usage record (`llm.call`)
completes it; a call that ends without reaching any upstream is closed with an `llm.end` line. A
journal replayed after a crash therefore knows which calls were in flight: an intent left open in
its writer's last segment becomes one usage record flagged `interrupted` (the estimated input, the
output as far as the journal knows, the provider cost of those), with the call's own event ids, so
that a replay of it deduplicates like any other and a record the call did store first wins.

While a process runs, the intents of calls still in flight are carried into each new journal
segment it opens, so deleting an older segment never drops one, and the last segment of a writer
holds every call it had in flight when it died.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from tollway.metering.events import parse_time
from tollway.metering.llm import LINE_OPTIONS, LlmCall, TokenPrice, TokenUsage

INTENT_RECORD = "llm.intent"
END_RECORD = "llm.end"
INTERRUPTED_STATUS = 0  # the status of an interrupted call: none is known (the gateway stopped before it)


@dataclass(slots=True)
class CallIntent:
    """A call about to be sent upstream. `output` grows while it streams (what a carried copy reports)."""

    request_id: str
    subject: str
    time: datetime
    model: str
    upstream_model: str
    provider: str
    route: str
    streamed: bool
    input_tokens: int  # estimated from the request body
    price: TokenPrice | None = None
    requested_model: str | None = None
    output_tokens: int = 0  # output seen so far (content chunks of a stream), as of the last carried copy
    progress: Callable[[], int] | None = None  # the output so far, read when a copy is carried (not per chunk)


def intent_record(intent: CallIntent) -> bytes:
    """The intent as one journal line (newline included)."""
    return orjson.dumps(
        {
            "record": INTENT_RECORD,
            "request_id": intent.request_id,
            "subject": intent.subject,
            "time": intent.time,
            "model": intent.model,
            "requested_model": intent.requested_model,
            "upstream_model": intent.upstream_model,
            "provider": intent.provider,
            "route": intent.route,
            "streamed": intent.streamed,
            "input_tokens": intent.input_tokens,
            "output_tokens": intent.output_tokens if intent.progress is None else intent.progress(),
            "price": None if intent.price is None else intent.price.texts,
        },
        option=LINE_OPTIONS,
    )


def end_record(request_id: str) -> bytes:
    """The line that closes an intent whose call reached no upstream (nothing to meter)."""
    return orjson.dumps({"record": END_RECORD, "request_id": request_id}, option=orjson.OPT_APPEND_NEWLINE)


def intent_from_record(raw: dict[str, Any]) -> CallIntent:
    """Read a line written by `intent_record`. Raises KeyError / ValueError / TypeError."""
    price = raw["price"]
    return CallIntent(
        request_id=str(raw["request_id"]),
        subject=str(raw["subject"]),
        time=parse_time(str(raw["time"])),
        model=str(raw["model"]),
        requested_model=None if raw.get("requested_model") is None else str(raw["requested_model"]),
        upstream_model=str(raw["upstream_model"]),
        provider=str(raw["provider"]),
        route=str(raw["route"]),
        streamed=bool(raw["streamed"]),
        input_tokens=int(raw["input_tokens"]),
        output_tokens=int(raw.get("output_tokens") or 0),
        price=None
        if price is None
        else TokenPrice(
            Decimal(price[0]),
            Decimal(price[1]),
            None if price[2] is None else Decimal(price[2]),
            None if price[3] is None else Decimal(price[3]),
        ),
    )


def interrupted_call(intent: CallIntent) -> LlmCall:
    """The usage record of a call the gateway did not see finish: estimated, partial, interrupted."""
    return LlmCall(
        request_id=intent.request_id,
        subject=intent.subject,
        time=intent.time,
        model=intent.model,
        upstream_model=intent.upstream_model,
        provider=intent.provider,
        route=intent.route,
        status_code=INTERRUPTED_STATUS,
        streamed=intent.streamed,
        usage=TokenUsage(input=intent.input_tokens, output=intent.output_tokens),
        partial=True,
        estimated=True,
        interrupted=True,
        price=intent.price,
        requested_model=intent.requested_model,
    )

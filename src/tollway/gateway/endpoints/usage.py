"""GET /v1/usage: a key holder's own usage and what its budgets have left, with its key (no admin token).
The report itself is built outside the gateway (the composition root passes it in): it reads meter rollups and
the budgets' state, off the LLM request path."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from tollway.gateway.call import Call
from tollway.gateway.endpoint import HandlerEndpoint, Steps
from tollway.gateway.errors import OPENAI
from tollway.gateway.http import Receive, Scope, Send

# (consumer username, the key as presented) -> the JSON body
UsageReport = Callable[[str, bytes], Awaitable[dict[str, Any]]]


def usage_endpoint(report: UsageReport) -> HandlerEndpoint:
    async def handle(flow: Steps, scope: Scope, receive: Receive, send: Send, call: Call) -> None:
        assert call.consumer is not None
        assert call.key is not None
        body = await report(call.consumer.username, call.key)
        await flow.respond(send, call, 200, orjson.dumps(body))

    return HandlerEndpoint(path="/v1/usage", handle=handle, errors=OPENAI)

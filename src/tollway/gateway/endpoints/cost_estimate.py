"""POST /v1/cost/estimate: what a chat, Messages or Responses request would cost and whether spend control
would let it through right now, without calling any upstream and without metering anything.

The body is the request it estimates. Its API is the `api` query parameter (`chat`, `messages`, `responses`);
without one, a body with `input` is a Responses request, a request with an `anthropic-version` header a Messages
request, anything else a chat completion. Answers in OpenAI's error shape; amounts are decimal strings.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import orjson

from tollway.errors import ValidationError
from tollway.gateway.call import Call
from tollway.gateway.endpoint import HandlerEndpoint, LlmEndpoint, Steps
from tollway.gateway.endpoints.chat_completions import CHAT_COMPLETIONS
from tollway.gateway.endpoints.messages import MESSAGES
from tollway.gateway.endpoints.responses import RESPONSES
from tollway.gateway.errors import OPENAI
from tollway.gateway.hooks import Admit
from tollway.gateway.http import Receive, Scope, Send
from tollway.metering.events import format_time
from tollway.money import decimal_text

APIS: dict[str, LlmEndpoint] = {"chat": CHAT_COMPLETIONS, "messages": MESSAGES, "responses": RESPONSES}


def _api(scope: Scope, body: bytes) -> LlmEndpoint:
    query = parse_qs((scope.get("query_string") or b"").decode("latin-1"))
    chosen = query.get("api", [None])[0]
    if chosen is not None:
        if chosen not in APIS:
            raise ValidationError("api must be chat, messages or responses", field="api")
        return APIS[chosen]
    if any(name == b"anthropic-version" for name, _ in scope["headers"]):
        return MESSAGES
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return CHAT_COMPLETIONS  # its parser names the problem
    return RESPONSES if isinstance(parsed, dict) and "input" in parsed else CHAT_COMPLETIONS


async def estimate_cost(flow: Steps, scope: Scope, receive: Receive, send: Send, call: Call) -> None:
    assert call.consumer is not None
    body = await flow.read(scope, receive)
    endpoint = _api(scope, body)
    parsed = endpoint.parse(body)
    route = flow.resolve(call, parsed.model)
    call.model = "-"  # an estimate is not a call to the model (metric labels)
    admit = Admit(
        call.request_id,
        call.consumer,
        parsed.model,
        endpoint.path,
        parsed.stream,
        parsed.prompt,
        route,
        parsed.payload,
        scope["headers"],
    )
    estimate = await flow.estimate(admit)
    if estimate is None:
        raise ValidationError("cost estimates need spend control, which this gateway does not run")
    answer: dict[str, Any] = {
        "model": route.model,
        "api": next(name for name, e in APIS.items() if e is endpoint),
        "cost": {
            "min": decimal_text(estimate.cost[0]),
            "max": decimal_text(estimate.cost[1]),
            "currency": estimate.currency,
        },
        "providerCost": {
            "min": decimal_text(estimate.provider_cost[0]),
            "max": decimal_text(estimate.provider_cost[1]),
            "currency": "USD",
        },
        "allowed": estimate.allowed,
        "refusal": estimate.refusal,
        "limits": [
            {
                "name": check.name,
                "limit": decimal_text(check.limit),
                "used": decimal_text(check.used),
                "reserved": decimal_text(check.reserved),
                "needed": decimal_text(check.needed),
                "resetsAt": format_time(check.resets_at) if check.resets_at is not None else None,
                "fits": check.fits,
            }
            for check in estimate.limits
        ],
    }
    await flow.respond(send, call, 200, orjson.dumps(answer))


COST_ESTIMATE = HandlerEndpoint(path="/v1/cost/estimate", handle=estimate_cost, errors=OPENAI, method="POST")

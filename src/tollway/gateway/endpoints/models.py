"""GET /v1/models and GET /v1/models/{model}: the models a consumer may use."""

from __future__ import annotations

import orjson

from tollway.gateway.call import Call
from tollway.gateway.endpoint import HandlerEndpoint, Steps
from tollway.gateway.errors import OPENAI
from tollway.gateway.http import Receive, Scope, Send

PREFIX = "/v1/models/"


async def list_models(flow: Steps, scope: Scope, receive: Receive, send: Send, call: Call) -> None:
    assert call.consumer is not None
    created = int(flow.now().timestamp())
    data = [
        {"id": name, "object": "model", "created": created, "owned_by": "tollway"}
        for name in flow.state.router.visible_to(call.consumer)
    ]
    await flow.respond(send, call, 200, orjson.dumps({"object": "list", "data": data}))


async def retrieve_model(flow: Steps, scope: Scope, receive: Receive, send: Send, call: Call) -> None:
    name = scope["path"][len(PREFIX) :]
    flow.resolve(call, name)  # raises model_not_found
    call.model = "-"  # metric labels stay as before: a model lookup is not a call to that model
    created = int(flow.now().timestamp())
    model = {"id": name, "object": "model", "created": created, "owned_by": "tollway"}
    await flow.respond(send, call, 200, orjson.dumps(model))


MODELS = HandlerEndpoint(path="/v1/models", handle=list_models, errors=OPENAI)
MODEL = HandlerEndpoint(path=PREFIX, handle=retrieve_model, errors=OPENAI, label="/v1/models/{model}")

"""Endpoints at paths the config file chooses (`routes: [{path: /chat, model: gpt-4o}]`): an OpenAI-format
endpoint (chat completions or embeddings) served at another path, with a default model for requests that name
none. Clients written against a gateway whose routes carry the model (Kong's ai-proxy on `/chat`) keep working
unchanged. A request that names a model keeps it (the consumer's allowed models still apply)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace

import orjson

from tollway import bounded_json
from tollway.errors import DomainError
from tollway.gateway.endpoint import LlmEndpoint
from tollway.gateway.endpoints.chat_completions import CHAT_COMPLETIONS
from tollway.gateway.endpoints.embeddings import EMBEDDINGS

KINDS: dict[str, LlmEndpoint] = {"chat": CHAT_COMPLETIONS, "embeddings": EMBEDDINGS}


def with_default_model(model: str) -> Callable[[bytes], bytes]:
    """The body with `"model": model` added when it names none; anything else (not JSON, not an object, a model
    given) is left for the endpoint's parser to take or refuse as usual."""

    def prepare(body: bytes) -> bytes:
        try:
            payload = bounded_json.decode(body, field=None)  # the parser's own checks (duplicate keys, depth...)
        except DomainError:
            return body  # the parser refuses it with the usual error
        if not isinstance(payload, dict) or "model" in payload:
            return body
        payload["model"] = model
        return orjson.dumps(payload)

    return prepare


def path_endpoints(routes: Iterable[tuple[str, str, str]]) -> dict[str, LlmEndpoint]:
    """(path, kind, default model) per configured route -> the endpoint served at that path."""
    return {path: replace(KINDS[kind], prepare=with_default_model(model)) for path, kind, model in routes}

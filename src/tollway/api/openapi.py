"""OpenAPI descriptions of the management routes: RFC 7807 problem responses and request-body schemas."""

from __future__ import annotations

import copy
import functools
from typing import Any

from pydantic import BaseModel

from tollway.api.wire import Json

_PROBLEM_SCHEMA: Json = {
    "type": "object",
    "description": "RFC 7807 problem details; `field` names the offending request field.",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "field": {"type": "string"},
    },
    "required": ["type", "title", "status", "detail"],
}
_PROBLEM_TEXT = {
    400: "Bad request: the named field is invalid; nothing was stored.",
    401: "Missing or wrong admin token.",
    404: "Not found.",
    409: "Conflict with the stored state (named field); nothing was changed.",
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """RFC 7807 error responses for a route's OpenAPI description (401 always)."""
    return {
        status: {
            "description": _PROBLEM_TEXT[status],
            "content": {"application/problem+json": {"schema": _PROBLEM_SCHEMA}},
        }
        for status in sorted({401, *statuses})
    }


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` describing a JSON request body by a pydantic model, self-contained (no $refs): the route
    decodes the body itself, to name the offending field of any refusal."""
    return copy.deepcopy(_body_schema(model))


@functools.cache  # a pure function of the model class; generating a schema costs ~20 ms
def _body_schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return inline(definitions[ref.removeprefix("#/$defs/")])
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    return {"requestBody": {"required": True, "content": {"application/json": {"schema": inline(schema)}}}}

"""OpenAPI descriptions of the management routes: RFC 7807 problem responses, request-body schemas, and the
document itself (`install_openapi`), completed with what every route shares: the admin bearer token (with its
401 and the 429 of the auth-failure limit), the 400 for a bad parameter or body, the 404 for an unknown path id,
the 413 for an oversized body."""

from __future__ import annotations

import copy
import functools
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
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
        "errors": {
            "type": "array",
            "description": "One entry per invalid field.",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                "required": ["field", "message"],
            },
        },
    },
    "required": ["type", "title", "status", "detail"],
}
_PROBLEM_TEXT = {
    400: "Bad request: the named field is invalid; nothing was stored.",
    401: "Missing or wrong admin token.",
    404: "Not found.",
    409: "Conflict with the stored state (named field); nothing was changed.",
    413: "The request body is over the size limit; nothing was stored.",
    415: "Unsupported content type; nothing was stored.",
    429: "Too many failed authentications from this address (TOLLWAY_AUTH_FAILURE_LIMIT): retry after `Retry-After`.",
    501: "Not supported by Tollway: the detail names what to use instead.",
    503: "Not configured on this server.",
}
# What Python's str.strip() and re's \\s take for white space (the handlers' notion of blank), spelled out for
# schema regexes: ECMA's \\s (JSON Schema's) lacks U+001C-U+001F and U+0085 and adds U+FEFF.
SPACE = "\\t\\n\\u000b\\f\\r\\u001c-\\u001f \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
# A non-blank string of at most 255 characters without control characters (an event's id, source, type, subject).
TEXT_255: Json = {
    "type": "string",
    "minLength": 1,
    "maxLength": 255,
    "pattern": f"^[^\\u0000-\\u001f\\u007f]*[^{SPACE}\\u0000-\\u001f\\u007f][^\\u0000-\\u001f\\u007f]*$",
}
# An RFC 3339 time within the window every stored or queried time lies in (1970 to 2200).
TIME: Json = {"type": "string", "format": "date-time", "pattern": "^(19[7-9][0-9]|2[01][0-9][0-9])-"}


def or_empty(schema: Json) -> Json:
    """A query parameter the route reads as absent when it is given empty (`?to=`)."""
    return {"anyOf": [schema, {"type": "string", "maxLength": 0}]}


NON_BLANK: Json = {"minLength": 1, "pattern": f"[^{SPACE}]"}  # json_schema_extra of a string that must not be blank
SECURITY_SCHEME = "adminToken"
PUBLIC: Json = {"security": []}  # `openapi_extra` of a route that takes no admin token


def problem_responses(*statuses: int, public: bool = False) -> dict[int | str, dict[str, Any]]:
    """RFC 7807 error responses for a route's OpenAPI description (401 too, unless public)."""
    return {
        status: {
            "description": _PROBLEM_TEXT[status],
            "content": {"application/problem+json": {"schema": copy.deepcopy(_PROBLEM_SCHEMA)}},
        }
        for status in sorted({*statuses} if public else {401, *statuses})
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


def install_openapi(app: FastAPI) -> None:
    """Make `app.openapi()` (served at /openapi.json) the completed description of the app's routes."""

    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            app.openapi_schema = complete(spec)
        return app.openapi_schema

    app.openapi = document  # type: ignore[method-assign]


def complete(spec: dict[str, Any]) -> dict[str, Any]:
    """What FastAPI's generated document leaves out or gets wrong for these routes, filled in on every operation:
    the security scheme; a problem+json 401 and 429 (unless public), 400 (when it takes parameters or a body), 404 (when
    its path names something), 413 (when it takes a body); no 422 (validation failures answer 400); optional
    query parameters as their own type (FastAPI writes `anyOf: [type, null]`, but a query has no null)."""
    spec = copy.deepcopy(spec)  # route declarations (openapi_extra) are shared module constants
    components = spec.setdefault("components", {})
    components.setdefault("securitySchemes", {})[SECURITY_SCHEME] = {
        "type": "http",
        "scheme": "bearer",
        "description": "`Authorization: Bearer $TOLLWAY_ADMIN_TOKEN`",
    }
    spec["security"] = [{SECURITY_SCHEME: []}]
    for operations in spec.get("paths", {}).values():
        for operation in operations.values():
            parameters = operation.get("parameters", [])
            for parameter in parameters:
                parameter["schema"] = _without_nul(_without_null(parameter.get("schema", {})))
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            statuses = set()
            if operation.get("security") != []:
                statuses |= {401, 429}
            if parameters or "requestBody" in operation:
                statuses.add(400)
            if any(p.get("in") == "path" for p in parameters):
                statuses.add(404)
            if "requestBody" in operation:
                statuses.add(413)
            for status, response in problem_responses(*statuses, public=True).items():
                responses.setdefault(str(status), response)
            if "429" in responses:
                responses["429"].setdefault("headers", {})["Retry-After"] = {
                    "description": "Seconds until this address may try again.",
                    "schema": {"type": "integer"},
                }
    schemas = components.get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    if not schemas:
        components.pop("schemas", None)
    return spec


NO_NUL = "^[^\\u0000]*$"  # every path and query parameter refuses NUL (tollway.api.params): say so


def _without_nul(schema: Json) -> Json:
    """A string parameter (or a list of them) without a pattern of its own gets one that excludes NUL."""
    if schema.get("type") == "string" and "pattern" not in schema and "enum" not in schema:
        return {**schema, "pattern": NO_NUL}
    items = schema.get("items")
    if schema.get("type") == "array" and isinstance(items, dict):
        return {**schema, "items": _without_nul(items)}
    return schema


def _without_null(schema: Json) -> Json:
    options = schema.get("anyOf")
    if isinstance(options, list):
        kept = [o for o in options if o != {"type": "null"}]
        if len(kept) == 1:
            rest = {k: v for k, v in schema.items() if k != "anyOf"}
            return {**kept[0], **rest}
    return schema

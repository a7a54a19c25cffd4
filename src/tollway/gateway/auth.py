"""The consumer's key in a request: read from its headers (or moved out of the query string), to be looked up in
the key index (tollway.identity.key_index)."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any
from urllib.parse import unquote_to_bytes


def presented_key(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """The key from `Authorization: Bearer`, `x-api-key`, `x-goog-api-key` (Google's clients) or `apikey`,
    in that order of preference."""
    bearer = api_key = goog = kong = None
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            if scheme.lower() == b"bearer" and token.strip():
                bearer = token.strip()
        elif name == b"x-api-key":
            api_key = value.strip()
        elif name == b"x-goog-api-key":
            goog = value.strip()
        elif name == b"apikey":
            kong = value.strip()
    return bearer or api_key or goog or kong


def key_from_query(
    scope: MutableMapping[str, Any], name: bytes = b"key", header: bytes = b"x-goog-api-key"
) -> MutableMapping[str, Any]:
    """The scope with a query parameter that carries the key (`?key=`, Google's clients; `?apikey=`, Kong's
    key-auth) moved into a header (`x-goog-api-key`, `apikey`) and gone from the query string, so nothing that
    logs, echoes or forwards the URL sees it. The first occurrence is the key, and every occurrence leaves the
    query; none: the scope as it was."""
    query: bytes = scope.get("query_string") or b""
    if name + b"=" not in query:
        return scope
    kept: list[bytes] = []
    key: bytes | None = None
    for pair in query.split(b"&"):
        found, _, value = pair.partition(b"=")
        if found != name:
            kept.append(pair)
        elif key is None:
            key = unquote_to_bytes(value.replace(b"+", b" "))
    if key is None:
        return scope
    return {**scope, "query_string": b"&".join(kept), "headers": [*scope["headers"], (header, key)]}

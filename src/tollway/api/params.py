"""Checks on the request line every management route shares: no NUL (U+0000) in a path or query parameter.

PostgreSQL text cannot hold NUL (the driver refuses the statement) and SQLite would store a name no one can
type: such a parameter is a 400 naming it, before any store is asked. Bodies get the same rule from the JSON
decoder (tollway.bounded_json, `nul=False`).
"""

from __future__ import annotations

from fastapi import Request

from tollway.bounded_json import nul_refused


async def refuse_nul(request: Request) -> None:
    for name, value in request.path_params.items():
        if isinstance(value, str) and "\x00" in value:
            raise nul_refused(name)
    for name, value in request.query_params.multi_items():
        if "\x00" in value:
            raise nul_refused(name.replace("\x00", "") or "query")
        if "\x00" in name:
            raise nul_refused("query")

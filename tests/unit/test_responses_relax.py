"""What a Responses request loses on its way to a provider without the Responses API (responses_relax)."""

from __future__ import annotations

from typing import Any

import pytest

from tollway.gateway.translate.responses_relax import relax_for_chat

BASE: dict[str, Any] = {"model": "m", "input": "Hi"}


@pytest.mark.parametrize(
    ("fields", "kept", "dropped"),
    [
        ({"reasoning": {"summary": "auto"}}, {"reasoning": None}, ["reasoning.summary"]),
        (
            {"reasoning": {"effort": "low", "summary": "detailed"}},
            {"reasoning": {"effort": "low"}},
            ["reasoning.summary"],
        ),
        ({"reasoning": {"effort": "low"}}, {"reasoning": {"effort": "low"}}, []),
        ({"reasoning": {"summary": "none"}}, {"reasoning": {"summary": "none"}}, []),  # the translator reads it
        ({"include": ["reasoning.encrypted_content"]}, {}, ["include"]),
        ({"include": ["file_search_call.results"]}, {"include": ["file_search_call.results"]}, []),  # refused later
        ({"store": True}, {}, ["store"]),
        ({"store": False}, {"store": False}, []),
        ({"client_metadata": {"turn_id": "t"}, "prompt_cache_key": "k"}, {}, ["client_metadata", "prompt_cache_key"]),
        ({"client_metadata": None}, {}, []),
        ({"text": {"verbosity": "low"}}, {"text": {}}, ["text.verbosity"]),
        (
            {"tools": [{"type": "custom", "name": "apply_patch"}, {"type": "function", "name": "f"}, {"type": "mcp"}]},
            {"tools": [{"type": "function", "name": "f"}]},
            ["tools.custom", "tools.mcp"],
        ),
        (
            {"input": [{"type": "reasoning", "encrypted_content": "x"}, {"role": "user", "content": "Hi"}]},
            {"input": [{"role": "user", "content": "Hi"}]},
            ["input.reasoning"],
        ),
    ],
)
def test_what_is_dropped_and_named(fields: dict[str, Any], kept: dict[str, Any], dropped: list[str]) -> None:
    request = {**BASE, **fields}
    relaxed, named = relax_for_chat(request)
    assert named == dropped
    assert relaxed == {**BASE, **kept}

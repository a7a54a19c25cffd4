"""What a Responses request may lose on its way to a provider that does not speak the Responses API.

Agents built on the Responses API (OpenAI's Codex CLI above all) send, on every turn, fields that only
OpenAI's own Responses service can honour: reasoning summaries, `include` of encrypted reasoning,
`client_metadata`, `prompt_cache_key`, `text.verbosity`, and built-in or grouped tools (`web_search`,
`image_generation`, `namespace` groups of MCP tools, freeform `custom` tools). Without them the answer
is the same kind of answer: the model still reasons (it just does not summarise it), the client's own
function tools are all there. `relax_for_chat` drops them and names what it dropped (the endpoint puts
the names in `x-tollway-dropped`, or refuses the first one for a model with `translation: strict`);
everything else stays for the translator (`responses.responses_to_chat_request`), which carries it
or refuses it.
"""

from __future__ import annotations

from typing import Any

# Built-in tools the Responses service runs (or that only OpenAI's models call), and tool groups
# chat has no place for: dropped from `tools`, each named `tools.<type>`.
DROPPABLE_TOOLS = frozenset(
    {
        "web_search",
        "web_search_preview",
        "file_search",
        "image_generation",
        "code_interpreter",
        "computer_use_preview",
        "local_shell",
        "mcp",
        "tool_search",
        "namespace",
        "custom",
    }
)
# `include` values that ask for something a translated answer never has (encrypted reasoning items).
DROPPABLE_INCLUDE = frozenset({"reasoning.encrypted_content"})
DROPPED_REASONING_SUMMARY = "reasoning.summary"
DROPPED_INCLUDE = "include"
DROPPED_STORE = "store"
DROPPED_CLIENT_METADATA = "client_metadata"
DROPPED_PROMPT_CACHE_KEY = "prompt_cache_key"
DROPPED_VERBOSITY = "text.verbosity"
DROPPED_REASONING_ITEMS = "input.reasoning"


def relax_for_chat(payload: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The request without what only the Responses service honours, and the names of what was dropped.

    `reasoning` keeps its `effort` (chat's `reasoning_effort`); its `summary` is dropped. `include`
    is dropped when it asks only for encrypted reasoning; `store: true` (the answer is not kept; a
    later `previous_response_id` is refused), `client_metadata` and `prompt_cache_key` (hints) and
    `text.verbosity` are dropped; built-in and grouped tools are dropped one by one; earlier
    `reasoning` items in `input` (OpenAI's encrypted reasoning) are dropped.
    """
    out = payload
    dropped: list[str] = []
    reasoning = payload.get("reasoning")
    if isinstance(reasoning, dict) and set(reasoning) <= {"effort", "summary", "generate_summary"}:
        summary = [k for k in ("summary", "generate_summary") if reasoning.get(k) not in (None, "none")]
        if summary:
            kept = {"effort": reasoning["effort"]} if reasoning.get("effort") is not None else None
            out = {**out, "reasoning": kept}
            dropped.append(DROPPED_REASONING_SUMMARY)
    include = payload.get("include")
    if isinstance(include, list) and include and all(i in DROPPABLE_INCLUDE for i in include):
        out = {k: v for k, v in out.items() if k != "include"}
        dropped.append(DROPPED_INCLUDE)
    if payload.get("store") is True:
        out = {k: v for k, v in out.items() if k != "store"}
        dropped.append(DROPPED_STORE)
    for key, name in (("client_metadata", DROPPED_CLIENT_METADATA), ("prompt_cache_key", DROPPED_PROMPT_CACHE_KEY)):
        if payload.get(key) is not None:
            out = {k: v for k, v in out.items() if k != key}
            dropped.append(name)
        elif key in out:
            out = {k: v for k, v in out.items() if k != key}
    text = payload.get("text")
    if isinstance(text, dict) and "verbosity" in text:
        rest = {k: v for k, v in text.items() if k != "verbosity"}
        out = {**out, "text": rest}
        if text.get("verbosity") is not None:
            dropped.append(DROPPED_VERBOSITY)
    tools = payload.get("tools")
    if isinstance(tools, list):
        kinds = [t.get("type") if isinstance(t, dict) else None for t in tools]
        gone = [kind for kind in kinds if kind in DROPPABLE_TOOLS]
        if gone:
            out = {**out, "tools": [t for t, kind in zip(tools, kinds, strict=True) if kind not in DROPPABLE_TOOLS]}
            for kind in dict.fromkeys(gone):
                dropped.append(f"tools.{kind}")
    items = payload.get("input")
    if isinstance(items, list) and any(isinstance(i, dict) and i.get("type") == "reasoning" for i in items):
        out = {**out, "input": [i for i in items if not (isinstance(i, dict) and i.get("type") == "reasoning")]}
        dropped.append(DROPPED_REASONING_ITEMS)
    return out, dropped

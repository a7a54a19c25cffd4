"""Model aliases and patterns (router and config check), and what the Messages translation does with what
Claude Code sends (mid-conversation system messages, thinking, context management, effort)."""

from __future__ import annotations

from typing import Any

import pytest

from tollway.config.loader import parse_config
from tollway.errors import ConfigError, ValidationError
from tollway.gateway.routing import Route, Router
from tollway.gateway.translate.anthropic_client import anthropic_to_chat_request, relax_for_chat
from tollway.gateway.translate.gemini import chat_to_gemini_request
from tollway.identity.key_index import Identity


def route(name: str) -> Route:
    return Route(model=name, targets=())


def router() -> Router:
    routes = {name: route(name) for name in ("gpt-4o", "mini", "claude", "sonnet", "anything")}
    aliases = {"gpt-4o-latest": "mini", "claude-sonnet-4-5": "gpt-4o"}
    patterns = [("*", "anything"), ("claude-*", "claude"), ("claude-sonnet-*", "sonnet"), ("gpt-4o*", "mini")]
    return Router(routes, aliases, patterns)


EVERYONE = Identity("acme", None)


@pytest.mark.parametrize(
    ("asked", "served_by"),
    [
        ("gpt-4o", "gpt-4o"),  # an exact name wins over the pattern gpt-4o*
        ("gpt-4o-latest", "mini"),  # an alias wins over the pattern gpt-4o*
        ("gpt-4o-mini", "mini"),  # gpt-4o*
        ("claude-sonnet-4-5", "gpt-4o"),  # an alias wins over claude-sonnet-*
        ("claude-sonnet-4-6", "sonnet"),  # claude-sonnet-* has more literal characters than claude-*
        ("claude-haiku-4-5", "claude"),
        ("llama-3", "anything"),  # * matches what nothing more specific does
    ],
)
def test_exact_names_then_aliases_then_the_most_specific_pattern(asked: str, served_by: str) -> None:
    found = router().resolve(EVERYONE, asked)
    assert found is not None
    assert found.model == served_by


def test_an_allow_list_naming_a_model_allows_its_aliases_and_matches_and_one_naming_an_alias_only_that() -> None:
    by_model = Identity("a", frozenset({"gpt-4o"}))
    assert router().resolve(by_model, "claude-sonnet-4-5") is not None  # an alias of gpt-4o
    assert router().resolve(by_model, "mini") is None
    by_alias = Identity("b", frozenset({"gpt-4o-latest"}))
    assert router().resolve(by_alias, "gpt-4o-latest") is not None
    assert router().resolve(by_alias, "mini") is None
    assert router().resolve(by_alias, "gpt-4o-mini") is None  # the pattern of mini is not the alias
    assert router().visible_to(by_model) == ["claude-sonnet-4-5", "gpt-4o"]
    assert router().visible_to(by_alias) == ["gpt-4o-latest"]


def test_no_pattern_no_match() -> None:
    plain = Router({"demo": route("demo")})
    assert plain.resolve(EVERYONE, "demo-2") is None
    assert plain.visible_to(EVERYONE) == ["demo"]


CONFIG = """
providers: [{name: local, type: simulator}]
models:
  - {name: demo, aliases: [claude-haiku-4-5], pattern: "claude-*", targets: [{provider: local, model: demo}]}
  - {name: other, aliases: %s, pattern: %s, targets: [{provider: local, model: demo}]}
consumers: [{username: acme, keys: [acme-secret-key], models: [claude-haiku-4-5]}]
"""


def test_config_check_allows_a_pattern_over_exact_names() -> None:
    config = parse_config(CONFIG % ("[demo-2]", '"demo*"'), {})
    assert config.models[0].aliases == ["claude-haiku-4-5"]
    assert config.models[1].pattern == "demo*"


def test_config_check_refuses_shared_aliases_and_patterns() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(CONFIG % ("[claude-haiku-4-5, demo]", '"claude-*"'), {}, source="c.yaml")
    assert caught.value.problems == [
        "c.yaml: models[1].aliases: 'claude-haiku-4-5' is already an alias of model 'demo'",
        "c.yaml: models[1].aliases: 'demo' is already a model's name",
        "c.yaml: models[1].pattern: 'claude-*' is already model 'demo''s pattern",
    ]


def test_config_check_refuses_a_pattern_that_is_not_a_glob_of_names() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(CONFIG % ("[]", '"claude [x]"'), {}, source="c.yaml")
    assert len(caught.value.problems) == 1
    assert "models[1].pattern" in caught.value.problems[0]


# Claude Code's request fields ------------------------------------------------------------------------

BASE: dict[str, Any] = {"model": "m", "max_tokens": 100, "messages": [{"role": "user", "content": "Hi"}]}


def test_a_mid_conversation_system_message_stays_where_it_was() -> None:
    payload = {
        **BASE,
        "system": "Be brief.",
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "system", "content": [{"type": "text", "text": "Skills: review"}]},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "Bye"},
        ],
    }
    assert anthropic_to_chat_request(payload)["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "system", "content": "Skills: review"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Bye"},
    ]


@pytest.mark.parametrize(
    ("fields", "effort"),
    [
        ({"thinking": {"type": "enabled", "budget_tokens": 1024}}, "low"),
        ({"thinking": {"type": "enabled", "budget_tokens": 4095}}, "low"),
        ({"thinking": {"type": "enabled", "budget_tokens": 4096}}, "medium"),
        ({"thinking": {"type": "enabled", "budget_tokens": 16383}}, "medium"),
        ({"thinking": {"type": "enabled", "budget_tokens": 16384}}, "high"),
        ({"output_config": {"effort": "low"}}, "low"),
        ({"output_config": {"effort": "max"}}, "high"),
        # the explicit effort wins over the budget's
        ({"thinking": {"type": "enabled", "budget_tokens": 31999}, "output_config": {"effort": "medium"}}, "medium"),
        ({"thinking": {"type": "disabled"}}, None),
    ],
)
def test_thinking_and_effort_become_reasoning_effort(fields: dict[str, Any], effort: str | None) -> None:
    chat = anthropic_to_chat_request({**BASE, **fields})
    assert chat.get("reasoning_effort") == effort
    assert "thinking" not in chat
    assert "output_config" not in chat


def test_bad_effort_and_budget_are_400s() -> None:
    with pytest.raises(ValidationError, match=r"output_config\.effort"):
        anthropic_to_chat_request({**BASE, "output_config": {"effort": "extreme"}})
    with pytest.raises(ValidationError, match="budget_tokens"):
        anthropic_to_chat_request({**BASE, "thinking": {"type": "enabled"}})


def test_relax_drops_only_what_only_claude_uses_and_names_it() -> None:
    assistant = {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "sig"},
            {"type": "redacted_thinking", "data": "xyz"},
            {"type": "text", "text": "Hello"},
        ],
    }
    payload = {
        **BASE,
        "messages": [{"role": "user", "content": "Hi"}, assistant, {"role": "user", "content": "Bye"}],
        "thinking": {"type": "adaptive"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "output_config": {"effort": "high"},
        "metadata": {"user_id": "u1"},
    }
    relaxed, dropped = relax_for_chat(payload)
    assert dropped == ["thinking", "context_management", "messages.content.thinking"]
    assert relaxed["messages"][1] == {"role": "assistant", "content": [{"type": "text", "text": "Hello"}]}
    assert relaxed["output_config"] == {"effort": "high"}
    assert relaxed["metadata"] == {"user_id": "u1"}
    assert "thinking" not in relaxed
    assert "context_management" not in relaxed
    assert payload["thinking"] == {"type": "adaptive"}  # the client's request is left as it was
    _, for_gemini = relax_for_chat(payload, end_user=False)
    assert for_gemini == ["metadata.user_id", "thinking", "context_management", "messages.content.thinking"]


def test_relax_keeps_what_it_cannot_drop_faithfully() -> None:
    kept = {**BASE, "context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]}}
    assert relax_for_chat(kept) == (kept, [])
    mixed = {"edits": [{"type": "clear_thinking_20251015"}, {"type": "clear_tool_uses_20250919"}]}
    assert relax_for_chat({**BASE, "context_management": mixed})[1] == []
    assert relax_for_chat({**BASE, "thinking": {"type": "enabled", "budget_tokens": 2048}})[1] == []


def test_relax_lists_deferred_tools_up_front() -> None:
    tools = [{"name": "a", "input_schema": {}}, {"name": "b", "input_schema": {}, "defer_loading": True}]
    relaxed, dropped = relax_for_chat({**BASE, "tools": tools})
    assert relaxed["tools"] == [{"name": "a", "input_schema": {}}, {"name": "b", "input_schema": {}}]
    assert dropped == ["tools.defer_loading"]


@pytest.mark.parametrize(("effort", "budget"), [("low", 1024), ("medium", 8192), ("high", 24576), ("none", 0)])
def test_reasoning_effort_becomes_a_gemini_thinking_budget(effort: str, budget: int) -> None:
    chat = {"model": "g", "messages": [{"role": "user", "content": "Hi"}], "reasoning_effort": effort}
    assert chat_to_gemini_request(chat)["generationConfig"] == {"thinkingConfig": {"thinkingBudget": budget}}


def test_a_mid_conversation_system_message_to_gemini_gets_anthropics_wording() -> None:
    chat = {
        "model": "g",
        "messages": [{"role": "user", "content": "Hi"}, {"role": "system", "content": "Skills: review"}],
    }
    with pytest.raises(ValidationError) as caught:
        chat_to_gemini_request(chat)
    # Claude Code retries without mid-conversation system messages on a 400 that says this
    assert caught.value.message.startswith("role 'system' is not supported on this model")

"""Each provider's usage block -> disjoint token types, and back into each client's format with the same totals."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tollway.gateway.usage import (
    from_anthropic,
    from_gemini,
    from_openai_chat,
    from_responses,
    to_anthropic,
    to_openai_chat,
    to_responses,
)
from tollway.metering.llm import TokenUsage


def test_anthropic_input_tokens_already_exclude_cache_tokens() -> None:
    usage = from_anthropic(
        {
            "input_tokens": 472,
            "cache_creation_input_tokens": 2048,
            "cache_read_input_tokens": 1536,
            "output_tokens": 503,
        }
    )
    assert usage == TokenUsage(input=472, output=503, cache_read=1536, cache_write=2048)


def test_anthropic_thinking_tokens_are_reasoning_inside_output() -> None:
    usage = from_anthropic(
        {"input_tokens": 10, "output_tokens": 300, "output_tokens_details": {"thinking_tokens": 120}}
    )
    assert (usage.output, usage.reasoning) == (300, 120)


def test_gemini_prompt_includes_cached_and_thoughts_are_outside_candidates() -> None:
    usage = from_gemini(
        {
            "promptTokenCount": 1800,
            "candidatesTokenCount": 250,
            "cachedContentTokenCount": 1024,
            "thoughtsTokenCount": 90,
            "totalTokenCount": 2140,
        }
    )
    assert usage == TokenUsage(input=776, output=340, cache_read=1024, reasoning=90)


def test_gemini_tool_use_prompt_counts_as_input() -> None:
    usage = from_gemini({"promptTokenCount": 100, "toolUsePromptTokenCount": 20, "candidatesTokenCount": 5})
    assert (usage.input, usage.output) == (120, 5)


def test_responses_usage_details() -> None:
    usage = from_responses(
        {
            "input_tokens": 1200,
            "input_tokens_details": {"cached_tokens": 1024},
            "output_tokens": 300,
            "output_tokens_details": {"reasoning_tokens": 128},
            "total_tokens": 1500,
        }
    )
    assert usage == TokenUsage(input=176, output=300, cache_read=1024, reasoning=128)


def test_cache_writes_travel_in_openai_usage_as_cache_creation_input_tokens() -> None:
    usage = from_openai_chat({"prompt_tokens": 100, "completion_tokens": 7, "cache_creation_input_tokens": 60})
    assert usage == TokenUsage(input=40, output=7, cache_write=60)


def test_nonsense_counts_are_ignored() -> None:
    assert from_anthropic({"input_tokens": -5, "output_tokens": "12", "cache_read_input_tokens": True}) == TokenUsage()
    assert from_gemini({"promptTokenCount": None}) == TokenUsage()


counts = st.integers(min_value=0, max_value=10**9)


@given(counts, counts, counts, counts, counts)
def test_every_client_format_carries_the_same_counts(
    input_: int, output: int, cache_read: int, cache_write: int, reasoning_seed: int
) -> None:
    usage = TokenUsage(
        input=input_,
        output=output,
        cache_read=cache_read,
        cache_write=cache_write,
        reasoning=reasoning_seed % (output + 1),
    )
    assert from_openai_chat(to_openai_chat(usage)) == usage
    assert from_responses(to_responses(usage)) == usage
    assert from_anthropic(to_anthropic(usage)) == usage
    assert to_openai_chat(usage)["total_tokens"] == usage.total == to_responses(usage)["total_tokens"]

from __future__ import annotations

from tollway.gateway.usage import estimate_prompt_tokens, estimate_tokens_from_text, from_openai_chat
from tollway.metering.llm import TokenUsage


def test_openai_usage_maps_to_disjoint_types() -> None:
    usage = from_openai_chat(
        {
            "prompt_tokens": 1200,
            "completion_tokens": 300,
            "total_tokens": 1500,
            "prompt_tokens_details": {"cached_tokens": 1024},
            "completion_tokens_details": {"reasoning_tokens": 128},
        }
    )
    assert usage == TokenUsage(input=176, output=300, cache_read=1024, cache_write=0, reasoning=128)
    assert usage.total == 1500


def test_missing_details_and_nulls() -> None:
    assert from_openai_chat({"prompt_tokens": 5, "completion_tokens": 7}) == TokenUsage(input=5, output=7)
    assert from_openai_chat(
        {"prompt_tokens": 5, "completion_tokens": None, "prompt_tokens_details": None}
    ) == TokenUsage(input=5)


def test_embeddings_usage_is_input_only() -> None:
    assert from_openai_chat({"prompt_tokens": 42, "total_tokens": 42}) == TokenUsage(input=42)


def test_nonsense_counts_are_zero_not_invented() -> None:
    usage = from_openai_chat(
        {"prompt_tokens": -3, "completion_tokens": True, "prompt_tokens_details": {"cached_tokens": "9"}}
    )
    assert usage == TokenUsage()


def test_cached_never_exceeds_prompt() -> None:
    usage = from_openai_chat({"prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": 50}})
    assert usage == TokenUsage(input=0, cache_read=10)


def test_estimates() -> None:
    assert estimate_tokens_from_text(0) == 0
    assert estimate_tokens_from_text(1) == 1
    assert estimate_tokens_from_text(8) == 2
    payload = {"messages": [{"role": "user", "content": "abcdefgh"}, {"role": "user", "content": [{"text": "abcd"}]}]}
    assert estimate_prompt_tokens(payload) == 3 + (3 + 2) + (3 + 1)


def test_usage_block_from_tail() -> None:
    from tollway.gateway.usage import usage_block_from_tail

    tail = b'.3]}],"model":"m","usage":{"prompt_tokens":7,"total_tokens":7}}'
    assert usage_block_from_tail(tail) == {"prompt_tokens": 7, "total_tokens": 7}
    assert usage_block_from_tail(b'"data":[1,2]}') is None
    assert usage_block_from_tail(b'"usage": nul') is None

"""tollway.config.kong: decK documents in, a Tollway config and one note per thing left out."""

from __future__ import annotations

import pytest
from pydantic import ValidationError as PydanticError

from tollway.config.kong import env_references, import_kong
from tollway.config.schema import TollwayConfig

BASE = {
    "providers": [{"name": "local", "type": "simulator"}],
    "models": [{"name": "demo", "targets": [{"provider": "local", "model": "demo"}]}],
    "consumers": [{"username": "acme", "keys": ["acme-secret-key"]}],
}
ROUTE = [{"path": "/chat", "model": "demo"}]


def test_env_references_become_tollway_variables() -> None:
    assert env_references({"a": ['Bearer ${{ env "DECK_KEY" }}', 3], "b": '${{env "X_1"}}-tail'}) == {
        "a": ["Bearer ${DECK_KEY}", 3],
        "b": "${X_1}-tail",
    }


def test_ai_proxy_advanced_on_a_service_with_two_providers_and_a_scoped_override() -> None:
    documents = [
        {
            "_format_version": "3.0",
            "services": [
                {
                    "name": "llm",
                    "url": "http://example.invalid",
                    "routes": [{"name": "chat", "paths": ["/ai/chat"]}, {"name": "embed", "paths": ["/ai/embed"]}],
                    "plugins": [
                        {
                            "name": "ai-proxy-advanced",
                            "config": {
                                "balancer": {"algorithm": "lowest-latency"},
                                "targets": [
                                    {
                                        "route_type": "llm/v1/chat",
                                        "auth": {"header_name": "Authorization", "header_value": "Bearer sk-1"},
                                        "model": {"provider": "openai", "name": "gpt-4o"},
                                    },
                                    {
                                        "route_type": "llm/v1/chat",
                                        "auth": {"header_name": "x-api-key", "header_value": "ak-1"},
                                        "model": {"provider": "anthropic", "name": "claude-sonnet-4-5"},
                                    },
                                ],
                            },
                        }
                    ],
                }
            ],
            "plugins": [
                {
                    "name": "ai-proxy",
                    "route": "embed",
                    "config": {
                        "route_type": "llm/v1/embeddings",
                        "auth": {"header_name": "Authorization", "header_value": "Bearer sk-1"},
                        "model": {"provider": "openai", "name": "text-embedding-3-small"},
                    },
                },
                {"name": "rate-limiting", "config": {"minute": 5}},
                {"name": "key-auth", "config": {"key_names": ["apikey", "x-custom-key"]}},
            ],
            "consumers": [
                {"username": "acme", "custom_id": "c-1", "keyauth_credentials": [{"key": "long-enough-key"}]},
                {"username": "tiny", "keyauth_credentials": [{"key": "short"}]},
            ],
        }
    ]
    imported = import_kong(documents)
    assert imported.config == {
        "providers": [
            {"name": "openai", "type": "openai", "api_key": "sk-1"},
            {"name": "anthropic", "type": "anthropic", "api_key": "ak-1"},
        ],
        "models": [
            {
                "name": "gpt-4o-balanced",
                "targets": [
                    {"provider": "openai", "model": "gpt-4o"},
                    {"provider": "anthropic", "model": "claude-sonnet-4-5"},
                ],
                "balance": "lowest_latency",
            },
            {"name": "text-embedding-3-small", "targets": [{"provider": "openai", "model": "text-embedding-3-small"}]},
        ],
        "consumers": [{"username": "acme", "keys": ["long-enough-key"]}],
        "routes": [
            {"path": "/ai/chat", "model": "gpt-4o-balanced", "type": "chat"},
            {"path": "/ai/embed", "model": "text-embedding-3-small", "type": "embeddings"},
        ],
    }
    assert imported.notes == [
        "global: plugin 'rate-limiting' not translated (see docs/kong.md for Tollway's equivalents)",
        "global: key-auth key_names x-custom-key not translated: Tollway reads keys from 'Authorization: Bearer',"
        " 'x-api-key' and 'apikey'",
        "consumer 'acme': custom_id not translated (use a customer's usage_from)",
        "consumer 'tiny': a key shorter than 8 characters is not translated",
        "consumer 'tiny': no key-auth key of 8+ characters: not translated (give it keys with `tollway keys create`)",
    ]
    TollwayConfig.model_validate(imported.config)  # a valid Tollway config as it stands


def test_what_cannot_be_translated_is_named() -> None:
    imported = import_kong(
        [
            {
                "routes": [
                    {"name": "regex", "paths": ["~/v[0-9]+/chat"]},
                    {"name": "plain", "paths": ["/plain"], "service": {"name": "web"}},
                    {"name": "bedrock", "paths": ["/b"]},
                ],
                "plugins": [
                    {
                        "name": "ai-proxy",
                        "route": "regex",
                        "config": {"route_type": "llm/v1/chat", "model": {"provider": "openai", "name": "gpt-4o"}},
                    },
                    {
                        "name": "ai-proxy",
                        "route": "bedrock",
                        "config": {"route_type": "llm/v1/chat", "model": {"provider": "bedrock", "name": "x"}},
                    },
                ],
                "upstreams": [{"name": "u"}],
            }
        ]
    )
    assert imported.notes == [
        "document 1: section 'upstreams' not translated",
        "no key-auth plugin: Tollway requires a consumer key on every route all the same",
        "route 'regex': regex path '~/v[0-9]+/chat' not translated (Tollway routes are exact paths)",
        "route 'plain': service 'web' is not defined",
        "route 'plain': no ai-proxy plugin applies: not an LLM route, not translated",
        "route 'bedrock' (ai-proxy): provider 'bedrock' not translated (Tollway speaks openai, anthropic, gemini,"
        " azure and any OpenAI-compatible server given its upstream_url)",
    ]
    assert imported.config == {}


@pytest.mark.parametrize(
    ("routes", "problem"),
    [
        ([{"path": "/v1/chat", "model": "demo"}], "is one of Tollway's own paths"),
        ([{"path": "/api/x", "model": "demo"}], "is one of Tollway's own paths"),
        ([{"path": "chat", "model": "demo"}], "String should match pattern"),
        ([{"path": "/chat", "model": "dmeo"}], "routes[0].model: unknown model 'dmeo'; did you mean 'demo'?"),
        ([{"path": "/c", "model": "demo"}, {"path": "/c", "model": "demo"}], "routes[1].path: duplicate '/c'"),
    ],
)
def test_route_paths_are_checked_like_the_rest_of_the_config(routes: list[dict[str, str]], problem: str) -> None:
    assert [(r.path, r.model, r.type) for r in TollwayConfig.model_validate({**BASE, "routes": ROUTE}).routes] == [
        ("/chat", "demo", "chat")
    ]
    with pytest.raises(PydanticError) as refused:
        TollwayConfig.model_validate({**BASE, "routes": routes})
    assert problem in str(refused.value)

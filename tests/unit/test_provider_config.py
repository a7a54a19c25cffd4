"""Provider types in the configuration schema and what the registry builds from them."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from tollway.clock import SystemClock
from tollway.config.schema import ProviderConfig
from tollway.gateway.providers.anthropic import AnthropicProvider
from tollway.gateway.providers.azure_openai import AzureOpenAIProvider
from tollway.gateway.providers.gemini import GeminiProvider
from tollway.wiring.providers import build_provider


@pytest.mark.parametrize(
    ("fields", "kind"),
    [
        ({"type": "anthropic", "api_key": "k"}, AnthropicProvider),
        ({"type": "anthropic", "api_key": "k", "base_url": "https://proxy.example.com/v1"}, AnthropicProvider),
        ({"type": "gemini", "api_key": "k"}, GeminiProvider),
        (
            {
                "type": "azure_openai",
                "api_key": "k",
                "base_url": "https://r.openai.azure.com",
                "api_version": "2024-10-21",
            },
            AzureOpenAIProvider,
        ),
    ],
)
def test_provider_types_build(fields: dict[str, Any], kind: type) -> None:
    provider = build_provider(ProviderConfig(name="p", **fields), clock=SystemClock(), default_timeout_s=30)
    assert isinstance(provider, kind)


@pytest.mark.parametrize(
    "fields",
    [
        {"type": "azure_openai", "api_key": "k", "base_url": "https://r.openai.azure.com"},
        {"type": "azure_openai", "api_key": "k", "api_version": "2024-10-21"},
        {"type": "openai", "api_version": "2024-10-21"},
        {"type": "bedrock"},
    ],
)
def test_bad_provider_configs_are_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ProviderConfig(name="p", **fields)

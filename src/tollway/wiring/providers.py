"""Build providers from configuration (the composition root's; the provider types are tollway.gateway.providers)."""

from __future__ import annotations

from tollway.clock import Clock
from tollway.config.schema import ProviderConfig
from tollway.gateway.providers.anthropic import AnthropicProvider
from tollway.gateway.providers.azure_openai import AzureOpenAIProvider
from tollway.gateway.providers.base import Provider
from tollway.gateway.providers.gemini import GeminiProvider
from tollway.gateway.providers.openai import DEFAULT_CONNECT_S, OpenAIProvider
from tollway.gateway.providers.simulator import SimulatorProvider


def build_provider(config: ProviderConfig, *, clock: Clock, default_timeout_s: float) -> Provider:
    if config.type == "simulator":
        return SimulatorProvider(
            config.name, clock=clock, tokens_per_second=config.tokens_per_second, reply_tokens=config.reply_tokens
        )
    # the connection pool's own timeouts: connect, and idle (the longest silence while reading)
    own = config.timeouts
    timeout_s = (own.idle_s if own is not None else None) or config.timeout_s or default_timeout_s
    connect_s = (own.connect_s if own is not None else None) or DEFAULT_CONNECT_S
    if config.type == "anthropic":
        return AnthropicProvider(
            config.name,
            base_url=config.base_url,
            api_key=config.api_key,
            timeout_s=timeout_s,
            clock=clock,
            headers=config.headers,
            connect_s=connect_s,
        )
    if config.type == "gemini":
        return GeminiProvider(
            config.name,
            base_url=config.base_url,
            api_key=config.api_key,
            timeout_s=timeout_s,
            clock=clock,
            headers=config.headers,
            connect_s=connect_s,
        )
    if config.type == "azure_openai":
        assert config.base_url is not None  # the schema requires both for azure_openai
        assert config.api_version is not None
        return AzureOpenAIProvider(
            config.name,
            base_url=config.base_url,
            api_version=config.api_version,
            api_key=config.api_key,
            timeout_s=timeout_s,
            headers=config.headers,
            connect_s=connect_s,
        )
    native = frozenset("/" + path for path in config.endpoints) if config.endpoints is not None else None
    return OpenAIProvider(
        config.name,
        native_paths=native,
        base_url=config.base_url,
        api_key=config.api_key,
        timeout_s=timeout_s,
        headers=config.headers,
        connect_s=connect_s,
    )

"""Pydantic schema of the YAML configuration (documented in docs/configuration.md)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tollway.config.balancing import (
    BalanceConfig,
    BreakerConfig,
    BudgetConfig,
    HealthCheckConfig,
    balance_shorthand,
    shared_target_problems,
)
from tollway.config.budgets import SpendBudgetConfig, SpendRateLimitConfig
from tollway.config.catalog import CustomerConfig, FeatureConfig, catalog_problems
from tollway.config.catalog_plans import PlanConfig
from tollway.config.notifications import NotificationsConfig
from tollway.config.references import reference_problems
from tollway.config.resilience import RetryConfig, TimeoutsConfig
from tollway.gateway.balancing.settings import BalancedModel, BalancedTarget
from tollway.identity.consumers import USERNAME_PATTERN, USERNAME_RULE, ConfiguredConsumer
from tollway.identity.key_index import hash_key

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}$"
OpenAIEndpoint = Literal["chat/completions", "completions", "embeddings", "responses"]
ProviderType = Literal["openai", "anthropic", "gemini", "azure_openai", "simulator"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProviderConfig(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    type: ProviderType
    api_key: str | None = None
    base_url: str | None = None
    timeout_s: float | None = Field(default=None, gt=0)  # idle timeout, and total of a unary call (compat)
    headers: dict[str, str] = Field(default_factory=dict)
    retry: RetryConfig | None = None
    timeouts: TimeoutsConfig | None = None
    # openai only: the OpenAI API paths the server serves itself (default: all four); the others are
    # translated to chat completions (e.g. an OpenAI-compatible server without /responses or /completions)
    endpoints: list[OpenAIEndpoint] | None = Field(default=None, min_length=1)
    # azure_openai only: the api-version query parameter (the target's model is the deployment name)
    api_version: str | None = None
    # simulator only
    tokens_per_second: float = Field(default=0, ge=0)
    reply_tokens: int = Field(default=24, ge=1, le=100_000)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/") if value else value

    @model_validator(mode="after")
    def _type_rules(self) -> ProviderConfig:
        if self.type == "simulator" and (self.api_key or self.base_url):
            raise ValueError("a simulator provider takes no api_key or base_url")
        if self.type == "azure_openai" and not (self.base_url and self.api_version):
            raise ValueError(
                "an azure_openai provider needs base_url (https://<resource>.openai.azure.com) and api_version"
            )
        if self.type != "openai" and self.endpoints is not None:
            raise ValueError("endpoints applies only to openai providers")
        if self.endpoints is not None and "chat/completions" not in self.endpoints:
            raise ValueError("endpoints must include chat/completions (the others are translated to it)")
        if self.type != "azure_openai" and self.api_version is not None:
            raise ValueError("api_version applies only to azure_openai providers")
        return self


class ModelPrice(_Strict):
    """Provider cost per token, in USD, overriding the built-in price book."""

    input: Decimal = Field(default=Decimal(0), ge=0)
    output: Decimal = Field(default=Decimal(0), ge=0)
    cache_read: Decimal | None = Field(default=None, ge=0)
    cache_write: Decimal | None = Field(default=None, ge=0)


class TargetConfig(_Strict):
    provider: str
    model: str = Field(min_length=1)
    weight: int = Field(default=1, ge=1, le=10_000)  # balance: weighted
    group: int = Field(default=0, ge=0)  # lower groups first; the next group when a whole group is unusable
    budget: BudgetConfig | None = None
    context_window: int | None = Field(default=None, ge=1)  # tokens; default: the price book's, when it knows
    retry: RetryConfig | None = None
    timeouts: TimeoutsConfig | None = None


class ModelConfig(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    targets: list[TargetConfig] = Field(min_length=1)
    price: ModelPrice | None = None
    retry: RetryConfig | None = None
    timeouts: TimeoutsConfig | None = None
    # Other names clients may ask for (exact), and a glob (`claude-*`) for any name that matches.
    aliases: list[str] = Field(default_factory=list)
    pattern: str | None = None
    # lenient: request fields a translation has no place for are dropped (named in x-tollway-dropped);
    # strict: they get a 400 instead.
    translation: Literal["lenient", "strict"] = "lenient"
    # spend control: the output tokens a request that sets no max_tokens is reserved at (and priced for)
    max_output_tokens: int | None = Field(default=None, gt=0)

    @field_validator("aliases")
    @classmethod
    def _alias_names(cls, aliases: list[str]) -> list[str]:
        for alias in aliases:
            if not re.match(NAME_PATTERN, alias):
                raise ValueError(f"alias {alias!r} must match {NAME_PATTERN}")
        return aliases

    @field_validator("pattern")
    @classmethod
    def _glob(cls, pattern: str | None) -> str | None:
        if pattern is not None and not re.fullmatch(r"[A-Za-z0-9*?][A-Za-z0-9._:/@*?-]{0,127}", pattern):
            raise ValueError("must be a glob of model-name characters and * or ? (e.g. 'claude-*')")
        return pattern

    balance: BalanceConfig = Field(default_factory=BalanceConfig)
    breaker: BreakerConfig | None = None
    health_check: HealthCheckConfig | None = None

    @field_validator("balance", mode="before")
    @classmethod
    def _balance_shorthand(cls, value: Any) -> Any:
        return balance_shorthand(value)


def balanced_models(models: Sequence[ModelConfig], providers: Sequence[ProviderConfig]) -> list[BalancedModel]:
    """The config file's models as the routing policy takes them (BalancingPolicy.configure)."""
    upstreams = {p.name: (p.type, p.base_url, p.api_version) for p in providers}
    return [
        BalancedModel(
            name=model.name,
            targets=tuple(
                BalancedTarget(
                    provider=target.provider,
                    model=target.model,
                    weight=target.weight,
                    group=target.group,
                    budget=target.budget.settings() if target.budget is not None else None,
                    upstream=upstreams.get(target.provider),
                )
                for target in model.targets
            ),
            balance=model.balance.settings(),
            breaker=model.breaker.settings() if model.breaker is not None else None,
            health_check=model.health_check.settings() if model.health_check is not None else None,
        )
        for model in models
    ]


class ConsumerConfig(_Strict):
    username: str
    keys: list[str] = Field(default_factory=list)
    key_hashes: list[str] = Field(default_factory=list)
    models: list[str] | None = None

    @field_validator("username")
    @classmethod
    def _username(cls, username: str) -> str:
        if not re.fullmatch(USERNAME_PATTERN, username):
            raise ValueError(f"must be {USERNAME_RULE}")
        return username

    @field_validator("keys")
    @classmethod
    def _key_shape(cls, keys: list[str]) -> list[str]:
        for key in keys:
            if len(key) < 8:
                raise ValueError("each key must be at least 8 characters")
        return keys

    @field_validator("key_hashes")
    @classmethod
    def _hash_shape(cls, hashes: list[str]) -> list[str]:
        for value in hashes:
            if not re.fullmatch(r"sha256:[0-9a-f]{64}", value):
                raise ValueError("each key hash must look like sha256:<64 hex digits>")
        return hashes

    @model_validator(mode="after")
    def _has_key(self) -> ConsumerConfig:
        if not self.keys and not self.key_hashes:
            raise ValueError("a consumer needs at least one entry in keys or key_hashes")
        return self

    def configured(self) -> ConfiguredConsumer:
        """The consumer as identity takes it: its keys as digests (plain keys hashed, then the given hashes)."""
        return ConfiguredConsumer(
            username=self.username,
            models=frozenset(self.models) if self.models is not None else None,
            digests=(*(hash_key(key) for key in self.keys), *self.key_hashes),
        )


def configured_consumers(consumers: Sequence[ConsumerConfig]) -> list[ConfiguredConsumer]:
    """The config file's consumers as identity takes them (KeyDirectory.set_config, IdentityService.sync_config)."""
    return [consumer.configured() for consumer in consumers]


class MeterConfig(_Strict):
    """A meter defined in the config file (see docs/metering.md); applied at start, not deletable by the API."""

    slug: str
    event_type: str
    aggregation: str
    value_property: str | None = None
    group_by: dict[str, str] = Field(default_factory=dict)
    description: str = ""

    def record(self) -> dict[str, Any]:
        return {
            "slug": self.slug,
            "eventType": self.event_type,
            "aggregation": self.aggregation,
            "valueProperty": self.value_property,
            "groupBy": self.group_by,
            "description": self.description,
            "managedBy": "config",
        }

    @model_validator(mode="after")
    def _valid_meter(self) -> MeterConfig:
        from tollway.metering.meters import BUILT_IN_METERS, Meter

        if self.slug in {m.slug for m in BUILT_IN_METERS}:
            raise ValueError(f"meter {self.slug!r} is built in and cannot be redefined")
        Meter.from_record(self.record())
        return self


# Paths the gateway or the management API already answer: a route may not take them.
RESERVED_PATHS = ("/v1/", "/v1beta/", "/api/", "/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/redoc")


class RouteConfig(_Strict):
    """An OpenAI-format endpoint at a path of your choosing, with a default model (clients moved from a gateway
    whose routes carry the model, e.g. Kong's ai-proxy on /chat, keep working unchanged)."""

    path: str = Field(pattern=r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$", max_length=256)
    model: str
    type: Literal["chat", "embeddings"] = "chat"

    @field_validator("path")
    @classmethod
    def _not_reserved(cls, path: str) -> str:
        if path == "/" or any(path == p.rstrip("/") or path.startswith(p) for p in RESERVED_PATHS):
            raise ValueError(f"{path!r} is one of Tollway's own paths ({', '.join(RESERVED_PATHS)})")
        return path


class TollwayConfig(_Strict):
    providers: list[ProviderConfig] = Field(default_factory=list)
    models: list[ModelConfig] = Field(default_factory=list)
    consumers: list[ConsumerConfig] = Field(default_factory=list)
    routes: list[RouteConfig] = Field(default_factory=list)
    meters: list[MeterConfig] = Field(default_factory=list)
    # The billing catalog (tollway.config.catalog), applied at start and by `tollway apply`.
    features: list[FeatureConfig] = Field(default_factory=list)
    plans: list[PlanConfig] = Field(default_factory=list)
    customers: list[CustomerConfig] = Field(default_factory=list)
    # Webhook channels and rules (tollway.config.notifications), applied at start by name.
    notifications: NotificationsConfig | None = None
    budgets: list[SpendBudgetConfig] = Field(default_factory=list)
    rate_limits: list[SpendRateLimitConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references(self) -> TollwayConfig:
        problems = reference_problems(self.model_dump())
        problems.extend(shared_target_problems([m.model_dump() for m in self.models]))
        problems.extend(catalog_problems(self.features, self.plans, self.customers))
        if problems:
            raise ValueError("\n".join(problems))
        return self

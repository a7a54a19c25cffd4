"""Config shape of routing resilience per model: balancing strategy, breakers, budgets, health checks.

Documented in docs/configuration.md ("Balancing, breakers and budgets").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tollway.gateway.balancing.settings import (
    BalanceSettings,
    BreakerSettings,
    BudgetSettings,
    HealthCheckSettings,
    StrategyName,
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BalanceConfig(_Strict):
    """How a model spreads requests over the targets of one group (`balance: weighted` is short for
    `balance: {strategy: weighted}`)."""

    strategy: StrategyName = "priority"
    # lowest_latency: the share of requests sent to a random usable target (exploration), after how many
    # requests in a row a passed-over target goes first once (0: never), the weight of the newest sample
    # in the moving averages, and the random generator's seed (None: from the OS)
    explore: float = Field(default=0.05, ge=0, le=1)
    probe_every: int = Field(default=50, ge=0)
    ewma_alpha: float = Field(default=0.3, gt=0, le=1)
    seed: int | None = None
    # cost: the request the targets are priced for
    expected_input_tokens: int = Field(default=1000, ge=0)
    expected_output_tokens: int = Field(default=500, ge=0)

    def settings(self) -> BalanceSettings:
        return BalanceSettings(
            strategy=self.strategy,
            explore=self.explore,
            probe_every=self.probe_every,
            ewma_alpha=self.ewma_alpha,
            seed=self.seed,
            expected_input_tokens=self.expected_input_tokens,
            expected_output_tokens=self.expected_output_tokens,
        )


class BreakerConfig(_Strict):
    """A circuit breaker per target: opens after `failures` consecutive failures, or when at least
    `min_requests` tries in the last `window_s` seconds failed at `failure_rate` or more."""

    failures: int = Field(default=5, ge=1)
    failure_rate: float | None = Field(default=None, gt=0, le=1)
    window_s: float = Field(default=60, gt=0)
    min_requests: int = Field(default=10, ge=1)
    cooldown_s: float = Field(default=30, gt=0)

    def settings(self) -> BreakerSettings:
        return BreakerSettings(
            failures=self.failures,
            failure_rate=self.failure_rate,
            window_s=self.window_s,
            min_requests=self.min_requests,
            cooldown_s=self.cooldown_s,
        )


class BudgetConfig(_Strict):
    """What a target may take per minute (its provider's rate limits); over it, the target is skipped until
    the minute ends."""

    requests_per_minute: int | None = Field(default=None, ge=1)
    tokens_per_minute: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _some_limit(self) -> BudgetConfig:
        if self.requests_per_minute is None and self.tokens_per_minute is None:
            raise ValueError("a budget needs requests_per_minute or tokens_per_minute")
        return self

    def settings(self) -> BudgetSettings:
        return BudgetSettings(requests_per_minute=self.requests_per_minute, tokens_per_minute=self.tokens_per_minute)


class HealthCheckConfig(_Strict):
    """An active check per target: a one-token chat completion every `interval_s` (it costs one tiny call)."""

    interval_s: float = Field(default=30, ge=1)
    timeout_s: float = Field(default=5, gt=0)

    def settings(self) -> HealthCheckSettings:
        return HealthCheckSettings(interval_s=self.interval_s, timeout_s=self.timeout_s)


def balance_shorthand(value: Any) -> Any:
    """`balance: weighted` -> `{strategy: weighted}`."""
    return {"strategy": value} if isinstance(value, str) else value


def shared_target_problems(models: list[Mapping[str, Any]]) -> list[str]:
    """An upstream target (provider, model) listed by several models has one breaker, budget and health
    check: their settings must agree."""
    problems: list[str] = []
    seen: dict[tuple[str, str], tuple[str, Any]] = {}
    for model in models:
        for target in model.get("targets") or []:
            if not isinstance(target, Mapping):
                continue
            key = (str(target.get("provider")), str(target.get("model")))
            settings = (model.get("breaker"), model.get("health_check"), target.get("budget"))
            first = seen.setdefault(key, (str(model.get("name")), settings))
            if first[1] != settings:
                problems.append(
                    f"model {model.get('name')!r}: target {key[0]}/{key[1]} is also a target of model "
                    f"{first[0]!r} with a different breaker, health_check or budget; one upstream target has "
                    "one of each, so make them the same"
                )
    return problems

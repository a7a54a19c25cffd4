"""What the routing policy is configured with, per model: its targets, balancing strategy, breaker, budgets and
health check. Values of the gateway's own: the composition root builds them from the config file
(tollway.config.schema.balanced_models; the file's fields and their defaults: docs/configuration.md, "Balancing,
breakers and budgets")."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Literal

StrategyName = Literal["priority", "weighted", "least_busy", "lowest_latency", "cost"]


@dataclass(frozen=True, slots=True)
class BalanceSettings:
    """How a model spreads requests over the targets of one group.

    lowest_latency: the share of requests sent to a random usable target (`explore`), after how many requests in
    a row a passed-over target goes first once (`probe_every`, 0: never), the weight of the newest sample in the
    moving averages (`ewma_alpha`) and the random generator's seed (None: from the OS). cost: the request the
    targets are priced for (`expected_input_tokens`, `expected_output_tokens`)."""

    strategy: StrategyName = "priority"
    explore: float = 0.05
    probe_every: int = 50
    ewma_alpha: float = 0.3
    seed: int | None = None
    expected_input_tokens: int = 1000
    expected_output_tokens: int = 500


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    """A circuit breaker per target: opens after `failures` consecutive failures, or when at least
    `min_requests` tries in the last `window_s` seconds failed at `failure_rate` or more."""

    failures: int = 5
    failure_rate: float | None = None
    window_s: float = 60
    min_requests: int = 10
    cooldown_s: float = 30


@dataclass(frozen=True, slots=True)
class BudgetSettings:
    """What a target may take per minute (None: no limit of that kind)."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None


@dataclass(frozen=True, slots=True)
class HealthCheckSettings:
    """An active check per target: a one-token chat completion every `interval_s`."""

    interval_s: float = 30
    timeout_s: float = 5


@dataclass(frozen=True, slots=True)
class BalancedTarget:
    """One target of a model: its provider and upstream model, weight, priority group and budget. `upstream`
    identifies the provider's upstream (its type, URL, API version): a target keeps its state (breaker, latency
    averages, cool-down) across a reload while this, its breaker, budget and balancing settings stay the same."""

    provider: str
    model: str
    weight: int = 1
    group: int = 0
    budget: BudgetSettings | None = None
    upstream: Hashable = None


@dataclass(frozen=True, slots=True)
class BalancedModel:
    """A model's targets, in the configured order, and how they are balanced."""

    name: str
    targets: tuple[BalancedTarget, ...]
    balance: BalanceSettings = field(default_factory=BalanceSettings)
    breaker: BreakerSettings | None = None
    health_check: HealthCheckSettings | None = None

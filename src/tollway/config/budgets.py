"""The `budgets` and `rate_limits` sections: spend control's budgets and rate limits, applied with the catalog
(`tollway apply`, serve, SIGHUP)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from tollway.config.catalog_fields import Amount, Key, Strict
from tollway.errors import ValidationError
from tollway.spend.budgets import Budget
from tollway.spend.rate_limits import RateLimit, RateScope, check_rate_limit


class SpendBudgetConfig(Strict):
    key: Key
    name: str = ""
    customer: str | None = Field(default=None, min_length=1)  # a customer's key
    consumer: str | None = Field(default=None, min_length=1)  # a consumer's username
    api_key: str | None = Field(default=None, min_length=1)  # an API key's id (a key made through the API)
    kind: Literal["money", "tokens"]
    limit: Amount
    window: Literal["billing_period", "month", "day", "hour", "lifetime"] = "billing_period"
    hard: bool = True
    on_exceeded: Literal["refuse", "degrade"] = "refuse"
    route_to: str | None = Field(default=None, min_length=1)  # degrade: the cheaper model calls are routed to
    on_redis_failure: Literal["open", "closed"] | None = None  # Redis unreachable; None: TOLLWAY_SPEND_REDIS_FAILURE

    @model_validator(mode="after")
    def _one_target(self) -> SpendBudgetConfig:
        if [self.customer, self.consumer, self.api_key].count(None) != 2:
            raise ValueError(
                "a budget names exactly one of customer (a customer's key), consumer (a username) or api_key (an id)"
            )
        if self.limit <= 0:
            raise ValueError("limit must be > 0")
        if self.kind == "tokens" and self.limit != self.limit.to_integral_value():
            raise ValueError("a token budget's limit is a whole number of tokens")
        if self.route_to is not None and self.on_exceeded != "degrade":
            raise ValueError("route_to goes with on_exceeded: degrade")
        return self

    def budget(self) -> Budget:
        scope: Literal["customer", "consumer", "key"] = (
            "customer" if self.customer is not None else "consumer" if self.consumer is not None else "key"
        )
        target = self.customer or self.consumer or self.api_key
        assert target is not None
        return Budget(
            id="",
            key=self.key,
            scope=scope,
            target=target,
            kind=self.kind,
            limit=self.limit,
            window=self.window,
            hard=self.hard,
            name=self.name,
            managed_by="config",
            on_exceeded=self.on_exceeded,
            route_to=self.route_to,
            on_redis_failure=self.on_redis_failure,
        )


class SpendRateLimitConfig(Strict):
    """A rate limit: exactly one of consumer, api_key, customer or model ("*": each of them separately)."""

    key: Key
    name: str = ""
    consumer: str | None = Field(default=None, min_length=1)  # a consumer's username, or "*"
    api_key: str | None = Field(default=None, min_length=1)  # an API key's id, or "*"
    customer: str | None = Field(default=None, min_length=1)  # a customer's key, or "*"
    model: str | None = Field(default=None, min_length=1)  # a model's name, or "*"
    metric: Literal["requests", "tokens", "input_tokens", "output_tokens", "cost", "in_flight"]
    limit: Amount
    window: Literal["minute", "hour", "day"] | None = None  # required except for in_flight
    on_redis_failure: Literal["open", "closed"] | None = None  # Redis unreachable; None: TOLLWAY_SPEND_REDIS_FAILURE

    @model_validator(mode="after")
    def _valid(self) -> SpendRateLimitConfig:
        named = [name for name in ("consumer", "api_key", "customer", "model") if getattr(self, name) is not None]
        if len(named) != 1:
            raise ValueError("a rate limit names exactly one of consumer, api_key, customer or model ('*': each)")
        try:
            check_rate_limit(self.rate_limit())
        except ValidationError as exc:
            raise ValueError(exc.message) from None
        return self

    def rate_limit(self) -> RateLimit:
        named: list[tuple[RateScope, str | None]] = [
            ("consumer", self.consumer),
            ("key", self.api_key),
            ("customer", self.customer),
            ("model", self.model),
        ]
        scope, target = next((scope, target) for scope, target in named if target is not None)
        assert target is not None
        return RateLimit(
            id="",
            key=self.key,
            scope=scope,
            target=target,
            metric=self.metric,
            limit=self.limit,
            window=self.window,
            name=self.name,
            managed_by="config",
            on_redis_failure=self.on_redis_failure,
        )

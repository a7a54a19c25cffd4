"""The `budgets` section: spend control's budgets, applied with the catalog (`tollway apply`, serve, SIGHUP)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from tollway.config.catalog_fields import Amount, Key, Strict
from tollway.spend.budgets import Budget


class SpendBudgetConfig(Strict):
    key: Key
    name: str = ""
    customer: str | None = Field(default=None, min_length=1)  # a customer's key
    consumer: str | None = Field(default=None, min_length=1)  # a consumer's username
    kind: Literal["money", "tokens"]
    limit: Amount
    window: Literal["billing_period", "month", "day", "hour", "lifetime"] = "billing_period"
    hard: bool = True

    @model_validator(mode="after")
    def _one_target(self) -> SpendBudgetConfig:
        if (self.customer is None) == (self.consumer is None):
            raise ValueError("a budget names exactly one of customer (a customer's key) or consumer (a username)")
        if self.limit <= 0:
            raise ValueError("limit must be > 0")
        if self.kind == "tokens" and self.limit != self.limit.to_integral_value():
            raise ValueError("a token budget's limit is a whole number of tokens")
        return self

    def budget(self) -> Budget:
        scope: Literal["customer", "consumer"] = "customer" if self.customer is not None else "consumer"
        target = self.customer if self.customer is not None else self.consumer
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
        )

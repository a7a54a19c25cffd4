"""Budgets: a ceiling in money or tokens on a customer, a consumer or one API key, per window, hard or soft.

- `tokens`: every token of the scope's calls (input, output and cached, as metered in `llm_tokens`).
- `money`: what the calls cost the customer, priced as its invoice prices them (its plan's usage rate
  cards at the marginal price for the period's usage so far); a consumer whose customer has no active
  subscription (or that belongs to no customer) is counted at the provider cost in USD (`llm_cost`).

A hard budget refuses a call whose worst case does not fit; a soft one only counts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal, get_args

from tollway.errors import ValidationError
from tollway.money import parse_decimal
from tollway.spend.windows import WINDOW_KINDS, WindowKind

BudgetScope = Literal["customer", "consumer", "key"]
BudgetKind = Literal["money", "tokens"]
OnExceeded = Literal["refuse", "degrade"]
OnRedisFailure = Literal["open", "closed"]  # the counter store unreachable: admit unchecked, or refuse (503)
SCOPES: tuple[BudgetScope, ...] = get_args(BudgetScope)
KINDS: tuple[BudgetKind, ...] = get_args(BudgetKind)
KEY = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")


@dataclass(frozen=True)
class Budget:
    id: str
    key: str
    scope: BudgetScope
    target: str  # the customer's key, the consumer's username, or the API key's id
    kind: BudgetKind
    limit: Decimal
    window: WindowKind
    hard: bool = True
    name: str = ""
    managed_by: str = "api"  # api | config
    created_at: datetime | None = None
    updated_at: datetime | None = None
    # a hard budget's call that would not fit: refused, or degraded (max_tokens lowered to what is left, or the
    # call routed to `route_to`, a cheaper model)
    on_exceeded: OnExceeded = "refuse"
    route_to: str | None = None
    # Redis unreachable or slow: "open" admits unchecked, "closed" refuses; None: the process default
    # (TOLLWAY_SPEND_REDIS_FAILURE)
    on_redis_failure: OnRedisFailure | None = None


def check_on_redis_failure(value: object) -> None:
    if value is not None and value not in ("open", "closed"):
        raise ValidationError(
            "on_redis_failure must be open or closed (or null: the default)", field="on_redis_failure"
        )


@dataclass(frozen=True)
class BudgetStatus:
    """A budget's current window: used, held by calls in flight, remaining; money in `currency`."""

    used: Decimal
    reserved: Decimal
    remaining: Decimal
    window_start: datetime
    resets_at: datetime | None
    currency: str | None = None  # money: the customer's plan currency, else USD


def check_budget(budget: Budget) -> Budget:
    """The budget, or a ValidationError naming the first bad field (API spelling)."""
    if not isinstance(budget.key, str) or not KEY.match(budget.key):
        raise ValidationError("key must be 1-64 of a-z, 0-9, '_' and '-', starting with a letter or digit", field="key")
    if budget.scope not in SCOPES:
        raise ValidationError(f"scope must be one of {', '.join(SCOPES)}", field="scope")
    if not isinstance(budget.target, str) or not budget.target or len(budget.target) > 255:
        raise ValidationError(
            "target must name the customer (key), consumer (username) or API key (id)", field="target"
        )
    if budget.kind not in KINDS:
        raise ValidationError(f"kind must be one of {', '.join(KINDS)}", field="kind")
    if budget.window not in WINDOW_KINDS:
        raise ValidationError(f"window must be one of {', '.join(WINDOW_KINDS)}", field="window")
    limit = parse_decimal(budget.limit, field="limit")
    if limit <= 0:
        raise ValidationError("limit must be > 0", field="limit")
    if budget.kind == "tokens" and limit != limit.to_integral_value():
        raise ValidationError("a token budget's limit is a whole number of tokens", field="limit")
    if budget.on_exceeded not in ("refuse", "degrade"):
        raise ValidationError("on_exceeded must be refuse or degrade", field="on_exceeded")
    if budget.route_to is not None and (budget.on_exceeded != "degrade" or not isinstance(budget.route_to, str)):
        raise ValidationError("route_to (a model's name) goes with on_exceeded: degrade", field="route_to")
    if budget.route_to is not None and not 0 < len(budget.route_to) <= 255:
        raise ValidationError("route_to must name a model", field="route_to")
    check_on_redis_failure(budget.on_redis_failure)
    return budget

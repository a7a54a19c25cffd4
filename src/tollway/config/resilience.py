"""Config shape of failover and timeouts, on a provider, a model or one of a model's targets, and each target's
resolved into the gateway's values (RetryPolicy, Timeouts) by the composition root.

Documented in docs/configuration.md ("Retries and timeouts"); each field is read from the most specific
level that sets it (target, then model, then provider, then the default).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tollway.gateway.resilience import (
    DEFAULT_BACKOFF_INITIAL_S,
    DEFAULT_BACKOFF_MAX_S,
    DEFAULT_RETRY,
    DEFAULT_RETRY_STATUSES,
    NO_TIMEOUTS,
    RetryPolicy,
    Timeouts,
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetryConfig(_Strict):
    """Trying again before the first byte reached the client: on the next target, then round again."""

    statuses: list[int] | None = None  # upstream statuses tried elsewhere (default 429, 500, 502, 503, 504)
    max_attempts: int | None = Field(default=None, ge=1, le=20)  # default: each target once
    backoff_initial_ms: int | None = Field(default=None, ge=0, le=60_000)  # default 100
    backoff_max_ms: int | None = Field(default=None, ge=0, le=600_000)  # default 2000
    deadline_s: float | None = Field(default=None, gt=0)  # default: none

    @field_validator("statuses")
    @classmethod
    def _error_statuses(cls, statuses: list[int] | None) -> list[int] | None:
        for status in statuses or ():
            if not 400 <= status <= 599:
                raise ValueError(f"{status} is not an HTTP error status (400-599)")
        return statuses

    @model_validator(mode="after")
    def _backoff_order(self) -> RetryConfig:
        if (
            self.backoff_initial_ms is not None
            and self.backoff_max_ms is not None
            and self.backoff_max_ms < self.backoff_initial_ms
        ):
            raise ValueError("backoff_max_ms must be at least backoff_initial_ms")
        return self


class TimeoutsConfig(_Strict):
    """Seconds; a timeout is answered 504 (or ends a stream already started, as a cut stream)."""

    connect_s: float | None = Field(default=None, gt=0)
    first_byte_s: float | None = Field(default=None, gt=0)
    idle_s: float | None = Field(default=None, gt=0)
    total_s: float | None = Field(default=None, gt=0)  # unary calls only


T = TypeVar("T")


class _Levels(Protocol):
    """A model or one of its targets, as configured."""

    @property
    def retry(self) -> RetryConfig | None: ...

    @property
    def timeouts(self) -> TimeoutsConfig | None: ...


class _ProviderLevels(_Levels, Protocol):
    @property
    def timeout_s(self) -> float | None: ...


def _first(*values: T | None) -> T | None:
    for value in values:
        if value is not None:
            return value
    return None


def resolve_retry(levels: Sequence[RetryConfig | None]) -> RetryPolicy:
    """The retry policy from configs ordered most specific first (target, model, provider)."""
    found = [level for level in levels if level is not None]
    if not found:
        return DEFAULT_RETRY
    statuses = _first(*(level.statuses for level in found))
    initial_ms = _first(*(level.backoff_initial_ms for level in found))
    max_ms = _first(*(level.backoff_max_ms for level in found))
    return RetryPolicy(
        statuses=DEFAULT_RETRY_STATUSES if statuses is None else frozenset(statuses),
        max_attempts=_first(*(level.max_attempts for level in found)),
        backoff_initial_s=DEFAULT_BACKOFF_INITIAL_S if initial_ms is None else initial_ms / 1000,
        backoff_max_s=DEFAULT_BACKOFF_MAX_S if max_ms is None else max_ms / 1000,
        deadline_s=_first(*(level.deadline_s for level in found)),
    )


def resolve_timeouts(
    target: TimeoutsConfig | None,
    model: TimeoutsConfig | None,
    provider: TimeoutsConfig | None,
    provider_timeout_s: float | None,
) -> Timeouts:
    """A target's timeouts. Connect and idle timeouts set on the provider are its connection pool's own
    (the provider applies them); only a target's or model's own are carried per request. A provider's
    `timeout_s` is the total of a unary try when `timeouts.total_s` is not set anywhere."""
    own = [level for level in (target, model) if level is not None]
    every = [*own, *([provider] if provider is not None else [])]
    if not every and provider_timeout_s is None:
        return NO_TIMEOUTS
    return Timeouts(
        connect_s=_first(*(level.connect_s for level in own)),
        first_byte_s=_first(*(level.first_byte_s for level in every)),
        idle_s=_first(*(level.idle_s for level in own)),
        total_s=_first(*(level.total_s for level in every), provider_timeout_s),
    )


def target_resilience(target: _Levels, model: _Levels, provider: _ProviderLevels) -> tuple[RetryPolicy, Timeouts]:
    """A configured target's retry policy and timeouts (target, then model, then provider settings)."""
    retry = resolve_retry((target.retry, model.retry, provider.retry))
    timeouts = resolve_timeouts(target.timeouts, model.timeouts, provider.timeouts, provider.timeout_s)
    return retry, timeouts

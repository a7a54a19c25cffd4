"""Config shape of failover and timeouts, on a provider, a model or one of a model's targets.

Documented in docs/configuration.md ("Retries and timeouts"); each field is read from the most specific
level that sets it (target, then model, then provider, then the default).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


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

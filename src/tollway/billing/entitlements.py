"""Entitlements: access a rate card grants — boolean, metered (a limit per usage period), or static config."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

EntitlementType = Literal["boolean", "metered", "static"]


@dataclass(frozen=True)
class EntitlementTemplate:
    type: EntitlementType
    limit: Decimal | None = None  # metered: the quantity granted each usage period (issueAfterReset)
    hard: bool = False  # metered: a hard limit refuses usage past it; a soft one only reports overage
    usage_period: str | None = None  # metered: ISO-8601 duration; None = the plan's billing cadence
    config: Any = None  # static: a JSON value handed to the application


@dataclass(frozen=True)
class EntitlementValue:
    """OpenMeter's entitlement value: what a customer may do with a feature right now."""

    has_access: bool
    balance: Decimal | None = None  # metered: limit - usage, never below zero
    usage: Decimal | None = None  # metered: usage in the current usage period
    overage: Decimal | None = None  # metered: usage past the limit
    config: Any = None  # static

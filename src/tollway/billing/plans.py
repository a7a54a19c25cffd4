"""Plans: versioned bundles of rate cards. A version goes draft -> published -> archived; published is immutable."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from tollway.billing.entitlements import EntitlementTemplate
from tollway.billing.pricing.model import FlatPrice, UsageTerms

PlanStatus = Literal["draft", "published", "archived"]


@dataclass(frozen=True)
class RateCard:
    """Prices one feature (`usage`) or is a flat fee (`flat`, feature optional). Exactly one of the two is set,
    except a rate card that only grants an entitlement (both None)."""

    key: str
    name: str
    feature_key: str | None = None
    usage: UsageTerms | None = None
    flat: FlatPrice | None = None
    # ISO-8601 duration; None on a flat fee means one-time (charged once, on the subscription's first invoice)
    billing_cadence: str | None = None
    entitlement: EntitlementTemplate | None = None
    description: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Phase:
    """A stretch of a subscription's life with its own rate cards. `duration` None: runs until the end."""

    key: str
    name: str
    rate_cards: tuple[RateCard, ...]
    duration: str | None = None  # ISO-8601 duration


@dataclass(frozen=True)
class Plan:
    """One version of a plan. (key, version) is unique; `id` names this version."""

    id: str
    key: str
    version: int
    name: str
    currency: str  # ISO 4217
    billing_cadence: str  # ISO-8601 duration: P1M, P1Y, P1W, P1D, PT1H ...
    phases: tuple[Phase, ...]
    status: PlanStatus = "draft"
    description: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    managed_by: str = "api"  # api | config
    created_at: datetime | None = None
    updated_at: datetime | None = None
    published_at: datetime | None = None
    archived_at: datetime | None = None

    @property
    def rate_cards(self) -> tuple[RateCard, ...]:
        """Every rate card of every phase (most plans have one phase)."""
        return tuple(card for phase in self.phases for card in phase.rate_cards)

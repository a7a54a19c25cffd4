"""Entitlements: access a rate card grants — boolean, metered (a limit per usage period), or static config."""

from __future__ import annotations

from collections.abc import Iterable
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


# The one rule for a feature the customer's plan carries no entitlement for, shared by the entitlement
# value (the API) and the gateway's enforcement, so the two never disagree:
#   - the plan has no entitlement for the feature: access without a limit ("Enterprise: unlimited"),
#   - unless the catalog sells the feature as a gate (some plan grants it with a boolean entitlement):
#     then a plan without that boolean entitlement has no access to it.
# A metered entitlement limits only the plans that carry it; a soft one never refuses.


def gated_features(templates: Iterable[tuple[str, EntitlementTemplate]]) -> frozenset[str]:
    """The feature keys some plan grants with a boolean entitlement, from (feature key, template) pairs."""
    return frozenset(feature for feature, template in templates if template.type == "boolean")


def access_without_entitlement(feature_key: str, gated: frozenset[str]) -> bool:
    """Whether a plan without an entitlement for the feature gives access to it."""
    return feature_key not in gated


def metered_access(template: EntitlementTemplate, usage: Decimal) -> bool:
    """A metered entitlement: a soft limit always lets through; a hard one while usage is below the limit."""
    limit = template.limit if template.limit is not None else Decimal(0)
    return (not template.hard) or usage < limit

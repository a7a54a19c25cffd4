"""Entitlements: access a rate card grants — boolean, metered (a limit per usage period), or static config."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
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
    total_available_grant_amount: Decimal | None = None  # metered: what the active unit grants made available


class FeatureAccess(StrEnum):
    ENTITLED = "entitled"  # the plan's entitlement decides: boolean / static give access, metered its limit
    UNLIMITED = "unlimited"  # access without a limit (no balance): what a plan that prices the feature gives
    NONE = "none"  # no access


def feature_access(
    *, subscribed: bool, entitlement: EntitlementTemplate | None, priced: bool, has_meter: bool, gated: bool
) -> FeatureAccess:
    """THE access rule for a customer and a feature, shared by the entitlement value (the API) and the gateway's
    enforcement, so the two never disagree (docs/billing.md, "Entitlement values"):

    - no active subscription: no access (OpenMeter's answer for a customer without the entitlement);
    - the plan's rate card for the feature carries an entitlement: that entitlement decides;
    - the plan prices the feature without an entitlement: access without a limit ("Enterprise: unlimited";
      OpenMeter would need a boolean entitlement on that rate card, Tollway reads the price as one);
    - the plan does not have the feature: no access when the feature is a gate (it has no meter, so it is
      only ever access; or some plan grants it with a boolean entitlement), else access without a limit
      (usage nothing gates, such as a provider cost the plan does not bill: the gateway lets it through).

    `entitlement`, `priced` (a rate card for the feature: a usage or a flat price): the customer's plan, in the
    phase running now, for this feature; `gated`: some
    published (or archived) plan grants the feature with a boolean entitlement (`gated_features`)."""
    if not subscribed:
        return FeatureAccess.NONE
    if entitlement is not None:
        return FeatureAccess.ENTITLED
    if priced or (has_meter and not gated):
        return FeatureAccess.UNLIMITED
    return FeatureAccess.NONE


def gated_features(templates: Iterable[tuple[str, EntitlementTemplate]]) -> frozenset[str]:
    """The feature keys some plan grants with a boolean entitlement, from (feature key, template) pairs."""
    return frozenset(feature for feature, template in templates if template.type == "boolean")


def metered_access(template: EntitlementTemplate, usage: Decimal, *, granted: Decimal = Decimal(0)) -> bool:
    """A metered entitlement: a soft limit always gives access; a hard one while usage is below the limit plus
    what the active unit grants made available in the period (`granted`): a hard limit is reached only when the
    plan's allowance and every active grant are used up."""
    limit = template.limit if template.limit is not None else Decimal(0)
    return (not template.hard) or usage < limit + granted

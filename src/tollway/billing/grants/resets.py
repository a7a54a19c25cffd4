"""Manual resets of a metered entitlement (OpenMeter's `POST .../entitlements/{featureKey}/reset`): a reset at
`effective_at` starts a new usage period there. Usage counts from it, the grants roll over as at any period
start, and the allowance is issued again.

- `retain_anchor` false (OpenMeter's default): the usage periods are anchored at the reset from then on;
  true: the next period starts at the old anchor's next boundary (the reset only cuts the current period).
- `preserve_overage` true: the overage of the period the reset ends is carried into the new one (it burns the
  allowance and the grants first); false (default): it is forgiven.

`usage_period_at` is the one function that says which usage period a moment falls in: the entitlement value,
its burn-down and the gateway's hard-limit window all use it, so they agree after a reset.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from tollway.billing.periods import Cadence, period_containing


@dataclass(frozen=True)
class EntitlementReset:
    id: str
    customer_id: str
    feature_key: str
    effective_at: datetime
    created_at: datetime
    retain_anchor: bool = False
    preserve_overage: bool = False


def usage_period_at(
    anchor: datetime, cadence: Cadence, resets: Sequence[EntitlementReset], at: datetime
) -> tuple[datetime, datetime]:
    """The usage period [start, end) containing `at`: periods of `cadence` from `anchor`, or from the latest reset
    at or before `at` that did not retain the anchor; a reset starts a period, a later reset ends one."""
    past = [r for r in resets if r.effective_at <= at]
    start, end = period_containing(anchor_at(anchor, resets, at), cadence, at)
    if past:
        start = max(start, max(r.effective_at for r in past))
    upcoming = [r.effective_at for r in resets if r.effective_at > at]
    if upcoming:
        end = min(end, min(upcoming))
    return start, end


def anchor_at(anchor: datetime, resets: Sequence[EntitlementReset], at: datetime) -> datetime:
    """The usage periods' anchor at `at`: the latest reset by then that did not retain the anchor, else `anchor`."""
    moved = [r.effective_at for r in resets if r.effective_at <= at and not r.retain_anchor]
    return max(moved) if moved else anchor


def reset_at(resets: Sequence[EntitlementReset], moment: datetime) -> EntitlementReset | None:
    """The reset that starts a period at `moment`, if one does."""
    return next((r for r in resets if r.effective_at == moment), None)

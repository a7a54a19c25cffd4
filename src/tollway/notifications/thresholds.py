"""Which thresholds a metered entitlement's value has reached (pure), as OpenMeter's balance worker decides:

- PERCENT and usage_percentage: usage >= value % of the entitlement's total (its limit for the period);
  never reached when the total is zero;
- NUMBER and usage_value: usage >= value;
- balance_value: the balance left (total - usage, never below zero) <= value.

Each reached threshold fires once per rule, customer, feature and usage period (the store records it); a
new usage period re-arms them all. Several thresholds crossed by one jump each fire (lowest first).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from tollway.errors import ValidationError
from tollway.notifications.model import THRESHOLD_TYPES, Threshold

HUNDRED = Decimal(100)
MAX_THRESHOLDS = 10


@dataclass(frozen=True)
class Reading:
    """A metered entitlement's state: what it grants in the period and what was used."""

    total: Decimal  # the limit for the usage period
    usage: Decimal

    @property
    def balance(self) -> Decimal:
        return max(self.total - self.usage, Decimal(0))


def reached(threshold: Threshold, reading: Reading) -> bool:
    kind = threshold.type
    if kind in ("PERCENT", "usage_percentage"):
        return reading.total > 0 and reading.usage * HUNDRED >= threshold.value * reading.total
    if kind in ("NUMBER", "usage_value"):
        return reading.usage >= threshold.value
    return reading.balance <= threshold.value  # balance_value


def reached_thresholds(thresholds: Sequence[Threshold], reading: Reading) -> list[Threshold]:
    """The thresholds `reading` has reached, in the order they are crossed as usage grows."""
    hits = [t for t in thresholds if reached(t, reading)]
    return sorted(hits, key=lambda t: _crossing_usage(t, reading.total))


def _crossing_usage(threshold: Threshold, total: Decimal) -> Decimal:
    if threshold.type in ("PERCENT", "usage_percentage"):
        return threshold.value * total / HUNDRED
    if threshold.type in ("NUMBER", "usage_value"):
        return threshold.value
    return total - threshold.value


def check_thresholds(thresholds: Sequence[Threshold], field: str = "thresholds") -> None:
    """A rule's thresholds: 1 to 10, each non-negative, no two alike; PERCENT at most 1000."""
    if not thresholds:
        raise ValidationError(f"{field} needs at least one threshold", field=field)
    if len(thresholds) > MAX_THRESHOLDS:
        raise ValidationError(f"{field} holds at most {MAX_THRESHOLDS} thresholds", field=field)
    seen: set[str] = set()
    for n, threshold in enumerate(thresholds):
        where = f"{field}[{n}]"
        if threshold.type not in THRESHOLD_TYPES:
            raise ValidationError(f"{where}.type must be one of {', '.join(THRESHOLD_TYPES)}", field=f"{where}.type")
        if not threshold.value.is_finite() or threshold.value < 0:
            raise ValidationError(f"{where}.value must be a number >= 0", field=f"{where}.value")
        if threshold.type in ("PERCENT", "usage_percentage") and (threshold.value <= 0 or threshold.value > 1000):
            raise ValidationError(f"{where}.value must be a percentage above 0, at most 1000", field=f"{where}.value")
        if threshold.key in seen:
            raise ValidationError(f"{where} repeats an earlier threshold", field=where)
        seen.add(threshold.key)


def check_amounts(thresholds: Sequence[Threshold], field: str = "thresholds") -> None:
    """credits.balance.low: 1 to 10 amounts (`NUMBER` or `balance_value`, in the balance's currency)."""
    check_thresholds(thresholds, field)
    for n, threshold in enumerate(thresholds):
        if threshold.type not in ("NUMBER", "balance_value"):
            where = f"{field}[{n}].type"
            raise ValidationError(f"{where} must be NUMBER or balance_value (an amount of credit)", field=where)


def check_days(thresholds: Sequence[Threshold], field: str = "thresholds") -> None:
    """credits.expiring: none (7 days) or 1 to 10 `NUMBER`s of whole days before the expiry, 1 to 3650."""
    if not thresholds:
        return
    check_thresholds(thresholds, field)
    for n, threshold in enumerate(thresholds):
        where = f"{field}[{n}]"
        if threshold.type != "NUMBER":
            raise ValidationError(f"{where}.type must be NUMBER (days before the expiry)", field=f"{where}.type")
        if threshold.value != threshold.value.to_integral_value() or not 1 <= threshold.value <= 3650:
            raise ValidationError(f"{where}.value must be a whole number of days, 1 to 3650", field=f"{where}.value")

"""What invoice lines say (pure): a flat fee's description with its proration, an adjustment's. A usage line's
description is its price model's (`tollway.billing.pricing.usage.describe_usage`)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from tollway.billing.plans import RateCard
from tollway.money import decimal_text, rounded_percent


def proration_text(proration: Decimal) -> str:
    """ "33.33% of the period" (rounded for people; the line's amount is exact)."""
    return f"{decimal_text(rounded_percent(proration))}% of the period"


def flat_description(card: RateCard, proration: Decimal, *, credit: bool) -> str:
    """The fee's name; "(50% of the period)" when prorated; ": unused time credited (...)" on a credit."""
    description = card.name or card.key
    if credit:
        return f"{description}: unused time credited ({proration_text(proration)})"
    if proration != 1:
        return f"{description} ({proration_text(proration)})"
    return description


def adjustment_description(period_start: datetime, period_end: datetime, reference: str) -> str:
    return (
        f"Adjustment for {period_start:%Y-%m-%d} to {period_end:%Y-%m-%d} (usage received after invoice "
        f"{reference} was issued)"
    )

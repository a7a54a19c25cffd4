"""What a call costs the customer: its plan's rate cards at the marginal price for the usage so far (pure).

The cost of adding `delta` to a feature whose period usage is `used` is the usage line's amount at
`used + delta` minus its amount at `used`: the price model, free quantity, percentage discount and
maximum-spend cap all apply, so a tier boundary or a cap is priced exactly as the invoice will price it.
The minimum-spend top-up is left out (it is owed whatever the calls cost), as are flat fees. A customer
without a plan pays what the providers charge: the provider cost in USD.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from tollway.billing.pricing.model import UnitPrice, UsageTerms
from tollway.billing.pricing.usage import charge_usage

_ZERO = Decimal(0)


def line_amount(quantity: Decimal, terms: UsageTerms) -> Decimal:
    """The usage line's amount for `quantity`, before the minimum-spend top-up."""
    charge = charge_usage(max(quantity, _ZERO), terms)
    return charge.amount - charge.minimum_top_up


def marginal_cost(used: Decimal, delta: Decimal, terms: UsageTerms) -> Decimal:
    """What `delta` more units cost after `used` units this period (never negative)."""
    if delta <= 0:
        return _ZERO
    if isinstance(terms.price, UnitPrice) and terms == UsageTerms(terms.price):
        return delta * terms.price.amount  # a plain unit price: no free quantity, discount or cap to apply
    return max(line_amount(used + delta, terms) - line_amount(used, terms), _ZERO)


def call_cost(deltas: Mapping[str, Decimal], used: Mapping[str, Decimal], cards: Mapping[str, UsageTerms]) -> Decimal:
    """A call's cost under a plan: the marginal cost of its usage of each priced feature (by feature key)."""
    total = _ZERO
    for feature, terms in cards.items():
        delta = deltas.get(feature, _ZERO)
        if delta:
            total += marginal_cost(used.get(feature, _ZERO), delta, terms)
    return total

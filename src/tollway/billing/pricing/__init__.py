"""Price models: one module per usage price model (`unit`, `tiered` over `tiered_graduated` and `tiered_volume`,
`package`, `dynamic`), each with its pricer (`pricer.Pricer`: charge, description, validation, codec hooks),
registered by price type in `registry.PRICERS`; `flat` (the flat fee, not a usage model); `usage.charge_usage`,
which applies a usage line's terms around its model; `terms.validate_usage_terms`, the rules of those terms.

Every function is pure and exact: arithmetic runs in `tollway.money.exact_arithmetic()`, a decimal context that
raises rather than rounds, so 10^12 tokens at a 12-decimal price come out to the last digit. Rounding to the
currency's minor unit happens once, on the invoice line (`tollway.money.to_minor_units`).
"""

from __future__ import annotations

from tollway.billing.pricing.flat import validate_flat_price
from tollway.billing.pricing.pricer import check_quantity
from tollway.billing.pricing.terms import validate_usage_terms
from tollway.billing.pricing.tiered import validate_tiers
from tollway.money import EXACT_PRECISION, exact_arithmetic

__all__ = [
    "EXACT_PRECISION",
    "check_quantity",
    "exact_arithmetic",
    "validate_flat_price",
    "validate_tiers",
    "validate_usage_terms",
]

"""Wire encodings shared by the management API: decimals as strings, times as RFC 3339 UTC."""

from __future__ import annotations

from decimal import Decimal


def decimal_text(value: Decimal) -> str:
    """A decimal as plain text: no exponent, no trailing zeros ("1200", "0.000003")."""
    if value == value.to_integral_value():
        return str(value.quantize(Decimal(1)))
    return format(value.normalize(), "f")

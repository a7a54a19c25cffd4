"""Small helpers for payloads: RFC 3339 times and decimal numbers as the receivers see them."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal


def rfc3339(moment: datetime) -> str:
    """UTC, milliseconds, `Z`: 2026-12-07T18:00:00.123Z."""
    text = moment.astimezone(UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def number(value: Decimal) -> int | float:
    """A threshold as OpenMeter sends it (a JSON number): an integer when whole."""
    if value == value.to_integral_value():
        return int(value)
    return float(value)

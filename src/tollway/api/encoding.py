"""Wire encodings shared by the management API: decimals as strings, times as RFC 3339 UTC."""

from __future__ import annotations

from tollway.money import decimal_text

__all__ = ["decimal_text"]

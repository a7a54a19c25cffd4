"""Spend control: limits checked before a call (entitlements, budgets), reservations, settle and release."""

"""Billing: features, plans and rate cards, customers, subscriptions, entitlements, invoices."""

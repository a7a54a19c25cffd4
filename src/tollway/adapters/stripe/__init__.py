"""Stripe: invoices pushed through the official SDK (client, mapping, sync) and its webhooks verified and applied."""

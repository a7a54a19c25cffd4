"""Invoices: lines from rate cards and usage, preview, lifecycle, period close."""

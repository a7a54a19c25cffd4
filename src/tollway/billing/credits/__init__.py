"""Prepaid money credits: grants, their ledger and the burn-down that pays invoice lines (see README.md)."""

"""Prepaid money credits, the lower layer: grants, their ledger rows and the store port (see README.md)."""

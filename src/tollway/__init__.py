"""Tollway: a self-hosted AI gateway that meters every LLM token and turns usage into invoices."""

__version__ = "0.1.0"

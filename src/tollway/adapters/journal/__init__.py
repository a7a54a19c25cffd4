"""The append-only local journal on disk."""

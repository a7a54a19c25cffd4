"""Gateway identities: consumers and their API keys (stored as digests), managed at run time."""

"""The gateway: the hot path from an authenticated request to the provider and back, with usage captured."""

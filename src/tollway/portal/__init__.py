"""Customer portal tokens: a token a customer may hold to read its own usage (OpenMeter's portal tokens)."""

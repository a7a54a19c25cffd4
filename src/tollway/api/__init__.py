"""The management HTTP API under /api/v1: decode -> service -> encode. Errors are mapped once, in errors.py."""

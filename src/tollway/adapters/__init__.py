"""Adapters: the real implementations of the ports (SQL, file journal) and in-memory fakes."""

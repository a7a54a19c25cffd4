"""Metering: usage events, the journal-backed pipeline that stores them, meters and their queries."""

"""Redis adapters (spend control's counters)."""

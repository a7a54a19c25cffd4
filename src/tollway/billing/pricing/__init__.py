"""Price models: one pure module per model (unit, tiered_graduated, tiered_volume, package, dynamic, flat)."""

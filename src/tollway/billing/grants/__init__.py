"""Unit grants on metered entitlements (OpenMeter's grants): model, burn-down, store port."""

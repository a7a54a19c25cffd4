"""Upstream providers: one module per provider type, all behind the Provider protocol in base.py."""

"""Notifications: channels, rules, events and their delivery (see README.md)."""

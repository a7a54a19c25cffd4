"""The operator dashboard (/dashboard) and the customer portal (/portal): server-rendered pages over the services."""

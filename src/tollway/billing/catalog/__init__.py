"""The catalog's use cases, one module each (features, plans, customers, subscriptions, entitlement values).

Each class adds one use case to the one before it; `tollway.billing.service.CatalogService` is the last.
"""

"""Catalog use cases: features, plans, customers, subscriptions and entitlement values.

Every method validates its input and raises a DomainError with a kind and the offending field
(ValidationError, NotFoundError, ConflictError); nothing is stored when it raises.

Subscriptions run from `active_from` (inclusive) to `active_to` (exclusive): only usage at or after
`active_from` is billed or counted against an entitlement. A plan change or migration ends the current
subscription at an instant T and starts the next one at T, both written in one transaction.
"""

from tollway.billing.catalog.customers import CustomerSubjects
from tollway.billing.catalog.entitlements import EntitlementCases
from tollway.billing.catalog.plans import PLAN_STATUSES
from tollway.billing.catalog.subscriptions import Timing

__all__ = ["PLAN_STATUSES", "CatalogService", "CustomerSubjects", "Timing"]


class CatalogService(EntitlementCases):
    """Features, plans, customers, subscriptions and entitlement values (tollway.billing.catalog: one module per
    use case)."""

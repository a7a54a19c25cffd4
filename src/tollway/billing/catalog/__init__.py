"""The catalog's use cases, one service per concept, each a plain class built from its ports, the clock and the
services it needs (composition, not inheritance; the composition root wires them: tollway.wiring.catalog).

- `FeatureService` (feature_service.py): features over meters. Store, metering, clock.
- `PlanService` (plan_service.py): versioned plans, drafts, publish, archive. Store, metering, clock.
- `CustomerService` (customer_service.py): customers and their subjects; also metering's CustomerResolver.
  Store, clock.
- `SubscriptionService` (subscription_service.py): subscribe, cancel, change, migrate. Store, clock, customers,
  plans.
- `CustomerContexts` (customer_contexts.py): a customer's catalog rows kept per catalog version, for the reads on
  the hot path (entitlement values, invoice previews). Store, customers, plans.
- `EntitlementService` (entitlement_service.py): entitlement values and the granted entitlements. Store, metering,
  clock, customer contexts, running totals, unit grants.
- `UnitGrantService` (unit_grant_service.py): unit grants on a metered entitlement and its burn-down history. Unit
  grant store, store, clock, customer contexts, entitlements.

`Catalog` holds them for the callers that need several (the management app, which hands each router the services
it uses, `tollway apply`, the dashboard); a caller that needs one takes that one.
"""

from __future__ import annotations

from dataclasses import dataclass

from tollway.billing.catalog.customer_contexts import CustomerContexts
from tollway.billing.catalog.customer_service import CustomerService
from tollway.billing.catalog.entitlement_service import EntitlementService
from tollway.billing.catalog.feature_service import FeatureService
from tollway.billing.catalog.plan_service import PlanService
from tollway.billing.catalog.subscription_service import SubscriptionService
from tollway.billing.catalog.unit_grant_service import UnitGrantService
from tollway.billing.ports import CatalogStore
from tollway.clock import Clock

__all__ = [
    "Catalog",
    "CustomerContexts",
    "CustomerService",
    "EntitlementService",
    "FeatureService",
    "PlanService",
    "SubscriptionService",
    "UnitGrantService",
]


@dataclass(frozen=True)
class Catalog:
    """The catalog's services over one store and clock (no behaviour of its own)."""

    store: CatalogStore
    clock: Clock
    features: FeatureService
    plans: PlanService
    customers: CustomerService
    subscriptions: SubscriptionService
    contexts: CustomerContexts
    entitlements: EntitlementService

"""The catalog's part of the composition root (wiring.services builds through this; tests and benchmarks too):
each catalog service from its ports, the clock and the services it needs."""

from __future__ import annotations

from tollway.billing.catalog import (
    Catalog,
    CustomerContexts,
    CustomerService,
    EntitlementService,
    FeatureService,
    PlanService,
    SubscriptionService,
)
from tollway.billing.catalog.unit_grant_service import UnitGrantService
from tollway.billing.grants.ports import UnitGrantStore
from tollway.billing.ports import CatalogStore
from tollway.clock import Clock
from tollway.metering.running_totals import RunningTotals
from tollway.metering.service import MeteringService


def build_catalog(
    store: CatalogStore,
    metering: MeteringService,
    clock: Clock,
    *,
    customers: CustomerService | None = None,
    unit_grants: UnitGrantStore | None = None,
    running_totals: RunningTotals | None = None,
) -> Catalog:
    """`customers`: the one already handed to metering as its CustomerResolver (built first: metering needs it and
    the catalog needs metering). With `unit_grants`, metered entitlement values count the customers' unit grants."""
    customers = customers or CustomerService(store, clock)
    plans = PlanService(store, metering, clock)
    contexts = CustomerContexts(store, customers, plans)
    return Catalog(
        store=store,
        clock=clock,
        features=FeatureService(store, metering, clock),
        plans=plans,
        customers=customers,
        subscriptions=SubscriptionService(store, clock, customers, plans),
        contexts=contexts,
        entitlements=EntitlementService(
            store,
            metering,
            clock,
            contexts,
            running_totals or RunningTotals(metering.store, clock),
            unit_grants=unit_grants,
        ),
    )


def build_unit_grants(catalog: Catalog, store: UnitGrantStore) -> UnitGrantService:
    """Unit grants over `store` (the one `build_catalog` was given, so entitlement values count them)."""
    return UnitGrantService(store, catalog.store, catalog.clock, catalog.contexts, catalog.entitlements)

"""Apply a declarative catalog (the config file's meters, features, plans and customers) to the store.

`plan_apply` is pure: the desired catalog and a snapshot of the stored one in, the list of changes (or the
problems that forbid any) out. `execute` makes the changes through the catalog services, in an order where a
failure half-way leaves a consistent catalog that a second run completes:
meters -> features -> plans (new version, then publish) -> customers -> subscriptions -> archives.

Rules: what the file defines is marked managed_by "config"; API-managed features and plans are never
changed; a published plan version is never edited (a different plan is a new version, published); a
feature cannot change in place (archived and created again, only while no published plan uses it);
config-managed features and plans no longer in the file are archived; customers are never deleted, and a
customer field the file leaves out (the Stripe link the sync records, an e-mail set through the API) is
never changed.

The package: `desired` (the desired and stored catalogs), `changes` (the change types and the plan),
`diff` (`plan_apply`, pure) and `executor` (`load_stored`, `execute`, `apply_catalog`).
"""

from tollway.billing.apply.changes import ApplyPlan, Change
from tollway.billing.apply.desired import (
    CUSTOMER_FIELDS,
    DesiredCatalog,
    DesiredCustomer,
    DesiredFeature,
    DesiredPlan,
    DesiredSubscription,
    StoredCatalog,
)
from tollway.billing.apply.diff import offline_problems, plan_apply, same_plan
from tollway.billing.apply.executor import ApplyFailed, apply_catalog, execute, load_stored

__all__ = [
    "CUSTOMER_FIELDS",
    "ApplyFailed",
    "ApplyPlan",
    "Change",
    "DesiredCatalog",
    "DesiredCustomer",
    "DesiredFeature",
    "DesiredPlan",
    "DesiredSubscription",
    "StoredCatalog",
    "apply_catalog",
    "execute",
    "load_stored",
    "offline_problems",
    "plan_apply",
    "same_plan",
]

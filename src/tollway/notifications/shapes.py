"""How payloads show Tollway's objects: as the management API shows them. The API layer implements this
(tollway.api.notification_shapes) and the composition root hands it in, so the domain never imports the API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from tollway.billing.credit_accounts.service import CreditBalance
from tollway.billing.credits.model import CreditGrant
from tollway.billing.customers import Customer
from tollway.billing.entitlements import EntitlementValue
from tollway.billing.features import Feature
from tollway.billing.invoicing.model import Invoice
from tollway.billing.subscriptions import Subscription


class Shapes(Protocol):
    def customer(self, customer: Customer) -> dict[str, Any]: ...

    def feature(self, feature: Feature) -> dict[str, Any]: ...

    def invoice(self, invoice: Invoice) -> dict[str, Any]: ...

    def subscription(self, subscription: Subscription, now: datetime) -> dict[str, Any]: ...

    def entitlement_value(self, value: EntitlementValue) -> dict[str, Any]: ...

    def grant(self, grant: CreditGrant) -> dict[str, Any]: ...

    def credit_balance(self, balance: CreditBalance) -> dict[str, Any]: ...

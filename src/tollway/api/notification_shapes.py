"""Payload shapes for notifications (tollway.notifications.shapes.Shapes): Tollway's objects as the management
API shows them, so a webhook's `data` reads like the API's answers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tollway.api.credit_codec import balance_json, grant_json
from tollway.api.customer_codec import encode_customer, encode_entitlement_value
from tollway.api.feature_codec import encode_feature
from tollway.api.invoice_codec import invoice_json
from tollway.api.subscription_codec import encode_subscription
from tollway.billing.credit_accounts.service import CreditBalance
from tollway.billing.credits.model import CreditGrant
from tollway.billing.customers import Customer
from tollway.billing.entitlements import EntitlementValue
from tollway.billing.features import Feature
from tollway.billing.invoicing.model import Invoice
from tollway.billing.subscriptions import Subscription


class ApiShapes:
    def customer(self, customer: Customer) -> dict[str, Any]:
        return encode_customer(customer, None)

    def feature(self, feature: Feature) -> dict[str, Any]:
        return encode_feature(feature)

    def invoice(self, invoice: Invoice) -> dict[str, Any]:
        return invoice_json(invoice)

    def subscription(self, subscription: Subscription, now: datetime) -> dict[str, Any]:
        return encode_subscription(subscription, now)

    def entitlement_value(self, value: EntitlementValue) -> dict[str, Any]:
        return encode_entitlement_value(value)

    def grant(self, grant: CreditGrant) -> dict[str, Any]:
        return grant_json(grant)

    def credit_balance(self, balance: CreditBalance) -> dict[str, Any]:
        return balance_json(balance)

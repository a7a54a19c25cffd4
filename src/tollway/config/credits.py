"""`credits:` under a customer in the config file: money credit grants, created once each.

Each grant carries an idempotency key (`key`, default the grant's name) stored as `config:<key>`: applying the
same file again creates nothing; a grant the file changes under the same key is refused with a line naming it
(a grant cannot change: void it and give the new one another key)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import Field

from tollway.billing.credit_accounts.service import NewGrant
from tollway.config.catalog_fields import Strict

CONFIG_KEY_PREFIX = "config:"


class CreditGrantConfig(Strict):
    name: str = Field(min_length=1, max_length=255)
    amount: Decimal = Field(gt=0)
    currency: str | None = None
    funding_method: Literal["none", "invoice", "external"] = "none"
    price: Decimal | None = Field(default=None, ge=0)
    priority: int = Field(default=1, ge=1, le=255)
    effective_at: datetime | None = None
    expires_after: str | None = None
    features: list[str] | None = None
    key: str | None = Field(default=None, min_length=1, max_length=200)

    def grant(self) -> NewGrant:
        return NewGrant(
            name=self.name,
            amount=self.amount,
            currency=self.currency,
            funding_method=self.funding_method,
            priority=self.priority,
            effective_at=self.effective_at,
            expires_after=self.expires_after,
            key=CONFIG_KEY_PREFIX + (self.key or self.name),
            features=None if self.features is None else tuple(self.features),
            price=self.price,
            metadata={"managed_by": "config"},
        )

"""UnitGrantStore: where unit grants live (tollway.adapters.sql.unit_grants, tollway.adapters.memory.unit_grants)."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from tollway.billing.grants.model import UnitGrant
from tollway.billing.grants.resets import EntitlementReset


class UnitGrantStore(Protocol):
    async def create_grant(self, grant: UnitGrant) -> UnitGrant: ...

    async def get_grant(self, grant_id: str) -> UnitGrant | None: ...

    async def list_grants(self, customer_id: str, feature_key: str | None = None) -> list[UnitGrant]:
        """Oldest first, voided ones included."""
        ...

    async def list_all_grants(self) -> list[UnitGrant]:
        """Every grant (voided ones too: what they paid before the void still counts), oldest first."""
        ...

    async def void_grant(self, grant_id: str, *, at: datetime) -> UnitGrant:
        """Sets voided_at once (a repeat keeps the first time). NotFoundError when unknown."""
        ...

    async def create_reset(self, reset: EntitlementReset) -> EntitlementReset: ...

    async def list_resets(
        self, customer_id: str | None = None, feature_key: str | None = None
    ) -> list[EntitlementReset]:
        """Oldest (earliest effective) first; every customer's when customer_id is None."""
        ...

"""MemoryUnitGrantStore: the UnitGrantStore port in memory."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from tollway.billing.grants.model import UnitGrant
from tollway.billing.grants.resets import EntitlementReset
from tollway.errors import NotFoundError


class MemoryUnitGrantStore:
    def __init__(self) -> None:
        self._grants: dict[str, UnitGrant] = {}
        self._resets: list[EntitlementReset] = []

    async def create_grant(self, grant: UnitGrant) -> UnitGrant:
        self._grants[grant.id] = grant
        return grant

    async def get_grant(self, grant_id: str) -> UnitGrant | None:
        return self._grants.get(grant_id)

    async def list_grants(self, customer_id: str, feature_key: str | None = None) -> list[UnitGrant]:
        return [
            g
            for g in self._grants.values()
            if g.customer_id == customer_id and (feature_key is None or g.feature_key == feature_key)
        ]

    async def list_all_grants(self) -> list[UnitGrant]:
        return list(self._grants.values())

    async def void_grant(self, grant_id: str, *, at: datetime) -> UnitGrant:
        grant = self._grants.get(grant_id)
        if grant is None:
            raise NotFoundError(f"grant {grant_id!r} not found", field="grantId")
        if grant.voided_at is None:
            grant = self._grants[grant_id] = replace(grant, voided_at=at)
        return grant

    async def create_reset(self, reset: EntitlementReset) -> EntitlementReset:
        self._resets.append(reset)
        return reset

    async def list_resets(
        self, customer_id: str | None = None, feature_key: str | None = None
    ) -> list[EntitlementReset]:
        return sorted(
            (
                r
                for r in self._resets
                if (customer_id is None or r.customer_id == customer_id)
                and (feature_key is None or r.feature_key == feature_key)
            ),
            key=lambda r: (r.effective_at, r.created_at, r.id),
        )

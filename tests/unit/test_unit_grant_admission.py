"""The gateway's enforcement and the entitlement value agree on unit grants: a hard limit of 100 output tokens
with a grant of 50 refuses a call only once the allowance and the grant are used up (150), as hasAccess says."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tests.unit.test_spend_admission import HARD_100, World, card, world_with
from tollway.adapters.memory.unit_grants import MemoryUnitGrantStore
from tollway.billing.grants.service import NewUnitGrant, UnitGrantService
from tollway.errors import LimitExceededError
from tollway.spend.admission import SpendAdmission
from tollway.spend.keeper import RulesKeeper

NOV_1 = datetime(2026, 11, 1, tzinfo=UTC)


async def with_grant(used: int) -> tuple[World, UnitGrantService]:
    w = await world_with(card("output-tokens", HARD_100), used=used)
    store = MemoryUnitGrantStore()
    w.catalog.use_unit_grants(store)
    grants = UnitGrantService(w.catalog, store)
    w.keeper = RulesKeeper(w.store, w.metering, granted=grants.granted_now)
    grants.on_change = w.keeper.refresh_grants
    w.admission = SpendAdmission(w.counters, w.usage, w.clock, w.keeper.current)
    await w.keeper.refresh()
    await grants.create("acme", "output-tokens", NewUnitGrant(amount=Decimal(50), effective_at=NOV_1))
    return w, grants


async def test_a_grant_raises_the_hard_limit_at_the_gateway_and_in_the_value() -> None:
    w, _ = await with_grant(used=140)
    value = await w.catalog.entitlement_value("acme", "output-tokens")
    assert (value.has_access, value.balance, value.total_available_grant_amount) == (True, Decimal(10), Decimal(50))
    assert await w.admit(output=10) is not None  # 140 + 10 = 150: the allowance and the grant, exactly
    with pytest.raises(LimitExceededError) as refused:
        await w.admit(output=1)
    assert "allows 150 per usage period" in refused.value.message


async def test_used_up_means_refused_in_both() -> None:
    w, _ = await with_grant(used=150)  # the allowance (100) and the grant (50) used up
    value = await w.catalog.entitlement_value("acme", "output-tokens")
    assert (value.has_access, value.balance, value.overage) == (False, Decimal(0), Decimal(0))
    with pytest.raises(LimitExceededError):
        await w.admit(output=1)


async def test_without_the_grant_the_gateway_refuses_at_the_plan_limit() -> None:
    w = await world_with(card("output-tokens", HARD_100), used=95)
    with pytest.raises(LimitExceededError):
        await w.admit(output=10)  # 95 + 10 > 100: the check above fails on code that ignores grants

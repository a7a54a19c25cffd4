"""The gateway's enforcement and the entitlement value agree on unit grants: a hard limit of 100 output tokens
with a grant of 50 refuses a call only once the allowance and the grant are used up (150), as hasAccess says."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tests.unit.test_spend_admission import HARD_100, World, card, world_with
from tollway.billing.catalog.unit_grant_service import NewUnitGrant, UnitGrantService
from tollway.errors import LimitExceededError
from tollway.metering.llm import llm_call_events
from tollway.spend.admission import SpendAdmission
from tollway.spend.keeper import RulesKeeper
from tollway.wiring.catalog import build_unit_grants

NOV_1 = datetime(2026, 11, 1, tzinfo=UTC)


async def with_grant(used: int) -> tuple[World, UnitGrantService]:
    w = await world_with(card("output-tokens", HARD_100), used=used)
    store = w.unit_grants
    grants = build_unit_grants(w.catalog, store)
    w.keeper = RulesKeeper(w.store, w.metering, granted=grants.granted_now)
    grants.on_change = w.keeper.refresh_grants
    w.admission = SpendAdmission(w.counters, w.usage, w.clock, w.keeper.current)
    await w.keeper.refresh()
    await grants.create("acme", "output-tokens", NewUnitGrant(amount=Decimal(50), effective_at=NOV_1))
    return w, grants


async def test_a_grant_raises_the_hard_limit_at_the_gateway_and_in_the_value() -> None:
    w, _ = await with_grant(used=140)
    value = await w.catalog.entitlements.entitlement_value("acme", "output-tokens")
    assert (value.has_access, value.balance, value.total_available_grant_amount) == (True, Decimal(10), Decimal(50))
    assert await w.admit(output=10) is not None  # 140 + 10 = 150: the allowance and the grant, exactly
    with pytest.raises(LimitExceededError) as refused:
        await w.admit(output=1)
    assert "allows 150 per usage period" in refused.value.message


async def test_used_up_means_refused_in_both() -> None:
    w, _ = await with_grant(used=150)  # the allowance (100) and the grant (50) used up
    value = await w.catalog.entitlements.entitlement_value("acme", "output-tokens")
    assert (value.has_access, value.balance, value.overage) == (False, Decimal(0), Decimal(0))
    with pytest.raises(LimitExceededError):
        await w.admit(output=1)


async def test_without_the_grant_the_gateway_refuses_at_the_plan_limit() -> None:
    w = await world_with(card("output-tokens", HARD_100), used=95)
    with pytest.raises(LimitExceededError):
        await w.admit(output=10)  # 95 + 10 > 100: the check above fails on code that ignores grants


async def test_a_reset_moves_the_window_the_gateway_counts_in() -> None:
    w = await world_with(card("output-tokens", HARD_100), used=95)  # 95 used at 11:00 on Nov 23
    store = w.unit_grants
    grants = build_unit_grants(w.catalog, store)
    w.keeper = RulesKeeper(w.store, w.metering, granted=grants.granted_now, resets=store.list_resets)
    grants.on_change = w.keeper.refresh_grants
    w.admission = SpendAdmission(w.counters, w.usage, w.clock, w.keeper.current)
    await w.keeper.refresh()
    assert await w.admit(output=5) is not None  # the old window's counter: 95 + 5 = 100
    with pytest.raises(LimitExceededError):
        await w.admit(output=1)
    await grants.reset("acme", "output-tokens", effective_at=datetime(2026, 11, 23, 11, 30, tzinfo=UTC))
    await w.events.insert_events(llm_call_events(w.call(output=80, ago=15)))  # 11:45, after the reset
    value = await w.catalog.entitlements.entitlement_value("acme", "output-tokens")
    assert (value.has_access, value.usage, value.balance) == (True, Decimal(80), Decimal(20))
    assert await w.admit(output=20) is not None  # a new counter, seeded from the 80 metered since 11:30
    with pytest.raises(LimitExceededError) as refused:
        await w.admit(output=1)
    assert "(2026-11-23T11:30:00Z to 2026-12-23T11:30:00Z); 80 used, 20 held" in refused.value.message

"""The unit grant store on the memory fake, SQLite and PostgreSQL: a grant round-trips exactly (decimals,
times, recurrence, rollover), lists by customer and feature, and is voided once (a repeat keeps the first time)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tests.support.databases import BACKENDS, database_url, migrated_engine
from tollway.adapters.memory.unit_grants import MemoryUnitGrantStore
from tollway.adapters.sql.unit_grants import SqlUnitGrantStore
from tollway.billing.grants.model import UnitGrant
from tollway.billing.grants.ports import UnitGrantStore
from tollway.billing.grants.resets import EntitlementReset
from tollway.errors import NotFoundError

AT = datetime(2026, 12, 1, 0, 0, 0, 1, tzinfo=UTC)


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[UnitGrantStore]:
    if request.param == "memory":
        yield MemoryUnitGrantStore()
        return
    url = database_url(request, tmp_path, "g.db")
    engine = await migrated_engine(url)
    yield SqlUnitGrantStore(engine)
    engine.dispose()


async def test_round_trip_list_and_void(store: UnitGrantStore) -> None:
    grant = UnitGrant(
        id="g1",
        customer_id="c",
        feature_key="tokens",
        amount=Decimal("5000000.5"),
        priority=3,
        effective_at=AT,
        created_at=AT,
        expiration_duration="DAY",
        expiration_count=30,
        expires_at=AT + timedelta(days=30),
        min_rollover=Decimal(10),
        max_rollover=Decimal("2.25"),
        recurrence_interval="P1M",
        recurrence_anchor=AT,
        metadata={"why": "launch"},
    )
    other = replace(grant, id="g2", feature_key="other", created_at=AT + timedelta(seconds=1), max_rollover=None)
    assert await store.create_grant(grant) == grant
    await store.create_grant(other)
    assert await store.get_grant("g1") == grant
    assert await store.list_grants("c", "tokens") == [grant]
    assert [g.id for g in await store.list_grants("c")] == ["g1", "g2"]
    voided = await store.void_grant("g1", at=AT + timedelta(days=2))
    again = await store.void_grant("g1", at=AT + timedelta(days=3))
    assert voided.voided_at == again.voided_at == AT + timedelta(days=2)
    assert [g.id for g in await store.list_all_grants()] == ["g1", "g2"]
    with pytest.raises(NotFoundError):
        await store.void_grant("nope", at=AT)


async def test_resets_round_trip_in_effective_order(store: UnitGrantStore) -> None:
    later = EntitlementReset("r2", "c", "tokens", AT + timedelta(days=9), AT, retain_anchor=True)
    earlier = EntitlementReset("r1", "c", "tokens", AT + timedelta(days=3), AT, preserve_overage=True)
    other = EntitlementReset("r3", "d", "tokens", AT, AT)
    for reset in (later, earlier, other):
        await store.create_reset(reset)
    assert await store.list_resets("c", "tokens") == [earlier, later]
    assert await store.list_resets("c", "other") == []
    assert await store.list_resets() == [other, earlier, later]

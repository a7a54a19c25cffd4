"""One contract suite for the budget store: memory fake, SQLite and PostgreSQL keep the same rules."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from tests.support.databases import BACKENDS, database_url, migrated_engine
from tollway.adapters.memory.budgets import MemoryBudgetStore
from tollway.adapters.sql.budgets import SqlBudgetStore
from tollway.adapters.sql.catalog import SqlCatalogStore
from tollway.adapters.sql.engine import create_sql_engine
from tollway.adapters.sql.migrate import upgrade
from tollway.clock import FrozenClock
from tollway.errors import ConflictError, NotFoundError
from tollway.spend.budgets import Budget
from tollway.spend.ports import BudgetStore

NOW = datetime(2026, 11, 23, 12, 0, 0, 123456, tzinfo=UTC)
MONTHLY = Budget(
    id="01JD0000000000000000000001",
    key="acme-monthly",
    scope="customer",
    target="acme",
    kind="money",
    limit=Decimal("50.25"),
    window="month",
    hard=True,
    name="Acme, $50 a month",
    managed_by="config",
    created_at=NOW,
    updated_at=NOW,
)
DAILY = Budget(
    id="01JD0000000000000000000002",
    key="bot-daily",
    scope="consumer",
    target="acme-bot",
    kind="tokens",
    limit=Decimal(200000),
    window="day",
    hard=False,
    created_at=NOW,
    updated_at=NOW,
)


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BudgetStore]:
    if request.param == "memory":
        yield MemoryBudgetStore()
        return
    url = database_url(request, tmp_path, "budgets.db")
    engine = await migrated_engine(url)
    yield SqlBudgetStore(engine, FrozenClock(NOW))
    await asyncio.to_thread(engine.dispose)


async def test_round_trip_order_and_lookup_by_id_or_key(store: BudgetStore) -> None:
    before = await store.budgets_version()
    await store.insert_budget(DAILY)
    await store.insert_budget(MONTHLY)
    assert await store.list_budgets() == [MONTHLY, DAILY]  # by key
    assert await store.get_budget("acme-monthly") == MONTHLY
    assert await store.get_budget(DAILY.id) == DAILY
    assert await store.get_budget("nope") is None
    assert await store.budgets_version() > before


async def test_keys_are_unique_and_updates_replace(store: BudgetStore) -> None:
    await store.insert_budget(MONTHLY)
    with pytest.raises(ConflictError) as taken:
        await store.insert_budget(replace(DAILY, key="acme-monthly"))
    assert taken.value.field == "key"
    changed = replace(MONTHLY, limit=Decimal("80"), window="billing_period", hard=False)
    version = await store.budgets_version()
    await store.update_budget(changed)
    assert await store.get_budget(MONTHLY.id) == changed
    assert await store.budgets_version() > version
    with pytest.raises(NotFoundError):
        await store.update_budget(DAILY)
    assert await store.delete_budget(MONTHLY.id) is True
    assert await store.delete_budget(MONTHLY.id) is False
    assert await store.list_budgets() == []


async def test_a_budget_write_moves_the_catalog_version_gateways_watch(tmp_path: Path) -> None:
    engine = create_sql_engine(f"sqlite:///{tmp_path / 'v.db'}")
    await asyncio.to_thread(upgrade, engine)
    catalog = SqlCatalogStore(engine, FrozenClock(NOW))
    before = await catalog.version()
    await SqlBudgetStore(engine, FrozenClock(NOW)).insert_budget(MONTHLY)
    assert await catalog.version() == before + 1
    await asyncio.to_thread(engine.dispose)

"""`tollway apply` owns only the customer fields the file sets: the Stripe link the sync records (and any field
the file leaves out) survives every apply, on SQLite and PostgreSQL; a dry run shows no change for it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.support.apply_files import STARTER, desired
from tests.support.databases import database_url
from tollway.adapters.sql.catalog import SqlCatalogStore
from tollway.adapters.sql.engine import create_sql_engine
from tollway.adapters.sql.migrate import upgrade
from tollway.adapters.sql.store import SqlEventStore
from tollway.billing.apply import ApplyPlan, apply_catalog, execute, load_stored, plan_apply
from tollway.billing.catalog import Catalog
from tollway.clock import FrozenClock
from tollway.metering.service import MeteringService
from tollway.wiring.catalog import build_catalog

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
async def services(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Catalog, MeteringService]]:
    url = database_url(request, tmp_path, "apply.db")
    engine = create_sql_engine(url)
    await asyncio.to_thread(upgrade, engine)
    clock = FrozenClock(NOW)
    store = SqlEventStore(engine, clock)
    metering = MeteringService(store, clock)
    yield build_catalog(SqlCatalogStore(engine, clock), metering, clock), metering
    await store.close()
    engine.dispose()


async def test_apply_twice_keeps_the_stripe_link_the_sync_recorded(
    services: tuple[Catalog, MeteringService],
) -> None:
    catalog, metering = services

    async def apply(text: str, *, dry_run: bool = False) -> ApplyPlan:
        return await apply_catalog(desired(text), catalog, metering, NOW, dry_run=dry_run)

    await apply(STARTER)
    acme = await catalog.customers.customer("acme")
    # sync, API
    await catalog.customers.update_customer(replace(acme, stripe_customer_id="cus_Q1", email="ap@acme.test"))

    dry = await apply(STARTER, dry_run=True)
    assert (dry.lines, dry.summary) == ([], "No changes.")
    again = await apply(STARTER)
    assert (again.lines, again.summary) == ([], "No changes.")
    kept = await catalog.customers.customer("acme")
    assert (kept.stripe_customer_id, kept.email, kept.subjects) == ("cus_Q1", "ap@acme.test", ("acme-corp",))

    renamed = STARTER.replace("name: Acme Corp,", "name: Acme Inc,")
    assert (await apply(renamed)).lines == ["~ customer acme (name)"]
    assert (await catalog.customers.customer("acme")).stripe_customer_id == "cus_Q1"

    linked = renamed.replace("name: Acme Inc,", "name: Acme Inc, stripe_customer_id: cus_Z9,")
    assert (await apply(linked, dry_run=True)).lines == ["~ customer acme (stripe_customer_id)"]
    await apply(linked)
    assert (
        await catalog.customers.customer("acme")
    ).stripe_customer_id == "cus_Z9"  # a field the file sets is the file's


async def test_a_stripe_link_recorded_between_plan_and_write_survives(
    services: tuple[Catalog, MeteringService],
) -> None:
    """`serve` applies its file while its billing worker syncs: the link stored after the plan was made is kept."""
    catalog, metering = services
    await apply_catalog(desired(STARTER), catalog, metering, NOW)
    renamed = desired(STARTER.replace("name: Acme Corp,", "name: Acme Inc,"))
    plan = plan_apply(renamed, await load_stored(catalog, metering), NOW)
    assert plan.lines == ["~ customer acme (name)"]
    acme = await catalog.customers.customer("acme")
    await catalog.customers.update_customer(replace(acme, stripe_customer_id="cus_Q1"))  # the sync, meanwhile
    await execute(plan, catalog, metering, NOW)
    kept = await catalog.customers.customer("acme")
    assert (kept.name, kept.stripe_customer_id) == ("Acme Inc", "cus_Q1")

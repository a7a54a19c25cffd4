"""CustomerService: round trip, validation, unique keys and subjects, soft delete; as metering's customer resolver
(in memory and as the composition root wires it)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests.support.meter_events import token_event
from tests.unit.catalog.helpers import NOW, World, expect, metered_world, published
from tollway.api.app import create_management_app
from tollway.billing.customers import Address
from tollway.clock import FrozenClock
from tollway.errors import ConflictError, NotFoundError, ValidationError
from tollway.metering.aggregation import MeterQuery
from tollway.metering.service import MeteringService
from tollway.settings import Settings
from tollway.wiring.services import build_services


async def test_customer_round_trip_and_update(world: World) -> None:
    acme = await world.catalog.customers.create_customer(
        key="acme",
        name="Acme Corp",
        subjects=["acme-corp", "acme-bot", "acme-corp"],
        email="billing@acme.example",
        currency="USD",
        billing_address=Address(country="US", city="Springfield"),
        metadata={"tier": "gold"},
    )
    assert acme.subjects == ("acme-corp", "acme-bot")
    assert await world.catalog.customers.customer("acme") == acme
    assert await world.catalog.customers.customer(acme.id) == acme
    assert await world.catalog.customers.subjects_of("acme") == ["acme-corp", "acme-bot"]
    assert await world.catalog.customers.subjects_of(acme.id) == ["acme-corp", "acme-bot"]
    world.clock.advance(timedelta(minutes=5))
    updated = await world.catalog.customers.update_customer(replace(acme, name="Acme Inc", subjects=("acme-corp",)))
    assert (updated.name, updated.subjects) == ("Acme Inc", ("acme-corp",))
    assert (updated.created_at, updated.updated_at) == (NOW, NOW + timedelta(minutes=5))
    other = await world.catalog.customers.create_customer(key="other", name="Other", subjects=["acme-bot"])  # released
    assert other.subjects == ("acme-bot",)
    await expect(NotFoundError, "customer", world.catalog.customers.update_customer(replace(acme, id="01NOPE")))
    await expect(ValidationError, "customer", world.catalog.customers.subjects_of("ghost"))  # a bad query parameter


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"key": "a b"}, "key"),
        ({"name": ""}, "name"),
        ({"email": "not-an-email"}, "primaryEmail"),
        ({"email": "a@b"}, "primaryEmail"),
        ({"currency": "dollars"}, "currency"),
        ({"subjects": [""]}, "usageAttribution.subjectKeys"),
        ({"subjects": "acme"}, "usageAttribution.subjectKeys"),
        ({"billing_address": Address(country="usa")}, "billingAddress.country"),
        ({"metadata": {"x": {1, 2}}}, "metadata"),
    ],
)
async def test_customer_validation(world: World, kwargs: dict[str, object], field: str) -> None:
    body: dict[str, object] = {"key": "acme", "name": "Acme"} | kwargs
    await expect(ValidationError, field, world.catalog.customers.create_customer(**body))  # type: ignore[arg-type]
    assert await world.catalog.customers.customers(include_deleted=True) == []


async def test_customer_keys_and_subjects_are_unique(world: World) -> None:
    await world.catalog.customers.create_customer(key="acme", name="Acme", subjects=["acme-corp"])
    await expect(ConflictError, "key", world.catalog.customers.create_customer(key="acme", name="Again"))
    error = await expect(
        ConflictError,
        "usageAttribution.subjectKeys",
        world.catalog.customers.create_customer(key="globex", name="Globex", subjects=["globex", "acme-corp"]),
    )
    assert error.message == "subject 'acme-corp' already belongs to customer 'acme'"
    assert [c.key for c in await world.catalog.customers.customers()] == ["acme"]


async def test_delete_is_soft_refused_while_subscribed_and_releases_subjects(world: World) -> None:
    await published(world)
    acme = await world.catalog.customers.create_customer(key="acme", name="Acme", subjects=["acme-corp"])
    sub = await world.catalog.subscriptions.create_subscription(customer="acme", plan_key="starter")
    await expect(ConflictError, "customer", world.catalog.customers.delete_customer("acme"))
    await world.catalog.subscriptions.cancel_subscription(sub.id, NOW + timedelta(days=1))
    # still active until tomorrow
    await expect(ConflictError, "customer", world.catalog.customers.delete_customer("acme"))
    world.clock.advance(timedelta(days=1))
    await world.catalog.customers.delete_customer("acme")
    gone = await world.catalog.customers.customer(acme.id)
    assert gone.deleted_at == NOW + timedelta(days=1)
    await expect(NotFoundError, "customer", world.catalog.customers.customer("acme"))
    await expect(NotFoundError, "customer", world.catalog.customers.delete_customer(acme.id))
    assert await world.catalog.customers.customers() == []
    assert [c.id for c in await world.catalog.customers.customers(include_deleted=True)] == [acme.id]
    again = await world.catalog.customers.create_customer(key="acme", name="Acme again", subjects=["acme-corp"])
    assert await world.store.customer_of_subject("acme-corp") == again


async def test_customer_resolver_narrows_meter_queries(world: World) -> None:
    await metered_world(world)
    metering = MeteringService(world.events, world.clock, customers=world.catalog.customers)
    rows = await metering.query(
        "llm_tokens",
        MeterQuery(start=datetime(2026, 11, 1, tzinfo=UTC), end=NOW, filter_group_by={"type": ("output",)}),
        customer="acme",
    )
    assert sum(r.value for r in rows) == Decimal(700 + 400 + 350 + 30)


async def test_composition_root_wires_the_catalog_into_meter_queries(tmp_path: Path) -> None:
    """build_services: the meter query's `customer` parameter resolves through the catalog (SQLite, real HTTP)."""
    clock = FrozenClock(NOW)
    services = build_services(Settings(database_url=f"sqlite:///{tmp_path / 'wired.db'}"), clock)
    await services.open()
    try:
        await services.metering.sync_meters([])
        await services.catalog.customers.create_customer(key="acme", name="Acme", subjects=["acme-corp", "acme-bot"])
        await services.metering.insert(
            [
                token_event("t1", "acme-corp", NOW - timedelta(hours=3), 120),
                token_event("t2", "acme-bot", NOW - timedelta(hours=2), 80),
                token_event("t3", "globex", NOW - timedelta(hours=2), 999),
            ]
        )
        app = create_management_app(metering=services.metering, admin_token="secret", catalog=services.catalog)
        headers = {"Authorization": "Bearer secret"}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            found = await client.get("/api/v1/meters/llm_tokens/query", params={"customer": "acme"}, headers=headers)
            missing = await client.get("/api/v1/meters/llm_tokens/query", params={"customer": "x"}, headers=headers)
        assert found.status_code == 200, found.text
        assert sorted((r["subject"], r["value"]) for r in found.json()["data"]) == [
            ("acme-bot", "80"),
            ("acme-corp", "120"),
        ]
        assert (missing.status_code, missing.json()["field"]) == (400, "customer")
    finally:
        await services.close()

"""SubscriptionService: one active at a time, validation, scheduled starts, cancel timings, plan changes and
migrations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.unit.catalog.helpers import NOW, STARTER, World, expect, published
from tollway.errors import ConflictError, NotFoundError, ValidationError


async def test_subscription_defaults_and_single_active(world: World) -> None:
    plan_id = await published(world)
    await world.catalog.customers.create_customer(key="acme", name="Acme", subjects=["acme-corp"])
    sub = await world.catalog.subscriptions.create_subscription(customer="acme", plan_key="starter")
    assert (sub.plan_id, sub.plan_version, sub.currency, sub.billing_cadence) == (plan_id, 1, "USD", "P1M")
    assert (sub.active_from, sub.billing_anchor, sub.active_to, sub.name) == (NOW, NOW, None, "Starter")
    assert sub.status(NOW) == "active"
    await expect(
        ConflictError, "customer", world.catalog.subscriptions.create_subscription(customer="acme", plan_key="starter")
    )
    later = NOW + timedelta(days=40)
    await expect(
        ConflictError,
        "customer",
        world.catalog.subscriptions.create_subscription(customer="acme", plan_key="starter", active_from=later),
    )
    assert await world.catalog.subscriptions.subscription_at("acme", NOW - timedelta(seconds=1)) is None
    assert await world.catalog.subscriptions.subscription_at("acme", NOW) == sub
    assert [s.id for s in await world.catalog.subscriptions.subscriptions(customer="acme")] == [sub.id]
    assert sub.description == ""


async def test_subscription_description_is_stored(world: World) -> None:
    await published(world)
    await world.catalog.customers.create_customer(key="acme", name="Acme", subjects=["acme-corp"])
    sub = await world.catalog.subscriptions.create_subscription(
        customer="acme", plan_key="starter", description="Pilot, 3 months"
    )
    assert sub.description == "Pilot, 3 months"
    assert (await world.catalog.subscriptions.subscription(sub.id)).description == "Pilot, 3 months"


async def test_subscription_validation(world: World) -> None:
    await world.catalog.customers.create_customer(key="acme", name="Acme", currency="EUR")
    await world.catalog.customers.create_customer(key="globex", name="Globex")
    draft = await world.catalog.plans.create_plan(
        key="starter", name="Starter", currency="USD", billing_cadence="P1M", phases=STARTER
    )
    await expect(
        NotFoundError, "customer", world.catalog.subscriptions.create_subscription(customer="ghost", plan_key="starter")
    )
    await expect(
        NotFoundError, "plan.key", world.catalog.subscriptions.create_subscription(customer="globex", plan_key="ghost")
    )
    await expect(
        ValidationError,
        "plan.key",
        world.catalog.subscriptions.create_subscription(customer="globex", plan_key="starter"),
    )
    await expect(
        ValidationError,
        "plan.version",
        world.catalog.subscriptions.create_subscription(customer="globex", plan_key="starter", plan_version=1),
    )
    await expect(
        NotFoundError,
        "plan.version",
        world.catalog.subscriptions.create_subscription(customer="globex", plan_key="starter", plan_version=2),
    )
    await world.catalog.plans.publish_plan(draft.id)
    await expect(
        ValidationError,
        "plan.key",
        world.catalog.subscriptions.create_subscription(customer="acme", plan_key="starter"),
    )
    await expect(
        ValidationError,
        "activeFrom",
        world.catalog.subscriptions.create_subscription(
            customer="globex", plan_key="starter", active_from=datetime(2026, 1, 1)
        ),
    )
    await expect(
        ValidationError,
        "billingAnchor",
        world.catalog.subscriptions.create_subscription(
            customer="globex", plan_key="starter", billing_anchor=datetime(2026, 1, 1)
        ),
    )
    assert await world.catalog.subscriptions.subscriptions() == []


async def test_scheduled_subscription_follows_an_ended_one(world: World) -> None:
    await published(world)
    await world.catalog.customers.create_customer(key="acme", name="Acme")
    first = await world.catalog.subscriptions.create_subscription(customer="acme", plan_key="starter")
    await world.catalog.subscriptions.cancel_subscription(first.id, NOW + timedelta(days=3))
    second = await world.catalog.subscriptions.create_subscription(
        customer="acme", plan_key="starter", active_from=NOW + timedelta(days=3)
    )
    assert second.status(NOW) == "scheduled"
    assert await world.catalog.subscriptions.subscription_at("acme", NOW + timedelta(days=3)) == second
    await expect(ConflictError, "customer", world.catalog.customers.delete_customer("acme"))  # scheduled counts


async def test_cancel_timings(world: World) -> None:
    await published(world)
    for key in ("a", "b", "c"):
        await world.catalog.customers.create_customer(key=key, name=key)
    anchor = datetime(2026, 11, 1, tzinfo=UTC)
    start = datetime(2026, 11, 10, tzinfo=UTC)
    a = await world.catalog.subscriptions.create_subscription(
        customer="a", plan_key="starter", active_from=start, billing_anchor=anchor
    )
    b = await world.catalog.subscriptions.create_subscription(
        customer="b", plan_key="starter", active_from=start, billing_anchor=anchor
    )
    c = await world.catalog.subscriptions.create_subscription(customer="c", plan_key="starter")
    immediate = await world.catalog.subscriptions.cancel_subscription(a.id)
    assert (immediate.active_to, immediate.canceled_at) == (NOW, NOW)
    await expect(ConflictError, "subscription", world.catalog.subscriptions.cancel_subscription(a.id))
    cycle = await world.catalog.subscriptions.cancel_subscription(b.id, "next_billing_cycle")
    assert cycle.active_to == datetime(2026, 12, 1, tzinfo=UTC)
    assert cycle.status(NOW) == "canceled"
    await expect(
        ValidationError, "timing", world.catalog.subscriptions.cancel_subscription(c.id, NOW - timedelta(seconds=1))
    )
    await expect(ValidationError, "timing", world.catalog.subscriptions.cancel_subscription(c.id, "tomorrow"))  # type: ignore[arg-type]
    at = await world.catalog.subscriptions.cancel_subscription(c.id, datetime(2027, 1, 15, tzinfo=UTC))
    assert at.active_to == datetime(2027, 1, 15, tzinfo=UTC)
    await expect(NotFoundError, "subscription", world.catalog.subscriptions.cancel_subscription("nope"))


async def test_change_and_migrate(world: World) -> None:
    starter_id = await published(world)
    pro_id = await published(world, "pro")
    yearly_id = await published(world, "yearly", cadence="P1Y")
    await world.catalog.customers.create_customer(key="acme", name="Acme", subjects=["acme-corp"])
    anchor = datetime(2026, 11, 1, tzinfo=UTC)
    sub = await world.catalog.subscriptions.create_subscription(
        customer="acme", plan_key="starter", active_from=anchor, billing_anchor=anchor
    )
    ended, nxt = await world.catalog.subscriptions.change_subscription(sub.id, plan_key="pro")
    assert (ended.active_to, ended.replaced_by, ended.canceled_at) == (NOW, nxt.id, None)
    assert (nxt.plan_id, nxt.active_from, nxt.billing_anchor, nxt.active_to) == (pro_id, NOW, NOW, None)
    assert ended.status(NOW - timedelta(seconds=1)) == "active"
    assert await world.catalog.subscriptions.subscription_at("acme", NOW) == nxt
    assert await world.catalog.subscriptions.subscription(sub.id) == ended
    await expect(
        ConflictError, "subscription", world.catalog.subscriptions.change_subscription(sub.id, plan_key="yearly")
    )
    await expect(ConflictError, "plan.key", world.catalog.subscriptions.change_subscription(nxt.id, plan_key="pro"))

    # next billing cycle, same cadence: the anchor stays; another cadence: it starts afresh
    ended2, cycle = await world.catalog.subscriptions.change_subscription(
        nxt.id, plan_key="starter", timing="next_billing_cycle"
    )
    assert ended2.active_to == cycle.active_from == datetime(2026, 12, 23, 12, 0, tzinfo=UTC)
    assert (cycle.plan_id, cycle.billing_anchor) == (starter_id, NOW)
    ended3, yearly = await world.catalog.subscriptions.change_subscription(
        cycle.id, plan_key="yearly", timing=datetime(2027, 2, 1, tzinfo=UTC)
    )
    assert ended3.active_to == yearly.active_from == yearly.billing_anchor == datetime(2027, 2, 1, tzinfo=UTC)
    assert yearly.plan_id == yearly_id
    stored = await world.catalog.subscriptions.subscriptions(customer="acme")
    assert [(s.plan_key, s.active_from, s.active_to) for s in stored] == [
        ("starter", anchor, NOW),
        ("pro", NOW, datetime(2026, 12, 23, 12, 0, tzinfo=UTC)),
        ("starter", datetime(2026, 12, 23, 12, 0, tzinfo=UTC), datetime(2027, 2, 1, tzinfo=UTC)),
        ("yearly", datetime(2027, 2, 1, tzinfo=UTC), None),
    ]

    # a new version of the yearly plan: migrate keeps the customer on the key, on the published version
    v2 = await world.catalog.plans.create_plan(
        key="yearly", name="Yearly", currency="USD", billing_cadence="P1Y", phases=STARTER
    )
    await world.catalog.plans.publish_plan(v2.id)
    assert (await world.catalog.subscriptions.subscription(yearly.id)).plan_id == yearly_id  # kept until migrated
    world.clock.set(datetime(2027, 3, 1, tzinfo=UTC))
    old, migrated = await world.catalog.subscriptions.migrate_subscription(yearly.id)
    assert (migrated.plan_key, migrated.plan_version, migrated.active_from) == (
        "yearly",
        2,
        datetime(2027, 3, 1, tzinfo=UTC),
    )
    assert old.active_to == datetime(2027, 3, 1, tzinfo=UTC)
    await expect(ConflictError, "plan.key", world.catalog.subscriptions.migrate_subscription(migrated.id))
    await expect(
        ValidationError, "plan.version", world.catalog.subscriptions.migrate_subscription(migrated.id, target_version=1)
    )


async def test_change_refused_past_a_scheduled_end(world: World) -> None:
    await published(world)
    await published(world, "pro")
    await world.catalog.customers.create_customer(key="acme", name="Acme")
    sub = await world.catalog.subscriptions.create_subscription(customer="acme", plan_key="starter")
    await world.catalog.subscriptions.cancel_subscription(sub.id, NOW + timedelta(days=2))
    await expect(
        ConflictError,
        "timing",
        world.catalog.subscriptions.change_subscription(sub.id, plan_key="pro", timing=NOW + timedelta(days=3)),
    )
    assert (await world.catalog.subscriptions.subscription(sub.id)).replaced_by is None

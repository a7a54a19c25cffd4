"""Catalog on the memory stores: lifecycle rules, every validation error's field, entitlement values."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tollway.adapters.memory.catalog import MemoryCatalogStore
from tollway.adapters.memory.store import MemoryEventStore
from tollway.api.app import create_management_app
from tollway.billing.customers import Address
from tollway.billing.entitlements import EntitlementTemplate, EntitlementValue
from tollway.billing.plans import Phase, RateCard
from tollway.billing.pricing.model import FlatPrice, Tier, TieredPrice, UnitPrice, UsageTerms
from tollway.clock import FrozenClock
from tollway.errors import ConflictError, DomainError, NotFoundError, ValidationError
from tollway.metering.aggregation import MeterQuery
from tollway.metering.events import Event
from tollway.metering.llm import LlmCall, TokenPrice, TokenUsage, llm_call_events
from tollway.metering.meters import Aggregation, Meter
from tollway.metering.service import MeteringService
from tollway.settings import Settings
from tollway.wiring.catalog import build_catalog
from tollway.wiring.services import build_services

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


class World:
    def __init__(self) -> None:
        self.clock = FrozenClock(NOW)
        self.events = MemoryEventStore(self.clock)
        self.store = MemoryCatalogStore()
        self.metering = MeteringService(self.events, self.clock)
        self.catalog = build_catalog(self.store, self.metering, self.clock)


@pytest.fixture
async def world() -> World:
    w = World()
    await w.metering.sync_meters(
        [Meter("visitors", "page.view", Aggregation.UNIQUE_COUNT, "$.visitor", {"page": "$.page"}, managed_by="config")]
    )
    await w.catalog.features.create_feature(key="input-tokens", meter_slug="llm_tokens", filters={"type": ["input"]})
    await w.catalog.features.create_feature(key="output-tokens", meter_slug="llm_tokens", filters={"type": ["output"]})
    await w.catalog.features.create_feature(key="sso")
    return w


def card(key: str, feature: str | None = None, **kwargs: object) -> RateCard:
    return RateCard(key=key, name=key.title(), feature_key=feature, **kwargs)  # type: ignore[arg-type]


def usage(amount: str) -> UsageTerms:
    return UsageTerms(price=UnitPrice(Decimal(amount)))


def phases(*cards: RateCard) -> tuple[Phase, ...]:
    return (Phase(key="default", name="Default", rate_cards=cards),)


STARTER = phases(
    card("input-tokens", "input-tokens", usage=usage("0.000003"), billing_cadence="P1M"),
    card("output-tokens", "output-tokens", usage=usage("0.00001"), billing_cadence="P1M"),
)


async def published(w: World, key: str = "starter", cards: tuple[Phase, ...] = STARTER, cadence: str = "P1M") -> str:
    plan = await w.catalog.plans.create_plan(
        key=key, name=key.title(), currency="USD", billing_cadence=cadence, phases=cards
    )
    return (await w.catalog.plans.publish_plan(plan.id)).id


async def expect(error: type[DomainError], field: str, work: object) -> DomainError:
    with pytest.raises(error) as caught:
        await work  # type: ignore[misc]
    assert caught.value.field == field, caught.value.message
    return caught.value


# -- features ---------------------------------------------------------------------------------------


async def test_feature_round_trip(world: World) -> None:
    feature = await world.catalog.features.feature("output-tokens")
    assert (feature.key, feature.name, feature.meter_slug) == ("output-tokens", "output-tokens", "llm_tokens")
    assert feature.filters == {"type": ("output",)}
    assert feature.created_at == NOW
    assert await world.catalog.features.feature(feature.id) == feature
    assert [f.key for f in await world.catalog.features.features()] == ["input-tokens", "output-tokens", "sso"]
    gpt = await world.catalog.features.create_feature(
        key="gpt_out", name="GPT out", meter_slug="llm_tokens", filters={"type": "output", "model": ["a", "b"]}
    )
    assert gpt.filters == {"type": ("output",), "model": ("a", "b")}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"key": "has space"}, "key"),
        ({"key": "-leading"}, "key"),
        ({"key": "x" * 65}, "key"),
        ({"key": "ok", "meter_slug": "nope"}, "meterSlug"),
        ({"key": "ok", "meter_slug": "llm_tokens", "filters": {"colour": ["red"]}}, "meterGroupByFilters"),
        ({"key": "ok", "meter_slug": "llm_tokens", "filters": {"type": [""]}}, "meterGroupByFilters"),
        ({"key": "ok", "meter_slug": "llm_tokens", "filters": {"type": []}}, "meterGroupByFilters"),
        ({"key": "ok", "meter_slug": "llm_tokens", "filters": {"type": ["request"]}}, "meterGroupByFilters"),
        ({"key": "ok", "meter_slug": "llm_tokens", "filters": {"type": ["input", "Output"]}}, "meterGroupByFilters"),
        ({"key": "ok", "filters": {"type": ["input"]}}, "meterGroupByFilters"),
        ({"key": "ok", "name": " "}, "name"),
        ({"key": "ok", "metadata": {"n": Decimal(1)}}, "metadata"),
    ],
)
async def test_feature_validation(world: World, kwargs: dict[str, object], field: str) -> None:
    await expect(ValidationError, field, world.catalog.features.create_feature(**kwargs))  # type: ignore[arg-type]
    assert len(await world.catalog.features.features(include_archived=True)) == 3


async def test_feature_key_unique_until_archived(world: World) -> None:
    await expect(ConflictError, "key", world.catalog.features.create_feature(key="sso"))
    archived = await world.catalog.features.archive_feature("sso")
    assert archived.archived_at == NOW
    await expect(ConflictError, "feature", world.catalog.features.archive_feature(archived.id))
    again = await world.catalog.features.create_feature(key="sso", name="Single sign-on")
    assert again.id != archived.id
    assert (await world.catalog.features.feature("sso")).id == again.id
    assert [f.id for f in await world.catalog.features.features()] == [
        (await world.catalog.features.feature("input-tokens")).id,
        (await world.catalog.features.feature("output-tokens")).id,
        again.id,
    ]
    assert len(await world.catalog.features.features(include_archived=True)) == 4


async def test_archive_refused_while_a_published_plan_uses_the_feature(world: World) -> None:
    plan_id = await published(world)
    error = await expect(ConflictError, "feature", world.catalog.features.archive_feature("output-tokens"))
    assert error.message == ("feature 'output-tokens' is used by published plan 'starter' v1; archive the plan first")
    await world.catalog.plans.archive_plan(plan_id)
    assert (await world.catalog.features.archive_feature("output-tokens")).archived


# -- plans ------------------------------------------------------------------------------------------


async def test_plan_versions_and_lifecycle(world: World) -> None:
    catalog = world.catalog
    v1 = await catalog.plans.create_plan(key="pro", name="Pro", currency="USD", billing_cadence="P1M", phases=STARTER)
    assert (v1.version, v1.status, v1.created_at) == (1, "draft", NOW)
    await expect(
        ConflictError,
        "key",
        catalog.plans.create_plan(key="pro", name="P", currency="USD", billing_cadence="P1M", phases=STARTER),
    )
    world.clock.advance(timedelta(hours=1))
    p1 = await catalog.plans.publish_plan(v1.id)
    assert (p1.status, p1.published_at) == ("published", NOW + timedelta(hours=1))
    await expect(ConflictError, "status", catalog.plans.publish_plan(v1.id))
    await expect(
        ConflictError, "status", catalog.plans.update_plan(v1.id, name="X", billing_cadence="P1M", phases=STARTER)
    )
    await expect(ConflictError, "status", catalog.plans.delete_plan(v1.id))
    v2 = await catalog.plans.create_plan(key="pro", name="Pro 2", currency="USD", billing_cadence="P1Y", phases=STARTER)
    assert v2.version == 2
    await expect(ConflictError, "status", catalog.plans.archive_plan(v2.id))
    edited = await catalog.plans.update_plan(
        v2.id, name="Pro two", billing_cadence="P1M", phases=STARTER, description="yearly no more"
    )
    assert (edited.name, edited.billing_cadence, edited.description) == ("Pro two", "P1M", "yearly no more")
    assert (await catalog.plans.plan("pro")).id == v1.id  # the published one
    assert (await catalog.plans.plan("pro", 2)).name == "Pro two"
    world.clock.advance(timedelta(hours=1))
    p2 = await catalog.plans.publish_plan(v2.id)
    old = await catalog.plans.plan(v1.id)
    assert (old.status, old.archived_at) == ("archived", NOW + timedelta(hours=2))
    assert (await catalog.plans.plan("pro")).id == p2.id
    assert [(p.version, p.status) for p in await catalog.plans.plans(key="pro")] == [(1, "archived"), (2, "published")]
    assert [p.version for p in await catalog.plans.plans(status="archived")] == [1]
    await expect(ValidationError, "status", catalog.plans.plans(status="live"))
    v3 = await catalog.plans.create_plan(key="pro", name="Pro 3", currency="USD", billing_cadence="P1M", phases=STARTER)
    assert (await catalog.plans.plan("pro")).id == p2.id
    await catalog.plans.delete_plan(v3.id)
    await expect(NotFoundError, "plan", catalog.plans.plan(v3.id))
    assert [p.version for p in await catalog.plans.plans(key="pro")] == [1, 2]
    archived = await catalog.plans.archive_plan(p2.id)
    assert archived.status == "archived"
    assert (await catalog.plans.plan("pro")).version == 2  # no published version: the latest
    v4 = await catalog.plans.create_plan(key="pro", name="Pro 4", currency="USD", billing_cadence="P1M", phases=STARTER)
    assert v4.version == 3


BAD_TIERS = TieredPrice("graduated", (Tier(up_to=Decimal(10)), Tier(up_to=Decimal(5)), Tier(up_to=None)))


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"key": "pro plan"}, "key"),
        ({"name": ""}, "name"),
        ({"currency": "usd"}, "currency"),
        ({"currency": "XYZ"}, "currency"),
        ({"billing_cadence": "1M"}, "billingCadence"),
        ({"billing_cadence": "PT1M"}, "billingCadence"),
        ({"phases": ()}, "phases"),
        ({"phases": phases(card("a", "nope", usage=usage("1")))}, "phases[0].rateCards[0].featureKey"),
        ({"phases": phases(card("a", "sso"), card("a", "input-tokens"))}, "phases[0].rateCards[1].key"),
        ({"phases": phases(card("a", "sso"), card("b", "sso"))}, "phases[0].rateCards[1].featureKey"),
        ({"phases": phases(card("ok"), card("bad key"))}, "phases[0].rateCards[1].key"),
        ({"phases": phases(card("a", usage=usage("1")))}, "phases[0].rateCards[0].featureKey"),
        ({"phases": phases(card("a", "sso", usage=usage("1")))}, "phases[0].rateCards[0].featureKey"),
        ({"phases": phases(card("a", "input-tokens", usage=usage("-1")))}, "phases[0].rateCards[0].price.amount"),
        (
            {"phases": phases(card("a", "input-tokens", usage=UsageTerms(BAD_TIERS)))},
            "phases[0].rateCards[0].price.tiers[1].upToAmount",
        ),
        (
            {"phases": phases(card("a", "input-tokens", usage=replace(usage("1"), discount_percentage=Decimal(101))))},
            "phases[0].rateCards[0].discounts.percentage.percentage",
        ),
        (
            {
                "phases": phases(
                    card(
                        "a",
                        "input-tokens",
                        usage=replace(usage("1"), minimum_amount=Decimal(5), maximum_amount=Decimal(2)),
                    )
                )
            },
            "phases[0].rateCards[0].price.minimumAmount",
        ),
        (
            {"phases": phases(card("a", "input-tokens", usage=usage("1"), flat=FlatPrice(Decimal(1))))},
            "phases[0].rateCards[0].price",
        ),
        ({"phases": phases(card("fee", flat=FlatPrice(Decimal("-5"))))}, "phases[0].rateCards[0].price.amount"),
        (
            {"phases": phases(card("fee", flat=FlatPrice(Decimal(5)), billing_cadence="monthly"))},
            "phases[0].rateCards[0].billingCadence",
        ),
        (
            {"phases": (Phase("trial", "Trial", (card("a", "sso"),)), Phase("main", "Main", (card("a", "sso"),)))},
            "phases[0].duration",
        ),
        (
            {"phases": (Phase("p", "P", (), "P14D"), Phase("p", "P", ()))},
            "phases[1].key",
        ),
        (
            {"phases": phases(card("e", entitlement=EntitlementTemplate("boolean")))},
            "phases[0].rateCards[0].entitlementTemplate",
        ),
        (
            {"phases": phases(card("e", "sso", entitlement=EntitlementTemplate("metered", limit=Decimal(5))))},
            "phases[0].rateCards[0].entitlementTemplate",
        ),
        (
            {"phases": phases(card("e", "input-tokens", entitlement=EntitlementTemplate("metered")))},
            "phases[0].rateCards[0].entitlementTemplate.issueAfterReset",
        ),
        (
            {
                "phases": phases(
                    card("e", "input-tokens", entitlement=EntitlementTemplate("metered", Decimal(1), usage_period="x"))
                )
            },
            "phases[0].rateCards[0].entitlementTemplate.usagePeriod",
        ),
        (
            {"phases": phases(card("e", "sso", entitlement=EntitlementTemplate("unlimited")))},  # type: ignore[arg-type]
            "phases[0].rateCards[0].entitlementTemplate.type",
        ),
        ({"metadata": {"when": NOW}}, "metadata"),
    ],
)
async def test_plan_validation(world: World, changes: dict[str, object], field: str) -> None:
    body: dict[str, object] = {
        "key": "pro",
        "name": "Pro",
        "currency": "USD",
        "billing_cadence": "P1M",
        "phases": STARTER,
    } | changes
    await expect(ValidationError, field, world.catalog.plans.create_plan(**body))  # type: ignore[arg-type]
    assert await world.catalog.plans.plans() == []


async def test_metered_entitlement_needs_a_sum_or_count_meter(world: World) -> None:
    await world.catalog.features.create_feature(key="visits", meter_slug="visitors")
    cards = phases(card("v", "visits", entitlement=EntitlementTemplate("metered", limit=Decimal(10))))
    error = await expect(
        ValidationError,
        "phases[0].rateCards[0].entitlementTemplate",
        world.catalog.plans.create_plan(key="p", name="P", currency="USD", billing_cadence="P1M", phases=cards),
    )
    assert "UNIQUE_COUNT" in error.message


async def test_publish_rechecks_features(world: World) -> None:
    plan = await world.catalog.plans.create_plan(
        key="pro", name="Pro", currency="USD", billing_cadence="P1M", phases=phases(card("sso", "sso"))
    )
    await world.catalog.features.archive_feature("sso")  # no published plan uses it yet
    await expect(ValidationError, "phases[0].rateCards[0].featureKey", world.catalog.plans.publish_plan(plan.id))
    assert (await world.catalog.plans.plan(plan.id)).status == "draft"


async def test_unknown_plans(world: World) -> None:
    await expect(NotFoundError, "plan", world.catalog.plans.plan("ghost"))
    await expect(NotFoundError, "plan", world.catalog.plans.publish_plan("ghost"))
    await published(world)
    await expect(NotFoundError, "plan", world.catalog.plans.plan("starter", 7))


# -- customers --------------------------------------------------------------------------------------


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


# -- subscriptions ----------------------------------------------------------------------------------


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


# -- entitlements -----------------------------------------------------------------------------------


def tokens(n: int, subject: str, at: datetime, count: int, kind: str = "output") -> Event:
    data = {"tokens": count, "type": kind, "model": "gpt-4o", "provider": "openai", "status_code": 200}
    return Event(id=f"t{n}", source="test", type="llm.tokens", subject=subject, time=at, data=data)


def entitled(hard: bool, period: str | None = None) -> tuple[Phase, ...]:
    return phases(
        card(
            "output-tokens",
            "output-tokens",
            usage=usage("0.00001"),
            entitlement=EntitlementTemplate("metered", limit=Decimal(1000), hard=hard, usage_period=period),
        ),
        card("sso", "sso", entitlement=EntitlementTemplate("boolean")),
        card("input-tokens", "input-tokens", entitlement=EntitlementTemplate("static", config={"models": ["a"]})),
    )


async def metered_world(world: World, *, hard: bool = True, period: str | None = None) -> None:
    await published(world, "metered", entitled(hard, period))
    await world.catalog.customers.create_customer(key="acme", name="Acme", subjects=["acme-corp", "acme-bot"])
    await world.catalog.subscriptions.create_subscription(
        customer="acme",
        plan_key="metered",
        active_from=datetime(2026, 11, 10, tzinfo=UTC),
        billing_anchor=datetime(2026, 11, 1, tzinfo=UTC),
    )
    day = datetime(2026, 11, 1, tzinfo=UTC)
    await world.events.insert_events(
        [
            tokens(1, "acme-corp", day + timedelta(days=8), 700),  # 11-09: before the subscription starts
            tokens(2, "acme-corp", day + timedelta(days=11), 400),  # 11-12
            tokens(3, "acme-bot", day + timedelta(days=19, hours=3), 350),  # 11-20
            tokens(4, "acme-corp", day + timedelta(days=19), 5000, kind="input"),  # another feature
            tokens(5, "globex", day + timedelta(days=14), 999),  # another customer
            tokens(6, "acme-corp", datetime(2026, 10, 31, tzinfo=UTC), 50),  # previous period
            tokens(7, "acme-corp", NOW - timedelta(hours=1), 30),  # 11-23 11:00
        ]
    )
    await world.events.roll_up()


async def test_metered_entitlement_value_hand_computed(world: World) -> None:
    await metered_world(world)
    value = await world.catalog.entitlements.entitlement_value("acme", "output-tokens")
    # 400 + 350 + 30 from 11-10 (start) to now; the 700 of 11-09 predates the subscription
    assert value == EntitlementValue(has_access=True, balance=Decimal(220), usage=Decimal(780), overage=Decimal(0))
    early = await world.catalog.entitlements.entitlement_value(
        "acme", "output-tokens", at=datetime(2026, 11, 15, tzinfo=UTC)
    )
    assert (early.usage, early.balance) == (Decimal(400), Decimal(600))
    await world.events.insert_events([tokens(8, "acme-bot", NOW - timedelta(minutes=30), 250)])
    await world.events.roll_up()
    over = await world.catalog.entitlements.entitlement_value("acme", "output-tokens")
    assert over == EntitlementValue(has_access=False, balance=Decimal(0), usage=Decimal(1030), overage=Decimal(30))
    # next period: usage starts again from 12-01
    december = await world.catalog.entitlements.entitlement_value(
        "acme", "output-tokens", at=datetime(2026, 12, 2, tzinfo=UTC)
    )
    assert (december.usage, december.balance, december.has_access) == (Decimal(0), Decimal(1000), True)


async def test_usage_exactly_at_a_hard_limit_refuses_access(world: World) -> None:
    # docs/billing.md: a hard limit gives access "while usage is below it": none once usage equals the limit
    await metered_world(world)
    await world.events.insert_events([tokens(8, "acme-bot", NOW - timedelta(minutes=30), 219)])
    await world.events.roll_up()
    below = await world.catalog.entitlements.entitlement_value("acme", "output-tokens")
    assert below == EntitlementValue(has_access=True, balance=Decimal(1), usage=Decimal(999), overage=Decimal(0))
    await world.events.insert_events([tokens(9, "acme-bot", NOW - timedelta(minutes=20), 1)])
    await world.events.roll_up()
    at_limit = await world.catalog.entitlements.entitlement_value("acme", "output-tokens")
    # 400 + 350 + 30 + 219 + 1 = 1000 = the limit: no access, nothing left, nothing over
    assert at_limit == EntitlementValue(has_access=False, balance=Decimal(0), usage=Decimal(1000), overage=Decimal(0))


async def test_soft_limit_keeps_access(world: World) -> None:
    await metered_world(world, hard=False)
    await world.events.insert_events([tokens(8, "acme-bot", NOW - timedelta(minutes=30), 250)])
    value = await world.catalog.entitlements.entitlement_value("acme", "output-tokens")
    assert value == EntitlementValue(has_access=True, balance=Decimal(0), usage=Decimal(1030), overage=Decimal(30))


async def test_usage_period_of_the_template(world: World) -> None:
    await metered_world(world, period="P1D")
    value = await world.catalog.entitlements.entitlement_value("acme", "output-tokens")
    assert (value.usage, value.balance) == (Decimal(30), Decimal(970))  # 11-23 00:00 to now


async def test_boolean_static_and_missing_entitlements(world: World) -> None:
    await metered_world(world)
    assert await world.catalog.entitlements.entitlement_value("acme", "sso") == EntitlementValue(has_access=True)
    static = await world.catalog.entitlements.entitlement_value("acme", "input-tokens")
    assert static == EntitlementValue(has_access=True, config={"models": ["a"]})
    await world.catalog.features.create_feature(key="extra")
    # an access-only feature (no meter) not in the plan: no access (OpenMeter's answer without an entitlement)
    assert await world.catalog.entitlements.entitlement_value("acme", "extra") == EntitlementValue(has_access=False)
    # usage not in the plan: access without a limit, until some plan sells the feature as a gate (boolean)
    await world.catalog.features.create_feature(key="cost", meter_slug="llm_cost")
    assert await world.catalog.entitlements.entitlement_value("acme", "cost") == EntitlementValue(has_access=True)
    gate = phases(card("cost", "cost", entitlement=EntitlementTemplate("boolean")))
    await published(world, "enterprise", gate)
    assert await world.catalog.entitlements.entitlement_value("acme", "cost") == EntitlementValue(has_access=False)
    before = await world.catalog.entitlements.entitlement_value("acme", "sso", at=datetime(2026, 11, 9, tzinfo=UTC))
    assert before == EntitlementValue(has_access=False)
    await world.catalog.customers.create_customer(key="idle", name="Idle")
    assert await world.catalog.entitlements.entitlement_value("idle", "sso") == EntitlementValue(has_access=False)
    await expect(NotFoundError, "feature", world.catalog.entitlements.entitlement_value("acme", "ghost"))
    await expect(NotFoundError, "customer", world.catalog.entitlements.entitlement_value("ghost", "sso"))


async def test_entitlements_follow_plan_phases(world: World) -> None:
    trial = Phase("trial", "Trial", (card("sso", "sso", entitlement=EntitlementTemplate("boolean")),), "P14D")
    main = Phase("main", "Main", (card("fee", flat=FlatPrice(Decimal(49))),))
    await published(world, "phased", (trial, main))
    await world.catalog.customers.create_customer(key="acme", name="Acme")
    await world.catalog.subscriptions.create_subscription(customer="acme", plan_key="phased")
    inside = await world.catalog.entitlements.entitlement_value("acme", "sso", at=NOW + timedelta(days=13, hours=23))
    after = await world.catalog.entitlements.entitlement_value("acme", "sso", at=NOW + timedelta(days=14))
    assert (inside.has_access, after.has_access) == (True, False)


async def test_customer_resolver_narrows_meter_queries(world: World) -> None:
    await metered_world(world)
    metering = MeteringService(world.events, world.clock, customers=world.catalog.customers)
    rows = await metering.query(
        "llm_tokens",
        MeterQuery(start=datetime(2026, 11, 1, tzinfo=UTC), end=NOW, filter_group_by={"type": ("output",)}),
        customer="acme",
    )
    assert sum(r.value for r in rows) == Decimal(700 + 400 + 350 + 30)


async def test_llm_cost_meter_sums_the_provider_cost_of_gateway_requests(world: World) -> None:
    price = TokenPrice(input=Decimal("0.0000025"), output=Decimal("0.00001"))
    calls = [
        LlmCall(
            "r1",
            "acme-corp",
            NOW - timedelta(hours=2),
            "gpt-4o",
            "gpt-4o",
            "openai",
            "/v1/chat/completions",
            200,
            False,
            TokenUsage(input=1000, output=200),
            price=price,
        ),
        LlmCall(
            "r2",
            "acme-corp",
            NOW - timedelta(hours=1),
            "gpt-4o",
            "gpt-4o",
            "openai",
            "/v1/chat/completions",
            200,
            True,
            TokenUsage(input=400, output=50),
            price=price,
        ),
        LlmCall(
            "r3",
            "acme-corp",
            NOW - timedelta(hours=1),
            "demo",
            "demo",
            "local",
            "/v1/messages",
            200,
            False,
            TokenUsage(input=10, output=10),
        ),  # no price: no cost recorded
    ]
    await world.events.insert_events([e for call in calls for e in llm_call_events(call)])
    await world.events.roll_up()
    feature = await world.catalog.features.create_feature(
        key="provider-cost", meter_slug="llm_cost", filters={"provider": ["openai"]}
    )
    rows = await world.metering.query(
        "llm_cost", MeterQuery(group_by=("model", "provider", "status_code"), filter_group_by=feature.filters)
    )
    # r1: 1000 x 0.0000025 + 200 x 0.00001 = 0.0045; r2: 400 x 0.0000025 + 50 x 0.00001 = 0.0015
    assert [(r.value, r.group_by) for r in rows] == [
        (Decimal("0.006"), {"model": "gpt-4o", "provider": "openai", "status_code": "200"})
    ]
    await expect(
        ValidationError,
        "meterGroupByFilters",
        world.catalog.features.create_feature(key="by-type", meter_slug="llm_cost", filters={"type": ["input"]}),
    )


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
                tokens(1, "acme-corp", NOW - timedelta(hours=3), 120),
                tokens(2, "acme-bot", NOW - timedelta(hours=2), 80),
                tokens(3, "globex", NOW - timedelta(hours=2), 999),
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


async def test_kept_catalog_reads_follow_writes_made_through_another_service(world: World) -> None:
    """A second service on the same stores stands for another worker process: it keeps the customer's
    catalog rows between values, and still sees the first one's writes on its very next read."""
    await metered_world(world)
    other = build_catalog(world.store, world.metering, world.clock)
    assert (await other.entitlements.entitlement_value("acme", "output-tokens")).usage == Decimal(780)
    acme = await world.catalog.customers.customer("acme")
    # acme-bot's 350 no longer counts
    await world.catalog.customers.update_customer(replace(acme, subjects=("acme-corp",)))
    assert (await other.entitlements.entitlement_value("acme", "output-tokens")).usage == Decimal(430)
    [subscription] = await world.catalog.subscriptions.subscriptions(customer="acme")
    await world.catalog.subscriptions.cancel_subscription(subscription.id)
    assert await other.entitlements.entitlement_value("acme", "output-tokens") == EntitlementValue(has_access=False)
    await world.catalog.customers.delete_customer("acme")
    with pytest.raises(NotFoundError):
        await other.entitlements.entitlement_value("acme", "output-tokens")

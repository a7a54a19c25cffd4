"""One contract suite for the catalog store: memory fake, SQLite and PostgreSQL keep the same rules.

Round trips with literal values, uniqueness enforced by the store (also under a race), soft deletes
releasing subjects, and multi-row writes that apply whole or not at all.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tests.support.databases import BACKENDS, database_url, migrated_engine
from tollway.adapters.memory.catalog import MemoryCatalogStore
from tollway.adapters.sql.catalog import SqlCatalogStore
from tollway.billing.customers import Address, Customer
from tollway.billing.entitlements import EntitlementTemplate
from tollway.billing.features import Feature
from tollway.billing.plans import Phase, Plan, RateCard
from tollway.billing.ports import CatalogStore
from tollway.billing.pricing.model import (
    DynamicPrice,
    FlatPrice,
    PackagePrice,
    Tier,
    TieredPrice,
    UnitPrice,
    UsageTerms,
)
from tollway.billing.subscriptions import Subscription
from tollway.clock import FrozenClock
from tollway.errors import ConflictError, NotFoundError

NOW = datetime(2026, 11, 23, 12, 0, 0, 123456, tzinfo=UTC)
SUBJECTS = "usageAttribution.subjectKeys"


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[CatalogStore]:
    if request.param == "memory":
        yield MemoryCatalogStore(FrozenClock(NOW))
        return
    url = database_url(request, tmp_path, "catalog.db")
    engine = await migrated_engine(url)
    sql = SqlCatalogStore(engine, FrozenClock(NOW))
    yield sql
    await sql.close()
    await asyncio.to_thread(engine.dispose)


def feature(id: str, key: str, **changes: object) -> Feature:
    base = Feature(
        id=id,
        key=key,
        name=key.title(),
        meter_slug="llm_tokens",
        filters={"type": ("output",), "model": ("gpt-4o", "gpt-4o-mini")},
        metadata={"team": "ai", "weights": [1, 2.5]},
        created_at=NOW,
        updated_at=NOW,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


PRO_PHASES = (
    Phase(
        key="trial",
        name="Trial",
        duration="P14D",
        rate_cards=(RateCard(key="sso", name="SSO", feature_key="sso", entitlement=EntitlementTemplate("boolean")),),
    ),
    Phase(
        key="main",
        name="Main",
        rate_cards=(
            RateCard(
                key="platform-fee",
                name="Platform fee",
                flat=FlatPrice(Decimal("49.00"), "in_advance"),
                billing_cadence="P1M",
                metadata={"sku": "PF-1"},
            ),
            RateCard(
                key="output-tokens",
                name="Output tokens",
                feature_key="output-tokens",
                usage=UsageTerms(
                    price=TieredPrice(
                        "graduated",
                        (
                            Tier(up_to=Decimal("1000000"), unit_price=Decimal("0.00001"), flat_price=Decimal("0")),
                            Tier(up_to=None, unit_price=Decimal("0.000008")),
                        ),
                    ),
                    free_quantity=Decimal("100000"),
                    discount_percentage=Decimal("10"),
                    minimum_amount=Decimal("10"),
                    maximum_amount=Decimal("1E+3"),
                ),
                billing_cadence="P1M",
                entitlement=EntitlementTemplate("metered", limit=Decimal("5000000"), hard=True, usage_period="P1D"),
                description="per token",
            ),
            RateCard(
                key="input-tokens",
                name="Input tokens",
                feature_key="input-tokens",
                usage=UsageTerms(price=PackagePrice(Decimal("1"), Decimal("100000"))),
                billing_cadence="P1M",
                entitlement=EntitlementTemplate("static", config={"models": ["a", "b"], "max": 3}),
            ),
            RateCard(
                key="cost",
                name="Provider cost",
                feature_key="provider-cost",
                usage=UsageTerms(price=DynamicPrice(Decimal("1.3"))),
            ),
            RateCard(
                key="calls",
                name="Calls",
                feature_key="calls",
                usage=UsageTerms(price=UnitPrice(Decimal("0.000003"))),
            ),
        ),
    ),
)


def plan(id: str, key: str = "pro", version: int = 1, status: str = "draft", **changes: object) -> Plan:
    base = Plan(
        id=id,
        key=key,
        version=version,
        name="Pro",
        currency="USD",
        billing_cadence="P1M",
        phases=PRO_PHASES,
        status=status,  # type: ignore[arg-type]
        description="For teams",
        metadata={"public": True},
        managed_by="config",
        created_at=NOW,
        updated_at=NOW,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def customer(id: str, key: str, subjects: tuple[str, ...] = (), **changes: object) -> Customer:
    base = Customer(
        id=id,
        key=key,
        name=key.title(),
        subjects=subjects,
        email=f"billing@{key}.example",
        currency="USD",
        billing_address=Address(country="DE", postal_code="10115", city="Berlin", line1="Street 1"),
        description="a customer",
        stripe_customer_id="cus_123",
        metadata={"segment": "smb"},
        created_at=NOW,
        updated_at=NOW,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def subscription(id: str, customer_id: str, plan_id: str, **changes: object) -> Subscription:
    base = Subscription(
        id=id,
        customer_id=customer_id,
        plan_id=plan_id,
        plan_key="pro",
        plan_version=1,
        currency="USD",
        billing_cadence="P1M",
        billing_anchor=datetime(2026, 11, 1, tzinfo=UTC),
        active_from=NOW,
        name="Pro",
        metadata={"po": "4711"},
        created_at=NOW,
        updated_at=NOW,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


# -- features ---------------------------------------------------------------------------------------


async def test_feature_round_trip_and_archive(store: CatalogStore) -> None:
    out = feature("F1", "output-tokens")
    bare = feature("F2", "sso", meter_slug=None, filters={}, metadata={}, managed_by="config")
    await store.insert_feature(out)
    await store.insert_feature(bare)
    assert await store.get_feature("F1") == out
    assert await store.get_feature("output-tokens") == out
    assert await store.get_feature("sso") == bare
    assert await store.get_feature("nope") is None
    assert [f.key for f in await store.list_features()] == ["output-tokens", "sso"]
    archived = replace(out, archived_at=NOW + timedelta(days=1), updated_at=NOW + timedelta(days=1))
    await store.update_feature(archived)
    assert await store.get_feature("output-tokens") is None
    assert await store.get_feature("F1") == archived
    assert [f.id for f in await store.list_features()] == ["F2"]
    assert [f.id for f in await store.list_features(include_archived=True)] == ["F1", "F2"]
    with pytest.raises(NotFoundError):
        await store.update_feature(feature("F9", "ghost"))


async def test_feature_key_unique_among_unarchived(store: CatalogStore) -> None:
    await store.insert_feature(feature("F1", "sso"))
    with pytest.raises(ConflictError) as caught:
        await store.insert_feature(feature("F2", "sso"))
    assert caught.value.field == "key"
    with pytest.raises(ConflictError) as caught:
        await store.insert_feature(feature("F1", "other"))
    assert caught.value.field == "id"
    await store.update_feature(feature("F1", "sso", archived_at=NOW))
    await store.insert_feature(feature("F2", "sso"))
    with pytest.raises(ConflictError) as caught:
        await store.update_feature(feature("F1", "sso"))  # un-archiving would make two live 'sso'
    assert caught.value.field == "key"
    assert (await store.get_feature("sso")) == feature("F2", "sso")


# -- plans ------------------------------------------------------------------------------------------


async def test_plan_round_trip_keeps_every_term_exact(store: CatalogStore) -> None:
    stored = plan("P1")
    await store.insert_plan(stored)
    loaded = await store.get_plan("P1")
    assert loaded == stored
    assert loaded is not None
    card = loaded.phases[1].rate_cards[1]
    assert card.usage is not None
    assert str(card.usage.maximum_amount) == "1E+3"
    assert isinstance(card.usage.price, TieredPrice)
    assert str(card.usage.price.tiers[0].unit_price) == "0.00001"
    assert loaded.phases[0].duration == "P14D"
    assert await store.get_plan("P9") is None


async def test_plan_versions_unique_and_one_draft_one_published(store: CatalogStore) -> None:
    await store.insert_plan(plan("P1", version=1, status="published", published_at=NOW))
    await store.insert_plan(plan("P2", version=2))
    for duplicate in (
        plan("P3", version=2, status="archived"),
        plan("P3", version=3),
        plan("P3", version=3, status="published"),
    ):
        with pytest.raises(ConflictError) as caught:
            await store.insert_plan(duplicate)
        assert caught.value.field == "key"
    await store.insert_plan(plan("Q1", key="starter"))  # another key is independent
    assert [(p.key, p.version) for p in await store.list_plans()] == [("pro", 1), ("pro", 2), ("starter", 1)]
    assert [p.id for p in await store.list_plans(key="pro")] == ["P1", "P2"]


async def test_update_plans_is_one_transaction(store: CatalogStore) -> None:
    v1 = plan("P1", version=1, status="published", published_at=NOW)
    v2 = plan("P2", version=2)
    await store.insert_plan(v1)
    await store.insert_plan(v2)
    later = NOW + timedelta(hours=1)
    # publishing v2 without archiving v1 breaks "one published version": nothing changes
    with pytest.raises(ConflictError):
        await store.update_plans([replace(v2, status="published", published_at=later)])
    with pytest.raises(NotFoundError):
        await store.update_plans([replace(v1, status="archived", archived_at=later), plan("P9", version=9)])
    assert [p.status for p in await store.list_plans(key="pro")] == ["published", "draft"]
    archived = replace(v1, status="archived", archived_at=later, updated_at=later)
    published = replace(v2, status="published", published_at=later, updated_at=later)
    await store.update_plans([archived, published])
    assert await store.list_plans(key="pro") == [archived, published]
    assert await store.delete_plan("P9") is False
    await store.insert_plan(plan("P3", version=3))
    assert await store.delete_plan("P3") is True
    assert await store.get_plan("P3") is None


# -- customers --------------------------------------------------------------------------------------


async def test_customer_round_trip(store: CatalogStore) -> None:
    acme = customer("C1", "acme", ("acme-corp", "acme-bot"))
    bare = Customer(id="C2", key="bare", name="Bare", created_at=NOW, updated_at=NOW)
    await store.insert_customer(acme)
    await store.insert_customer(bare)
    assert await store.get_customer("C1") == acme
    assert await store.get_customer("acme") == acme
    assert await store.get_customer("bare") == bare
    assert await store.customer_of_subject("acme-bot") == acme
    assert await store.customer_of_subject("nobody") is None
    assert [c.key for c in await store.list_customers()] == ["acme", "bare"]
    moved = replace(acme, subjects=("acme-bot", "acme-new"), name="Acme Inc")
    await store.update_customer(moved)
    assert await store.get_customer("C1") == moved
    assert await store.customer_of_subject("acme-corp") is None
    assert await store.customer_of_subject("acme-new") == moved
    with pytest.raises(NotFoundError):
        await store.update_customer(customer("C9", "ghost"))


async def test_customer_key_and_subjects_unique(store: CatalogStore) -> None:
    await store.insert_customer(customer("C1", "acme", ("acme-corp",)))
    with pytest.raises(ConflictError) as caught:
        await store.insert_customer(customer("C2", "acme"))
    assert caught.value.field == "key"
    with pytest.raises(ConflictError) as caught:
        await store.insert_customer(customer("C2", "globex", ("globex", "acme-corp")))
    assert (caught.value.field, caught.value.message) == (
        SUBJECTS,
        "subject 'acme-corp' already belongs to customer 'acme'",
    )
    await store.insert_customer(customer("C2", "globex", ("globex",)))
    with pytest.raises(ConflictError) as caught:
        await store.update_customer(customer("C2", "globex", ("globex", "acme-corp")))
    assert caught.value.field == SUBJECTS
    assert (await store.get_customer("C2")) == customer("C2", "globex", ("globex",))  # unchanged
    assert await store.customer_of_subject("globex") == customer("C2", "globex", ("globex",))


async def test_concurrent_claims_of_one_subject_exactly_one_wins(store: CatalogStore) -> None:
    results = await asyncio.gather(
        store.insert_customer(customer("C1", "acme", ("shared", "acme"))),
        store.insert_customer(customer("C2", "globex", ("globex", "shared"))),
        return_exceptions=True,
    )
    failures = [r for r in results if isinstance(r, BaseException)]
    assert len(failures) == 1
    assert isinstance(failures[0], ConflictError)
    assert failures[0].field == SUBJECTS
    winner = await store.customer_of_subject("shared")
    assert winner is not None
    assert [c.id for c in await store.list_customers()] == [winner.id]
    loser_subject = "globex" if winner.id == "C1" else "acme"
    assert await store.customer_of_subject(loser_subject) is None


async def test_concurrent_creates_of_one_key_exactly_one_wins(store: CatalogStore) -> None:
    results = await asyncio.gather(
        *(store.insert_customer(customer(f"C{n}", "acme", (f"s{n}",))) for n in range(4)),
        return_exceptions=True,
    )
    assert sum(isinstance(r, ConflictError) and r.field == "key" for r in results) == 3
    assert len(await store.list_customers()) == 1


async def test_soft_delete_releases_key_and_subjects(store: CatalogStore) -> None:
    acme = customer("C1", "acme", ("acme-corp",))
    await store.insert_customer(acme)
    deleted = replace(acme, deleted_at=NOW + timedelta(days=1))
    await store.update_customer(deleted)
    assert await store.get_customer("acme") is None
    assert await store.get_customer("C1") == deleted
    assert await store.customer_of_subject("acme-corp") is None
    assert await store.list_customers() == []
    assert await store.list_customers(include_deleted=True) == [deleted]
    again = customer("C2", "acme", ("acme-corp",))
    await store.insert_customer(again)
    assert await store.get_customer("acme") == again
    assert await store.customer_of_subject("acme-corp") == again


# -- subscriptions ----------------------------------------------------------------------------------


async def _owners(store: CatalogStore) -> None:
    await store.insert_customer(customer("C1", "acme"))
    await store.insert_customer(customer("C2", "globex"))
    await store.insert_plan(plan("P1", status="published", published_at=NOW))
    await store.insert_plan(plan("P2", key="max", status="published", published_at=NOW))


async def test_subscription_round_trip(store: CatalogStore) -> None:
    await _owners(store)
    first = subscription("S1", "C1", "P1")
    ended = subscription(
        "S2",
        "C2",
        "P1",
        active_from=NOW - timedelta(days=30),
        active_to=NOW,
        canceled_at=NOW - timedelta(days=1),
        description="old",
    )
    await store.insert_subscription(first)
    await store.insert_subscription(ended)
    assert await store.get_subscription("S1") == first
    assert await store.get_subscription("S2") == ended
    assert await store.get_subscription("S9") is None
    assert [s.id for s in await store.list_subscriptions()] == ["S2", "S1"]  # by start
    assert await store.list_subscriptions(customer_id="C1") == [first]
    with pytest.raises(ConflictError):
        await store.insert_subscription(first)


async def test_update_subscriptions_is_atomic(store: CatalogStore) -> None:
    await _owners(store)
    current = subscription("S1", "C1", "P1")
    await store.insert_subscription(current)
    change_at = NOW + timedelta(days=3)
    following = subscription(
        "S2", "C1", "P2", plan_key="max", active_from=change_at, billing_anchor=change_at, name="Max"
    )
    ended = replace(current, active_to=change_at, replaced_by="S2")
    with pytest.raises(NotFoundError):
        await store.update_subscriptions([ended, subscription("S9", "C1", "P1")], [following])
    with pytest.raises(ConflictError):
        await store.update_subscriptions([ended], [following, replace(following, id="S1")])
    assert await store.list_subscriptions() == [current]
    await store.update_subscriptions([ended], [following])
    assert await store.list_subscriptions(customer_id="C1") == [ended, following]


async def test_subscription_writes_journal_their_changes_in_the_same_transaction(store: CatalogStore) -> None:
    await _owners(store)

    async def pending() -> list[tuple[str, str, str | None]]:
        return [(c.kind, c.subscription_id, c.related_id) for c in await store.pending_subscription_changes()]

    current = subscription("S1", "C1", "P1")
    await store.insert_subscription(current)
    assert await pending() == [("created", "S1", None)]
    change_at = NOW + timedelta(days=3)
    following = subscription("S2", "C1", "P2", plan_key="max", active_from=change_at, billing_anchor=change_at)
    ended = replace(current, active_to=change_at, replaced_by="S2")
    with pytest.raises(ConflictError):  # refused whole: no journal entry either
        await store.update_subscriptions([ended], [following, replace(following, id="S1")])
    await store.update_subscriptions([ended], [following])  # a plan change: S1 changed, S2 not "created"
    assert await pending() == [("created", "S1", None), ("changed", "S1", "S2")]
    first = await store.pending_subscription_changes(limit=1)
    assert [c.kind for c in first] == ["created"]
    assert first[0].at == NOW
    version = await store.version()
    await store.complete_subscription_changes([first[0].id], at=NOW)
    await store.complete_subscription_changes([first[0].id], at=NOW)  # again: nothing
    assert await store.version() == version  # completing is not a catalog change
    assert await pending() == [("changed", "S1", "S2")]
    canceled = replace(following, canceled_at=NOW, active_to=change_at + timedelta(days=30))
    await store.update_subscriptions([canceled])
    await store.update_subscriptions([replace(canceled, name="Max (renamed)")])  # no change to report
    assert await pending() == [("changed", "S1", "S2"), ("canceled", "S2", None)]
    await store.complete_subscription_changes([c.id for c in await store.pending_subscription_changes()], at=NOW)
    assert await pending() == []


async def test_overlapping_subscriptions_are_refused_even_in_a_race(store: CatalogStore) -> None:
    await _owners(store)
    results = await asyncio.gather(
        *(
            store.insert_subscription(subscription(f"S{n}", "C1", "P1", active_from=NOW + timedelta(days=n)))
            for n in range(8)
        ),
        return_exceptions=True,
    )
    assert sum(isinstance(r, ConflictError) and r.field == "customer" for r in results) == 7
    assert len(await store.list_subscriptions(customer_id="C1")) == 1
    # back to back is fine, and so is a zero-length one (canceled before it began)
    await store.insert_subscription(subscription("T1", "C2", "P1", active_to=NOW + timedelta(days=1)))
    await store.insert_subscription(subscription("T2", "C2", "P1", active_from=NOW + timedelta(days=1)))
    await store.insert_subscription(subscription("T3", "C2", "P2", active_to=NOW))
    with pytest.raises(ConflictError) as caught:
        await store.update_subscriptions([subscription("T1", "C2", "P1", active_to=NOW + timedelta(days=2))])
    assert caught.value.field == "customer"
    assert [s.id for s in await store.list_subscriptions(customer_id="C2")] == ["T1", "T3", "T2"]


# -- the version every cache of catalog reads checks --------------------------------------------------


async def test_version_moves_with_every_write_and_only_with_writes(store: CatalogStore) -> None:
    seen = [await store.version()]

    async def moved() -> bool:
        now = await store.version()
        changed = now != seen[-1]
        seen.append(now)
        return changed

    await store.insert_feature(feature("F1", "output-tokens"))
    assert await moved()
    await store.update_feature(replace(feature("F1", "output-tokens"), name="Output"))
    assert await moved()
    await store.insert_plan(plan("P1"))
    assert await moved()
    await store.update_plans([replace(plan("P1"), name="Pro v1")])
    assert await moved()
    await store.insert_customer(customer("C1", "acme", ("acme-corp",)))
    assert await moved()
    await store.update_customer(customer("C1", "acme", ("acme-corp", "acme-bot")))
    assert await moved()
    await store.insert_subscription(subscription("S1", "C1", "P1"))
    assert await moved()
    # reads, and writes refused before they change anything, leave it alone
    await store.get_customer("acme")
    await store.list_subscriptions(customer_id="C1")
    with pytest.raises(ConflictError):
        await store.insert_customer(customer("C2", "acme"))
    with pytest.raises(NotFoundError):
        await store.update_feature(feature("F9", "ghost"))
    assert not await moved()
    assert len(set(seen)) == 8

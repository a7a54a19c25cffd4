"""`tollway apply`'s diff (desired catalog vs stored catalog -> changes, pure) and its executor on the memory stores."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tests.support.apply_files import STARTER, desired
from tollway.adapters.memory.catalog import MemoryCatalogStore
from tollway.adapters.memory.store import MemoryEventStore
from tollway.billing.apply import (
    ApplyFailed,
    ApplyPlan,
    StoredCatalog,
    apply_catalog,
    execute,
    load_stored,
    plan_apply,
)
from tollway.billing.customers import Customer
from tollway.billing.features import Feature
from tollway.billing.plans import Plan
from tollway.billing.pricing.model import FlatPrice, Tier, TieredPrice, UnitPrice, UsageTerms
from tollway.billing.subscriptions import Subscription
from tollway.clock import FrozenClock
from tollway.config.loader import parse_config
from tollway.errors import ConfigError
from tollway.metering.meters import BUILT_IN_METERS, Aggregation, Meter
from tollway.metering.service import MeteringService
from tollway.wiring.catalog import build_catalog

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


PRO = """\
  - key: pro
    name: Pro
    currency: USD
    billing_cadence: P1M
    rate_cards:
      - {key: platform-fee, price: {type: flat, amount: "49", payment_term: in_advance}}
      - feature: output-tokens
        price:
          type: tiered
          mode: graduated
          tiers:
            - {up_to: "1000000", unit_price: "0.00001", flat_price: "0"}
            - {unit_price: "0.000008"}
        minimum_amount: "10"
        discounts: {percentage: "10", usage: "100000"}
        entitlement: {type: metered, limit: "5000000", hard: true}
"""


def feature(key: str, kind: str, *, managed_by: str = "config", fid: str = "") -> Feature:
    return Feature(
        id=fid or f"f-{key}",
        key=key,
        name=key,
        meter_slug="llm_tokens",
        filters={"type": (kind,)},
        managed_by=managed_by,
    )


def starter_plan(version: int = 1, status: str = "published", input_price: str = "0.000003") -> Plan:
    wanted = desired(STARTER).plans[0]
    cards = wanted.phases[0].rate_cards
    cards = (replace(cards[0], usage=UsageTerms(price=UnitPrice(Decimal(input_price)))), cards[1])
    return Plan(
        id=f"p-starter-{version}",
        key="starter",
        version=version,
        name="Starter",
        currency="USD",
        billing_cadence="P1M",
        phases=(replace(wanted.phases[0], rate_cards=cards),),
        status=status,  # type: ignore[arg-type]
        managed_by="config",
    )


def acme(**changes: Any) -> Customer:
    return replace(
        Customer(id="c-acme", key="acme", name="Acme Corp", subjects=("acme-corp",), managed_by="config"), **changes
    )


def subscription(plan: Plan, *, active_from: datetime = NOW - timedelta(days=3)) -> Subscription:
    return Subscription(
        id="s-1",
        customer_id="c-acme",
        plan_id=plan.id,
        plan_key=plan.key,
        plan_version=plan.version,
        currency="USD",
        billing_cadence="P1M",
        billing_anchor=active_from,
        active_from=active_from,
    )


def converged(**changes: object) -> StoredCatalog:
    """What the store holds once STARTER was applied."""
    plan = starter_plan()
    base = StoredCatalog(
        features=(feature("input-tokens", "input"), feature("output-tokens", "output")),
        plans=(plan,),
        customers=(acme(),),
        subscriptions=(subscription(plan),),
        meters=BUILT_IN_METERS,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


# -- the diff ---------------------------------------------------------------------------------------


def test_empty_store_creates_everything() -> None:
    plan = plan_apply(desired(STARTER), StoredCatalog(meters=BUILT_IN_METERS), NOW)
    assert plan.problems == ()
    assert plan.lines == [
        "+ feature input-tokens",
        "+ feature output-tokens",
        "+ plan starter v1 (published)",
        "+ customer acme",
        "+ subscription acme -> starter v1 from 2026-11-23T12:00:00Z",
    ]
    assert plan.summary == "Apply: 5 to create, 0 to update, 0 to archive."


def test_meters_of_the_file_are_synced_and_shown() -> None:
    visitors = Meter(
        "visitors", "page.view", Aggregation.UNIQUE_COUNT, "$.visitor", {"page": "$.page"}, managed_by="config"
    )
    old = replace(visitors, slug="old-meter")
    wanted = replace(desired(STARTER), meters=(*BUILT_IN_METERS, visitors))
    plan = plan_apply(wanted, converged(meters=(*BUILT_IN_METERS, old)), NOW)
    assert plan.lines == ["+ meter visitors", "- meter old-meter (deleted with its rollups)"]
    assert plan.summary == "Apply: 1 to create, 0 to update, 1 to archive."
    changed = plan_apply(wanted, converged(meters=(*BUILT_IN_METERS, replace(visitors, value_property="$.who"))), NOW)
    assert changed.lines == ["~ meter visitors"]
    with_api = plan_apply(desired(STARTER), converged(meters=(*BUILT_IN_METERS, replace(old, managed_by="api"))), NOW)
    assert with_api.lines == []


def test_a_converged_store_has_no_changes() -> None:
    plan = plan_apply(desired(STARTER), converged(), NOW)
    assert (plan.lines, plan.notes, plan.problems, plan.summary) == ([], (), (), "No changes.")


def test_a_changed_price_is_a_new_published_version() -> None:
    plan = plan_apply(desired(STARTER), converged(plans=(starter_plan(input_price="0.000002"),)), NOW)
    assert plan.lines == ["+ plan starter v2 (published; v1 archived)"]
    assert plan.notes == (
        "note: subscription acme stays on starter v1 (v2 is published; migrating a subscription is explicit)",
    )
    assert plan.summary == "Apply: 1 to create, 0 to update, 0 to archive."


def test_a_stale_draft_left_by_a_failed_apply_is_replaced() -> None:
    draft = replace(starter_plan(version=2, status="draft", input_price="1"), id="p-draft")
    plan = plan_apply(desired(STARTER), converged(plans=(starter_plan(input_price="0.5"), draft)), NOW)
    assert plan.lines == ["+ plan starter v2 (published; v1 archived)"]
    publish = plan.changes[0]
    assert getattr(publish, "stale_draft", None) == draft


def test_a_draft_made_through_the_api_blocks_a_new_version() -> None:
    draft = replace(starter_plan(version=2, status="draft"), managed_by="api")
    plan = plan_apply(desired(STARTER), converged(plans=(starter_plan(input_price="0.5"), draft)), NOW)
    assert plan.problems == (
        "plans[0]: plan 'starter' has a draft v2 made through the API; publish or delete it first",
    )
    assert plan.changes == ()


def test_an_api_managed_plan_is_never_changed() -> None:
    api_plan = replace(starter_plan(input_price="0.5"), managed_by="api")
    plan = plan_apply(desired(STARTER), converged(plans=(api_plan,)), NOW)
    assert plan.problems == (
        "plans[0]: plan 'starter' is managed through the API (v1); tollway apply changes only the plans it created "
        "(use another key)",
    )


def test_a_changed_feature_is_replaced_only_while_no_published_plan_uses_it() -> None:
    text = STARTER.replace("filters: {type: output}", "filters: {type: [output, cache_write]}")
    blocked = plan_apply(desired(text), converged(), NOW)
    assert blocked.problems == (
        "features[1]: feature 'output-tokens' changed (filters) but published plan 'starter' v1 uses it; a feature "
        "cannot change in place: give the new definition another key, or archive the plan first",
    )
    free = plan_apply(desired(text), converged(plans=(), subscriptions=()), NOW)
    assert free.lines[:2] == [
        "-/+ feature output-tokens (filters: archived and created again)",
        "+ plan starter v1 (published)",
    ]
    assert free.summary == "Apply: 3 to create, 0 to update, 1 to archive."


def test_filter_order_and_a_renamed_feature() -> None:
    stored = converged(
        features=(replace(feature("input-tokens", "input"), name="Input"), feature("output-tokens", "output"))
    )
    plan = plan_apply(desired(STARTER), stored, NOW)
    assert plan.lines == ["~ feature input-tokens (name)"]
    assert plan.summary == "Apply: 0 to create, 1 to update, 0 to archive."


def test_api_managed_features_are_never_touched() -> None:
    api = replace(feature("output-tokens", "input"), managed_by="api")
    plan = plan_apply(desired(STARTER), converged(features=(feature("input-tokens", "input"), api)), NOW)
    assert plan.problems == (
        "features[1]: feature 'output-tokens' was created through the API with another filters; tollway apply never "
        "changes API-managed features (use another key, or archive that feature through the API)",
    )
    extra_api = replace(feature("reasoning", "reasoning"), managed_by="api")
    untouched = plan_apply(desired(STARTER), converged(features=(*converged().features, extra_api)), NOW)
    assert untouched.lines == []


def test_config_features_and_plans_no_longer_in_the_file_are_archived() -> None:
    old_plan = replace(starter_plan(), id="p-old", key="legacy")
    old_feature = feature("cache-tokens", "cache_read")
    stored = converged(plans=(starter_plan(), old_plan), features=(*converged().features, old_feature))
    plan = plan_apply(desired(STARTER), stored, NOW)
    assert plan.lines == [
        "- plan legacy v1 (archived: no longer in the file)",
        "- feature cache-tokens (archived: no longer in the file)",
    ]
    assert plan.summary == "Apply: 0 to create, 0 to update, 2 to archive."
    # a feature a published api plan still uses is kept, with a note
    api_plan = replace(starter_plan(), id="p-api", key="api-plan", managed_by="api")
    api_plan = replace(
        api_plan,
        phases=(
            replace(
                api_plan.phases[0], rate_cards=(replace(api_plan.rate_cards[0], key="c", feature_key="cache-tokens"),)
            ),
        ),
    )
    kept = plan_apply(desired(STARTER), converged(plans=(starter_plan(), api_plan), features=stored.features), NOW)
    assert kept.lines == []
    assert kept.notes == ("note: feature cache-tokens is no longer in the file but 'api-plan' v1 uses it: kept",)


def test_customer_updates_name_the_changed_fields() -> None:
    stored = converged(customers=(acme(name="ACME", email="ap@acme.test"),))
    plan = plan_apply(desired(STARTER.replace("name: Acme Corp,", "name: Acme Corp, email: null,")), stored, NOW)
    assert plan.lines == ["~ customer acme (name, email)"]
    taken_over = plan_apply(desired(STARTER), converged(customers=(acme(managed_by="api"),)), NOW)
    assert taken_over.lines == ["~ customer acme (now managed by config)"]


def test_a_subject_claimed_by_another_customer_is_a_problem() -> None:
    other = Customer(id="c-other", key="other", name="Other", subjects=("acme-corp",))
    plan = plan_apply(desired(STARTER), StoredCatalog(customers=(other,), meters=BUILT_IN_METERS), NOW)
    assert plan.problems == ("customers[0].usage_from: subject 'acme-corp' already belongs to customer 'other'",)
    assert plan.changes == ()
    # released in the same file: the update that releases it comes before the create that takes it
    text = STARTER + "  - {key: other, name: Other, usage_from: [other-app]}\n"
    moved = plan_apply(desired(text), StoredCatalog(customers=(other,), meters=BUILT_IN_METERS), NOW)
    assert moved.problems == ()
    customer_lines = [line for line in moved.lines if "customer" in line]
    assert customer_lines == ["~ customer other (usage_from, now managed by config)", "+ customer acme"]


def test_subscriptions_follow_the_file() -> None:
    text = STARTER.replace("plans:\n", "plans:\n" + PRO).replace("{plan: starter}", "{plan: pro}")
    plan = plan_apply(desired(text), converged(), NOW)
    assert plan.lines == [
        "+ plan pro v1 (published)",
        "~ subscription acme: starter v1 -> pro v1 (plan change, immediate)",
    ]
    assert plan.summary == "Apply: 1 to create, 1 to update, 0 to archive."


def test_a_new_subscription_starts_at_the_files_start_or_after_the_last_one() -> None:
    text = STARTER.replace(
        "subscription: {plan: starter}", 'subscription: {plan: starter, start: "2026-12-01T00:00:00Z"}'
    )
    plan = plan_apply(desired(text), converged(subscriptions=()), NOW)
    assert plan.lines == ["+ subscription acme -> starter v1 from 2026-12-01T00:00:00Z"]
    ended = replace(subscription(starter_plan()), active_to=datetime(2026, 12, 5, tzinfo=UTC))
    after = plan_apply(
        desired(text),
        converged(
            subscriptions=(replace(ended, active_from=NOW - timedelta(days=40), active_to=NOW - timedelta(days=1)),)
        ),
        NOW,
    )
    assert after.lines == ["+ subscription acme -> starter v1 from 2026-12-01T00:00:00Z"]


def test_references_are_checked_against_the_file_and_the_store() -> None:
    text = (
        STARTER.replace("feature: output-tokens, price", "feature: outptu-tokens, price")
        .replace("meter: llm_tokens, filters: {type: input}", "meter: llm_tokens, filters: {kind: input}")
        .replace("subscription: {plan: starter}", "subscription: {plan: startr}")
    )
    text = text.replace("  - {key: output-tokens, meter: llm_tokens", "  - {key: output-tokens, meter: llm_tokenz")
    llm_tokens = tuple(m for m in BUILT_IN_METERS if m.slug == "llm_tokens")
    plan = plan_apply(replace(desired(text), meters=None), StoredCatalog(meters=llm_tokens), NOW)
    assert plan.problems == (
        "features[0].filters.kind: 'kind' is not a group-by dimension of meter 'llm_tokens' "
        "(dimensions: model, provider, status_code, type)",
        "features[1].meter: unknown meter 'llm_tokenz' (defined: llm_tokens)",
        "plans[0].rate_cards[1].feature: unknown feature 'outptu-tokens' "
        "(define it under features: or through the API)",
        "customers[0].subscription.plan: unknown plan 'startr' (not in the file, and no published version is stored)",
    )
    assert plan.changes == ()


def test_a_stored_api_feature_may_be_priced_by_the_file() -> None:
    text = STARTER.replace("  - {key: input-tokens, meter: llm_tokens, filters: {type: input}}\n", "")
    api = replace(feature("input-tokens", "input"), managed_by="api")
    plan = plan_apply(desired(text), StoredCatalog(features=(api,), meters=BUILT_IN_METERS), NOW)
    assert plan.problems == ()
    assert "+ plan starter v1 (published)" in plan.lines


# -- the config file's catalog sections --------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "after", "line"),
    [
        (
            'amount: "0.000003"',
            "amount: 0.000003",
            'plans[0].rate_cards[0].price.amount: write it in quotes, e.g. "0.000003": '
            "YAML reads an unquoted decimal as a float, which loses digits",
        ),
        ('amount: "0.000003"', 'amount: "-1"', "plans[0].rate_cards[0].price.amount: must be at least 0"),
        ("currency: USD", "currency: XYZ", "plans[0].currency: unknown currency 'XYZ' (ISO 4217)"),
        (
            '{type: unit, amount: "0.000003"}',
            "{type: unit}",
            "plans[0].rate_cards[0].price.amount: required for a unit price",
        ),
        (
            '{type: unit, amount: "0.000003"}',
            '{type: unit, amount: "1", mode: volume}',
            "plans[0].rate_cards[0].price.mode: does not apply to a unit price",
        ),
        (
            "usage_from: [acme-corp]",
            "usage_from: [acme-corp], colour: red",
            "customers[0].colour: unknown field 'colour'",
        ),
        (
            "{plan: starter}",
            '{plan: starter, start: "2026-12-01T00:00:00"}',
            'customers[0].subscription.start: give a UTC offset, e.g. "2026-12-01T00:00:00Z"',
        ),
    ],
)
def test_catalog_config_problems(before: str, after: str, line: str) -> None:
    assert before in STARTER
    with pytest.raises(ConfigError) as caught:
        parse_config(STARTER.replace(before, after, 1), {})
    assert caught.value.problems == [f"<config>: {line}"]


def test_tiers_are_checked_with_their_path() -> None:
    text = STARTER.replace(
        "plans:\n",
        "plans:\n"
        + PRO.replace(
            '{unit_price: "0.000008"}', '{up_to: "10", unit_price: "0.000008"}\n            - {unit_price: "0"}'
        ),
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text, {})
    assert caught.value.problems == [
        "<config>: plans[0].rate_cards[1].price.tiers[1].up_to: must be greater than the previous tier's upTo (1000000)"
    ]


@pytest.mark.parametrize(
    ("before", "after", "line"),
    [
        (
            'percentage: "10"',
            'percentage: "100.5"',
            "plans[0].rate_cards[1].discounts.percentage: must be between 0 and 100",
        ),
        ('usage: "100000"', 'usage: "-1"', "plans[0].rate_cards[1].discounts.usage: must be at least 0"),
        (
            'minimum_amount: "10"',
            'minimum_amount: "10"\n        maximum_amount: "9.99"',
            "plans[0].rate_cards[1].minimum_amount: must not exceed maximumAmount (9.99)",
        ),
        ('{up_to: "1000000",', '{up_to: "0",', "plans[0].rate_cards[1].price.tiers[0].up_to: must be > 0"),
        (
            'flat_price: "0"}',
            'flat_price: "-1"}',
            "plans[0].rate_cards[1].price.tiers[0].flat_price: must be at least 0",
        ),
    ],
)
def test_price_rules_name_the_file_path(before: str, after: str, line: str) -> None:
    """The pricing validators name the API's fields; the file's problem lines name the file's keys."""
    text = STARTER.replace("plans:\n", "plans:\n" + PRO.replace(before, after, 1))
    assert text != STARTER.replace("plans:\n", "plans:\n" + PRO)
    with pytest.raises(ConfigError) as caught:
        parse_config(text, {})
    assert caught.value.problems == [f"<config>: {line}"]


def test_file_level_duplicates_and_subjects() -> None:
    text = STARTER + "  - {key: acme, name: Again}\n  - {key: acme-2, name: Two, usage_from: [acme-corp]}\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, {})
    assert caught.value.problems == [
        "<config>: customers[1].key: duplicate 'acme'",
        "<config>: customers[2].usage_from: subject 'acme-corp' is already paid for by customer 'acme'",
    ]


def test_rate_card_defaults() -> None:
    text = STARTER.replace("plans:\n", "plans:\n" + PRO)
    pro = desired(text).plans[0]
    fee, output = pro.phases[0].rate_cards
    assert (fee.key, fee.name, fee.feature_key, fee.flat, fee.billing_cadence) == (
        "platform-fee",
        "platform-fee",
        None,
        FlatPrice(amount=Decimal(49), payment_term="in_advance"),
        "P1M",
    )
    assert output.key == "output-tokens"
    assert output.usage == UsageTerms(
        price=TieredPrice(
            mode="graduated",
            tiers=(Tier(Decimal(1000000), Decimal("0.00001"), Decimal(0)), Tier(None, Decimal("0.000008"), Decimal(0))),
        ),
        free_quantity=Decimal(100000),
        discount_percentage=Decimal(10),
        minimum_amount=Decimal(10),
    )
    assert output.entitlement is not None
    assert (output.entitlement.type, output.entitlement.limit, output.entitlement.hard) == (
        "metered",
        Decimal(5000000),
        True,
    )
    one_time = desired(text.replace("payment_term: in_advance}", "payment_term: in_arrears}, one_time: true")).plans[0]
    fee = one_time.phases[0].rate_cards[0]
    assert (fee.billing_cadence, fee.flat) == (None, FlatPrice(amount=Decimal(49), payment_term="in_arrears"))


# -- the executor on the memory stores ---------------------------------------------------------------


class World:
    def __init__(self) -> None:
        self.clock = FrozenClock(NOW)
        self.metering = MeteringService(MemoryEventStore(self.clock), self.clock)
        self.catalog = build_catalog(MemoryCatalogStore(), self.metering, self.clock)

    async def start(self) -> World:
        await self.metering.sync_meters([])  # the built-in meters, as at start or by the first apply
        return self

    async def apply(self, text: str, *, dry_run: bool = False) -> ApplyPlan:
        return await apply_catalog(desired(text), self.catalog, self.metering, self.clock.now(), dry_run=dry_run)


async def test_apply_twice_then_change_a_price() -> None:
    w = await World().start()
    full = STARTER.replace("plans:\n", "plans:\n" + PRO)
    first = await w.apply(full)
    assert first.summary == "Apply: 6 to create, 0 to update, 0 to archive."
    assert [f.key for f in await w.catalog.features.features()] == ["input-tokens", "output-tokens"]
    assert {(p.key, p.version, p.status, p.managed_by) for p in await w.catalog.plans.plans()} == {
        ("pro", 1, "published", "config"),
        ("starter", 1, "published", "config"),
    }
    sub = await w.catalog.subscriptions.subscription_at("acme", NOW)
    assert sub is not None
    assert (sub.plan_key, sub.plan_version, sub.active_from) == ("starter", 1, NOW)

    second = await w.apply(full)
    assert (second.lines, second.summary) == ([], "No changes.")

    edited = full.replace('amount: "0.000003"', 'amount: "0.000002"')
    dry = await w.apply(edited, dry_run=True)
    assert dry.lines == ["+ plan starter v2 (published; v1 archived)"]
    assert [(p.key, p.version) for p in await w.catalog.plans.plans(key="starter")] == [("starter", 1)]

    real = await w.apply(edited)
    assert real.lines == dry.lines
    starter = await w.catalog.plans.plan("starter")
    assert starter.version == 2
    assert starter.rate_cards[0].usage == UsageTerms(price=UnitPrice(Decimal("0.000002")))
    assert (await w.apply(edited)).notes == (
        "note: subscription acme stays on starter v1 (v2 is published; migrating a subscription is explicit)",
    )


async def test_problems_change_nothing() -> None:
    w = await World().start()
    text = STARTER.replace("feature: output-tokens, price", "feature: nope, price")
    plan = await w.apply(text)
    assert plan.problems == (
        "plans[0].rate_cards[1].feature: unknown feature 'nope' (define it under features: or through the API)",
    )
    assert (
        await w.catalog.features.features(),
        await w.catalog.plans.plans(),
        await w.catalog.customers.customers(),
    ) == ([], [], [])


async def test_a_failed_write_names_the_change_and_a_rerun_completes() -> None:
    w = await World().start()
    await w.metering.sync_meters([])
    await w.catalog.customers.create_customer(key="squatter", name="Squatter")
    stored = await load_stored(w.catalog, w.metering)
    plan = plan_apply(desired(STARTER), stored, NOW)
    # the subject is taken between the plan and the write: the customer create fails half-way
    await w.catalog.customers.update_customer(
        replace(await w.catalog.customers.customer("squatter"), subjects=("acme-corp",))
    )
    with pytest.raises(ApplyFailed) as caught:
        await execute(plan, w.catalog, w.metering, NOW)
    assert str(caught.value).startswith("apply stopped at '+ customer acme': ")
    assert caught.value.done == 3
    await w.catalog.customers.update_customer(replace(await w.catalog.customers.customer("squatter"), subjects=()))
    rerun = await w.apply(STARTER)
    assert rerun.lines == ["+ customer acme", "+ subscription acme -> starter v1 from 2026-11-23T12:00:00Z"]
    assert (await w.apply(STARTER)).summary == "No changes."


async def test_a_feature_that_is_no_longer_used_is_archived() -> None:
    w = await World().start()
    unsubscribed = STARTER.replace(", subscription: {plan: starter}", "")
    await w.apply(unsubscribed)
    smaller = unsubscribed.replace('      - {feature: output-tokens, price: {type: unit, amount: "0.00001"}}\n', "")
    smaller = smaller.replace("  - {key: output-tokens, meter: llm_tokens, filters: {type: output}}\n", "")
    plan = await w.apply(smaller)
    assert plan.lines == [
        "+ plan starter v2 (published; v1 archived)",
        "- feature output-tokens (archived: no longer in the file)",
    ]
    assert [f.key for f in await w.catalog.features.features()] == ["input-tokens"]


async def test_a_feature_of_a_subscribed_version_is_kept() -> None:
    w = await World().start()
    await w.apply(STARTER)
    smaller = STARTER.replace('      - {feature: output-tokens, price: {type: unit, amount: "0.00001"}}\n', "")
    smaller = smaller.replace("  - {key: output-tokens, meter: llm_tokens, filters: {type: output}}\n", "")
    plan = await w.apply(smaller)
    assert plan.lines == ["+ plan starter v2 (published; v1 archived)"]
    assert plan.notes == (
        "note: subscription acme stays on starter v1 (v2 is published; migrating a subscription is explicit)",
        "note: feature output-tokens is no longer in the file but 'starter' v1 (subscribed) uses it: kept",
    )
    assert [f.key for f in await w.catalog.features.features()] == ["input-tokens", "output-tokens"]

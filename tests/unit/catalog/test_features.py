"""FeatureService: round trip, every validation error's field, key uniqueness, archive rules; a feature on the
provider-cost meter."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from tests.unit.catalog.helpers import NOW, World, expect, published
from tollway.errors import ConflictError, ValidationError
from tollway.metering.aggregation import MeterQuery
from tollway.metering.llm import LlmCall, TokenPrice, TokenUsage, llm_call_events


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

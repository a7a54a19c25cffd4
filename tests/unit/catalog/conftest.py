"""`world`: the catalog's services on the memory stores with a custom meter and three features (input-tokens,
output-tokens, sso)."""

from __future__ import annotations

import pytest

from tests.unit.catalog.helpers import World
from tollway.metering.meters import Aggregation, Meter


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

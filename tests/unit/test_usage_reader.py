"""MeteringUsageReader.read_many: features on one additive meter share one meter query and get the same
quantities and slices as their own reads (hand-computed below)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tests.support.meter_events import token_event
from tollway.adapters.memory.store import MemoryEventStore
from tollway.billing.features import Feature
from tollway.billing.invoicing.model import UsageSlice
from tollway.billing.invoicing.usage import MeteringUsageReader, UsageRequest
from tollway.clock import FrozenClock
from tollway.metering.aggregation import MeterQuery, QueryRow
from tollway.metering.service import MeteringService

NOW = datetime(2026, 10, 20, 15, 30, tzinfo=UTC)
OCT = datetime(2026, 10, 1, tzinfo=UTC)
OUTPUT = Feature(id="f1", key="output-tokens", name="output", meter_slug="llm_tokens", filters={"type": ("output",)})
INPUT = Feature(id="f2", key="input-tokens", name="input", meter_slug="llm_tokens", filters={"type": ("input",)})
SMALL = Feature(
    id="f3",
    key="small-output",
    name="small output",
    meter_slug="llm_tokens",
    filters={"type": ("output",), "model": ("gpt-small",)},
)


class CountingMetering(MeteringService):
    queries = 0

    async def query(self, slug: str, query: MeterQuery, customer: str | None = None) -> list[QueryRow]:
        self.queries += 1
        return await super().query(slug, query, customer)


def test_one_read_for_features_on_one_meter() -> None:
    async def run() -> None:
        store = MemoryEventStore(FrozenClock(NOW))
        metering = CountingMetering(store, FrozenClock(NOW))
        await metering.sync_meters([])
        await store.insert_events(
            [
                token_event("t1", "a", OCT + timedelta(hours=1), 10, model="gpt-small"),
                token_event("t2", "a", OCT + timedelta(hours=2), 100, model="gpt-big"),
                token_event("t3", "b", OCT + timedelta(hours=3), 1000, model="gpt-small"),
                token_event("t4", "a", OCT + timedelta(hours=4), 7, kind="input", model="gpt-small"),
                token_event("t5", "b", OCT + timedelta(hours=5), 70, kind="input", model="gpt-big"),
                # another customer's subject
                token_event("t6", "zzz", OCT + timedelta(hours=6), 5000, model="gpt-small"),
            ]
        )
        await store.roll_up(limit=3)  # half in rollups, half read raw
        reader = MeteringUsageReader(metering)
        requests = [UsageRequest(f, ("a", "b"), OCT, NOW) for f in (OUTPUT, INPUT, SMALL)]
        got = await reader.read_many(requests)
        assert metering.queries == 1
        assert [u.quantity for u in got] == [Decimal(1110), Decimal(77), Decimal(1010)]
        assert got[0].slices == (
            UsageSlice({"model": "gpt-big"}, Decimal(100)),
            UsageSlice({"model": "gpt-small"}, Decimal(1010)),
        )
        assert got[1].slices == (
            UsageSlice({"model": "gpt-big"}, Decimal(70)),
            UsageSlice({"model": "gpt-small"}, Decimal(7)),
        )
        alone = [await reader.read(r.feature, r.subjects, r.start, r.end) for r in requests]
        assert alone == got

    asyncio.run(run())

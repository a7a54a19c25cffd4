"""MeteringUsageReader.read_many: features on one additive meter share one meter query and get the same
quantities and slices as their own reads (hand-computed below)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tollway.adapters.memory.store import MemoryEventStore
from tollway.billing.features import Feature
from tollway.billing.invoicing.model import UsageSlice
from tollway.billing.invoicing.usage import MeteringUsageReader, UsageRequest
from tollway.clock import FrozenClock
from tollway.metering.aggregation import MeterQuery, QueryRow
from tollway.metering.events import Event
from tollway.metering.llm import TOKENS_EVENT
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


def tokens(n: int, subject: str, model: str, kind: str, count: int, hours: int) -> Event:
    data = {"tokens": count, "model": model, "provider": "openai", "type": kind, "status": "200"}
    return Event(f"t{n}", "test", TOKENS_EVENT, subject, OCT + timedelta(hours=hours), data)


def test_one_read_for_features_on_one_meter() -> None:
    async def run() -> None:
        store = MemoryEventStore(FrozenClock(NOW))
        metering = CountingMetering(store, FrozenClock(NOW))
        await metering.sync_meters([])
        await store.insert_events(
            [
                tokens(1, "a", "gpt-small", "output", 10, 1),
                tokens(2, "a", "gpt-big", "output", 100, 2),
                tokens(3, "b", "gpt-small", "output", 1000, 3),
                tokens(4, "a", "gpt-small", "input", 7, 4),
                tokens(5, "b", "gpt-big", "input", 70, 5),
                tokens(6, "zzz", "gpt-small", "output", 5000, 6),  # another customer's subject
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

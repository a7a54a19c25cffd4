"""Gateway usage replayed from the journal is deduplicated: rollups count each event once."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from tollway.adapters.memory.journal import MemoryJournal
from tollway.adapters.sql.engine import create_sql_engine
from tollway.adapters.sql.migrate import upgrade
from tollway.adapters.sql.store import SqlEventStore
from tollway.clock import FrozenClock
from tollway.metering.aggregation import MeterQuery
from tollway.metering.llm import LlmCall, TokenUsage, llm_call_events
from tollway.metering.pipeline import UsagePipeline
from tollway.metering.service import MeteringService

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


async def test_journal_replay_after_a_crash_counts_once(tmp_path: Path) -> None:
    engine = create_sql_engine(f"sqlite:///{tmp_path / 'replay.db'}")
    upgrade(engine)
    store = SqlEventStore(engine, FrozenClock(NOW))
    service = MeteringService(store, FrozenClock(NOW))
    await service.sync_meters([])
    call = LlmCall(
        request_id="req-1",
        subject="acme",
        time=NOW,
        model="demo",
        upstream_model="demo",
        provider="local",
        route="/v1/chat/completions",
        status_code=200,
        streamed=False,
        usage=TokenUsage(input=10, output=5),
    )
    events = llm_call_events(call)
    first = UsagePipeline(store, MemoryJournal())
    await first.start()
    first.emit(events)
    assert await first.flush()
    await first.stop()
    await store.roll_up()
    # The process died after storing but before releasing its journal: the next start replays it.
    replay = UsagePipeline(store, MemoryJournal([e.to_json() for e in events]))
    await replay.start()
    await replay.stop()
    await store.roll_up()
    rows = await service.query("llm_tokens", MeterQuery(group_by=("type",)))
    assert {r.group_by["type"]: r.value for r in rows} == {"input": Decimal(10), "output": Decimal(5)}
    requests = await service.query("llm_requests", MeterQuery())
    assert [r.value for r in requests] == [Decimal(1)]
    assert store.stats.duplicates_total == len(events)
    assert store.stats.conflicts_total == 0
    await store.close()

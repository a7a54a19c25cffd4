from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from tests.support.meter_events import token_event
from tollway.adapters.journal.file import FileJournal
from tollway.adapters.memory.journal import MemoryJournal
from tollway.adapters.memory.store import MemoryEventStore
from tollway.metering.events import Event
from tollway.metering.pipeline import UsagePipeline

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def event(n: int) -> Event:
    """Call `n`'s input tokens (`n` of them), as the gateway records a call: id `req<n>:input`."""
    return token_event(f"req{n}:input", "acme", T0, n, kind="input")


def segments(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("*.jsonl"))


def test_file_journal_release_deletes_only_stored_segments(tmp_path: Path) -> None:
    journal = FileJournal(tmp_path)
    assert journal.recover() == []
    journal.append(b"a\n")
    mark = journal.seal()
    journal.append(b"b\n")
    assert len(segments(tmp_path)) == 2
    journal.release(mark)
    remaining = segments(tmp_path)
    assert len(remaining) == 1
    assert (tmp_path / remaining[0]).read_bytes() == b"b\n"
    journal.close()
    assert segments(tmp_path) == remaining, "unstored records stay on disk at close"


def test_records_of_a_dead_process_are_adopted(tmp_path: Path) -> None:
    script = (
        "import sys, os; from pathlib import Path; from tollway.adapters.journal.file import FileJournal\n"
        "j = FileJournal(Path(sys.argv[1])); j.recover()\n"
        "j.append(b'one\\ntwo\\n'); j.seal(); j.append(b'three\\ntor')\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True)
    journal = FileJournal(tmp_path)
    recovered = journal.recover()
    assert [r for segment in recovered for r in segment.records] == [b"one", b"two", b"three"], (
        "the torn final record is dropped"
    )
    assert [segment.final for segment in recovered] == [False, True], "the second segment was the writer's last"
    mark = journal.seal()
    journal.release(mark)
    journal.close()
    assert segments(tmp_path) == []


def test_segments_of_a_live_process_are_not_taken(tmp_path: Path) -> None:
    owner = FileJournal(tmp_path)
    owner.recover()
    owner.append(b"mine\n")
    other = FileJournal(tmp_path)
    assert other.recover() == []
    other.close()
    owner.close()
    assert [segment.records for segment in FileJournal(tmp_path).recover()] == [[b"mine"]]


async def test_pipeline_flushes_and_releases() -> None:
    store, journal = MemoryEventStore(), MemoryJournal()
    pipeline = UsagePipeline(store, journal, batch_size=10, interval_s=60)
    await pipeline.start()
    pipeline.emit([event(1), event(2)])
    assert pipeline.backlog == 2
    assert len(journal.records) == 2
    assert await pipeline.flush()
    assert [e.id for e in store.events] == ["req1:input", "req2:input"]
    assert journal.records == []
    assert pipeline.backlog == 0
    await pipeline.stop()


async def test_store_outage_keeps_events_until_it_is_back() -> None:
    store, journal = MemoryEventStore(), MemoryJournal()
    pipeline = UsagePipeline(store, journal, batch_size=10, interval_s=60)
    await pipeline.start()
    store.available = False
    pipeline.emit([event(1)])
    assert not await pipeline.flush()
    pipeline.emit([event(2)])
    assert not await pipeline.flush()
    assert pipeline.backlog == 2
    assert len(journal.records) == 2, "the journal still holds them"
    store.available = True
    assert await pipeline.flush()
    assert sorted(e.id for e in store.events) == ["req1:input", "req2:input"]
    assert journal.records == []
    await pipeline.stop()


async def test_replay_after_crash_is_deduplicated() -> None:
    store = MemoryEventStore()
    await store.insert_events([event(1)])  # stored before the crash, journal not yet released
    left_over = [event(1).to_json(), event(2).to_json(), b"{not json"]
    pipeline = UsagePipeline(store, MemoryJournal(left_over), batch_size=10, interval_s=60)
    await pipeline.start()
    assert sorted(e.id for e in store.events) == ["req1:input", "req2:input"]
    assert pipeline.replayed_total == 2
    assert pipeline.unreadable_records_total == 1
    await pipeline.stop()


async def test_stop_flushes_everything() -> None:
    store = MemoryEventStore()
    pipeline = UsagePipeline(store, MemoryJournal(), batch_size=3, interval_s=60)
    await pipeline.start()
    pipeline.emit([event(n) for n in range(7)])
    assert await pipeline.stop()
    assert len(store.events) == 7


def test_journal_write_is_one_syscall_per_emit(tmp_path: Path) -> None:
    journal = FileJournal(tmp_path)
    journal.recover()
    journal.append(b"x" * 100_000 + b"\n")
    journal.close()
    (name,) = segments(tmp_path)
    assert os.path.getsize(tmp_path / name) == 100_001


async def test_a_long_outage_seals_once_not_once_per_retry(tmp_path: Path) -> None:
    store = MemoryEventStore()
    journal = FileJournal(tmp_path)
    pipeline = UsagePipeline(store, journal, batch_size=10, interval_s=60)
    await pipeline.start()
    store.available = False
    for n in range(20):
        pipeline.emit([event(n)])
        assert not await pipeline.flush()
    assert len(segments(tmp_path)) == 2, "one sealed batch and the open segment, whatever the retries"
    store.available = True
    assert await pipeline.flush()
    assert len(store.events) == 20
    assert await pipeline.stop()
    assert segments(tmp_path) == []

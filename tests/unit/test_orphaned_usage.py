"""No orphaned usage: any worker claims the segments no live writer holds, in every replica's directory under the
journal root, each under a lease only one worker can win; the age of the oldest unstored usage is measured and
warned about once a minute."""

from __future__ import annotations

import logging
import os
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.support.meter_events import token_event
from tollway.adapters.journal.file import LEASE, FileJournal, claim_segments, lease_holder
from tollway.adapters.memory.journal import MemoryJournal
from tollway.adapters.memory.store import MemoryEventStore
from tollway.metering.backlog import BacklogWatch
from tollway.metering.events import Event
from tollway.metering.pipeline import UsagePipeline


def event(n: int) -> Event:
    """Call `n`'s input tokens (`n` of them), as the gateway records a call: id `req<n>:input`."""
    return token_event(f"req{n}:input", "acme", datetime(2026, 11, 1, 12, 0, tzinfo=UTC), n, kind="input")


def segment_names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("*.jsonl"))


def dead_replica_segment(directory: Path, name: str, records: bytes) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_bytes(records)  # written, and its writer gone: no lock held
    return path


def test_a_worker_drains_every_replicas_directory_under_the_root_each_segment_under_one_lease(tmp_path: Path) -> None:
    dead_replica_segment(tmp_path / "gateway-a", "11-aaaa-0000000001.jsonl", b"a1\na2\n")
    dead_replica_segment(tmp_path / "gateway-b", "22-bbbb-0000000001.jsonl", b"b1\n")
    live = FileJournal(tmp_path / "gateway-c")
    live.open()
    live.append(b"c1\n")  # a live replica's open segment: locked, never claimed

    first = claim_segments(tmp_path, holder="w1", nested=True)
    assert sorted(r for c in first for r in c.records) == [b"a1", b"a2", b"b1"]
    assert all(LEASE + "w1-" in c.path.name for c in first)
    assert claim_segments(tmp_path, holder="w2", nested=True) == [], "a second worker finds nothing to take"
    assert claim_segments(tmp_path, nested=False) == [], "nor does a claim of the root alone"

    first[0].give_back()  # storing failed: back under its own name, for any worker
    again = claim_segments(tmp_path, holder="w2", nested=True)
    assert [c.records for c in again] == [[b"a1", b"a2"]]
    for claimed in [*again, *first[1:]]:
        claimed.done()
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [live._prefix + "0000000001.jsonl"]
    live.close()


def test_the_lease_of_a_worker_that_died_is_taken_over_once_expired(tmp_path: Path) -> None:
    expired = int(time.time()) - 1
    later = int(time.time()) + 600
    dead_replica_segment(tmp_path, f"11-aaaa-0000000001.jsonl{LEASE}dead.1-{expired}", b"x\n")
    dead_replica_segment(tmp_path, f"11-aaaa-0000000002.jsonl{LEASE}busy.2-{later}", b"y\n")
    (taken,) = claim_segments(tmp_path, holder="w3")
    assert taken.records == [b"x"]
    assert taken.path.name.startswith(f"11-aaaa-0000000001.jsonl{LEASE}w3-")
    assert taken.final is False, "segment 2 of the same writer exists"
    taken.done()
    assert claim_segments(tmp_path, holder="w4") == [], "an unexpired lease is left to its worker"


def test_a_lease_of_a_process_of_this_host_that_is_gone_is_taken_over_at_once(tmp_path: Path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    host = lease_holder().partition(".")[0]
    later = int(time.time()) + 600
    dead_replica_segment(tmp_path, f"11-aaaa-0000000001.jsonl{LEASE}{host}.{gone.pid}.ab-{later}", b"x\n")
    dead_replica_segment(tmp_path, f"11-aaaa-0000000002.jsonl{LEASE}{host}.{os.getpid()}.cd-{later}", b"y\n")
    (taken,) = claim_segments(tmp_path, holder="w5")
    assert taken.records == [b"x"], "the live holder's lease stands"
    taken.done()


def test_the_oldest_unstored_usage_of_a_journal_is_its_oldest_segment_on_disk(tmp_path: Path) -> None:
    journal = FileJournal(tmp_path)
    journal.open()
    assert journal.oldest_unstored_age_s() == 0.0
    journal.append(b"r1\n")
    assert journal.hand_off()  # handed to a worker that does not come
    handed = sorted(tmp_path.glob("*.jsonl"))[0]
    old = time.time() - 400
    os.utime(handed, (old, old))
    assert 399 < journal.oldest_unstored_age_s() < 460
    handed.unlink()  # a worker stored it
    assert journal.oldest_unstored_age_s() == 0.0
    journal.close()


async def test_the_pipelines_backlog_age_counts_from_its_oldest_unstored_event() -> None:
    clock = [1000.0]
    store = MemoryEventStore()
    pipeline = UsagePipeline(store, MemoryJournal(), batch_size=10, interval_s=60, now=lambda: clock[0])
    await pipeline.start()
    assert pipeline.backlog_age_s() == 0.0
    store.available = False
    pipeline.emit([event(1)])
    clock[0] += 30
    assert not await pipeline.flush()
    pipeline.emit([event(2)])
    clock[0] += 45
    assert pipeline.backlog_age_s() == 75.0  # event 1, kept for the retry, is the oldest
    store.available = True
    assert await pipeline.flush()
    assert pipeline.backlog_age_s() == 0.0
    await pipeline.stop()


def test_the_backlog_warning_comes_once_a_minute_while_past_the_threshold(caplog: pytest.LogCaptureFixture) -> None:
    age, now = [0.0], [0.0]
    watch = BacklogWatch(lambda: age[0], threshold_s=300, now=lambda: now[0])
    caplog.set_level(logging.WARNING, "tollway.metering.backlog")
    seen = []
    for t, a in [(0, 10), (5, 301), (10, 306), (64, 360), (65, 361), (70, 2), (75, 400)]:
        now[0], age[0] = t, a
        seen.append(watch.check())
    assert seen == [False, True, False, False, True, False, True]
    assert watch.warnings_total == 3
    assert "usage not stored for 301 s (threshold 300 s)" in caplog.text
    assert "usage backlog caught up" in caplog.text


async def test_a_long_outage_keeps_the_backlog_in_the_journal_only_and_stores_it_once_back(tmp_path: Path) -> None:
    store = MemoryEventStore()
    journal = FileJournal(tmp_path)
    pipeline = UsagePipeline(store, journal, batch_size=4, interval_s=60, max_memory_events=5)
    await pipeline.start()
    store.available = False
    for n in range(3):
        pipeline.emit([event(n)])
    assert not await pipeline.flush()  # the outage: 3 events in memory and in the journal
    for n in range(3, 9):
        pipeline.emit([event(n)])  # past 5: dropped from memory, journaled only
    assert pipeline.spills_total == 1
    assert (pipeline._buffer, pipeline._pending) == ([], [])
    assert pipeline.backlog == 9
    assert not await pipeline.flush()
    assert pipeline.backlog == 9
    store.available = True
    assert await pipeline.flush()
    assert sorted(e.id for e in store.events) == sorted(f"req{n}:input" for n in range(9))
    assert pipeline.backlog == 0
    pipeline.emit([event(9)])  # back to buffering in memory
    assert len(pipeline._buffer) == 1
    assert await pipeline.flush()
    assert len(store.events) == 10
    await pipeline.stop()
    assert segment_names(tmp_path) == [], "every segment stored and released"

"""A full journal disk never loses money, and write-ahead intents account for calls a crash cut off.

The disk is a fault-injecting `write` for the real FileJournal (tests/support/full_disk.py): it runs
out part-way through a record, as a real file system does. tests/integration/test_journal_tmpfs.py
repeats the essentials on a real, full tmpfs where the test may mount one.
"""

from __future__ import annotations

import errno
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from tests.support.full_disk import FullDisk
from tollway.adapters.journal.file import FileJournal, claim_segments
from tollway.adapters.memory.store import MemoryEventStore
from tollway.errors import UnavailableError
from tollway.metering.intents import CallIntent
from tollway.metering.journaling import JOURNAL_UNAVAILABLE, JournalWriter
from tollway.metering.llm import LlmCall, TokenPrice, TokenUsage, call_record
from tollway.metering.pipeline import UsagePipeline
from tollway.metering.records import Replay
from tollway.metering.spool import HandOffSink

T0 = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)
PRICE = TokenPrice(Decimal("0.0000025"), Decimal("0.00001"))


def intent(request_id: str, tokens: int = 40) -> CallIntent:
    return CallIntent(
        request_id=request_id,
        subject="acme",
        time=T0,
        model="gpt-4o",
        upstream_model="gpt-4o",
        provider="up",
        route="/v1/chat/completions",
        streamed=True,
        input_tokens=tokens,
        price=PRICE,
    )


def call(request_id: str) -> LlmCall:
    return LlmCall(
        request_id=request_id,
        subject="acme",
        time=T0,
        model="gpt-4o",
        upstream_model="gpt-4o",
        provider="up",
        route="/v1/chat/completions",
        status_code=200,
        streamed=True,
        usage=TokenUsage(input=12, output=5),
        price=PRICE,
    )


def line(request_id: str) -> bytes:
    return call_record(call(request_id)) + b"\n"


def segment_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.jsonl"))


def test_a_record_torn_by_a_full_disk_is_cut_off_and_never_swallows_the_next(tmp_path: Path) -> None:
    disk = FullDisk()
    journal = FileJournal(tmp_path, write=disk.write)
    journal.recover()
    journal.append(line("r1"))
    disk.fill(leaving=10)  # the next record gets 10 bytes in, then ENOSPC
    with pytest.raises(OSError, match="No space left on device") as refused:
        journal.append(line("r2"))
    assert refused.value.errno == errno.ENOSPC
    (segment,) = segment_files(tmp_path)
    assert segment.read_bytes() == line("r1"), "nothing of the refused record stays on disk"
    disk.free()
    journal.append(line("r3"))
    journal.close()

    replay = Replay()
    (left,) = FileJournal(tmp_path).recover()
    events = replay.segment(left.records, final=left.final)
    assert sorted({e.id.split(":")[0] for e in events}) == ["r1", "r3"], "every whole record is replayed"
    assert replay.unreadable == 0


async def test_a_call_is_refused_before_the_upstream_while_the_disk_is_full(tmp_path: Path) -> None:
    disk = FullDisk()
    pipeline = UsagePipeline(MemoryEventStore(), FileJournal(tmp_path, write=disk.write), interval_s=60)
    await pipeline.start()
    pipeline.probe()
    disk.fill()
    with pytest.raises(UnavailableError) as refused:
        pipeline.begin(intent("r1"))
    assert refused.value.code == JOURNAL_UNAVAILABLE
    assert pipeline.writer.error == "[Errno 28] No space left on device"
    with pytest.raises(OSError, match="No space left on device"):
        pipeline.probe()  # /readyz: not ready
    assert pipeline.writer.open == {}, "a refused call holds nothing open"

    disk.free()
    pipeline.probe()
    assert pipeline.writer.error is None, "a successful probe clears the journal's health flag"
    pipeline.begin(intent("r2"))
    assert list(pipeline.writer.open) == ["r2"]
    await pipeline.stop()


async def test_a_record_the_full_disk_refuses_is_still_stored_and_journaled_once_there_is_room(
    tmp_path: Path,
) -> None:
    """The disk fills while a call runs (its intent is on disk): the answer is relayed, its usage kept."""
    disk, store = FullDisk(), MemoryEventStore()
    journal = FileJournal(tmp_path, write=disk.write)
    pipeline = UsagePipeline(store, journal, interval_s=60)
    await pipeline.start()
    pipeline.begin(intent("r1"))
    disk.fill()
    pipeline.record_call(call("r1"))  # does not raise: the client gets its answer
    assert pipeline.writer.unwritten == 1
    assert "r1" in pipeline.writer.open, "the intent covers a crash meanwhile"
    assert await pipeline.flush(), "stored from memory although the journal cannot seal"
    assert {e.id for e in store.events} >= {"r1:input", "r1:output", "r1:request"}
    disk.free()
    pipeline.probe()  # writes the kept record
    assert pipeline.writer.unwritten == 0
    assert pipeline.writer.open == {}
    await pipeline.stop()


def test_intents_in_flight_are_carried_and_replayed_as_interrupted_once(tmp_path: Path) -> None:
    """Sealing carries open intents into the new segment, so releasing the old one keeps them; only the
    dead writer's last segment turns them into records, and a second replay deduplicates."""
    journal = FileJournal(tmp_path)
    journal.recover()
    writer = JournalWriter(journal)
    writer.begin(intent("done"))
    writer.begin(intent("flying", tokens=77))
    writer.begin(intent("refused"))
    writer.complete("done", line("done"))
    journal.release(journal.seal(writer.carry()))  # stored and released: only the carried copy remains
    writer.end("refused")  # reached no upstream
    writer.begin(intent("late"))
    writer.complete("late", line("late"))
    journal.close()  # the writer dies: its segments stay as they are

    replay = Replay()
    (left,) = claim_segments(tmp_path)
    assert left.final
    events = replay.segment(left.records, final=left.final)
    requests = {e.id: e.data for e in events if e.type == "llm.request"}
    assert sorted(requests) == ["flying:request", "late:request"]
    flying = requests["flying:request"]
    assert (flying["interrupted"], flying["partial"], flying["estimated"], flying["status_code"]) == (
        True,
        True,
        True,
        0,
    )
    # 77 x 0.0000025 = 0.0001925 (no output known)
    assert (flying["input_tokens"], flying["output_tokens"], flying["cost_usd"]) == (77, 0, "0.0001925")
    assert "interrupted" not in requests["late:request"]
    assert replay.interrupted == 1
    left.give_back()

    again = Replay().segment(left.records, final=True)
    assert again == events, "deterministic ids: a second replay is the same events, deduplicated by the store"


def test_a_handed_off_segment_leaves_open_intents_to_the_writer(tmp_path: Path) -> None:
    """`tollway worker` takes closed segments of a live gateway: an intent open there is still in flight."""
    journal = FileJournal(tmp_path)
    journal.open()
    writer = JournalWriter(journal)
    writer.begin(intent("flying"))
    writer.begin(intent("done"))
    writer.complete("done", line("done"))
    assert journal.hand_off(writer.carry())
    (closed,) = claim_segments(tmp_path)
    assert not closed.final, "its writer has a later segment"
    events = Replay().segment(closed.records, final=closed.final)
    assert sorted(e.id for e in events if e.type == "llm.request") == ["done:request"]
    closed.done()

    journal.close()  # the gateway dies with the call in flight
    (last,) = claim_segments(tmp_path)
    assert last.final
    events = Replay().segment(last.records, final=last.final)
    assert [e.id for e in events if e.type == "llm.request"] == ["flying:request"]
    last.done()


async def test_the_worker_apart_sink_writes_a_kept_record_at_the_next_hand_off(tmp_path: Path) -> None:
    """TOLLWAY_INGEST=external: a record the full disk refused is written before a segment is handed over;
    until then nothing is handed over without it (its intent stays in the open segment)."""
    disk = FullDisk()
    sink = HandOffSink(FileJournal(tmp_path, write=disk.write), interval_s=3600)
    await sink.start()
    sink.begin(intent("r1"))
    disk.fill()
    sink.record_call(call("r1"))  # kept
    assert not sink._hand_off(), "the next segment cannot even take the carried intent"
    assert claim_segments(tmp_path) == [], "nothing handed over"
    disk.free()
    assert sink._hand_off()
    (handed,) = claim_segments(tmp_path)
    events = Replay().segment(handed.records, final=handed.final)
    assert [(e.id, e.data.get("interrupted")) for e in events if e.type == "llm.request"] == [("r1:request", None)]
    handed.done()
    await sink.stop()

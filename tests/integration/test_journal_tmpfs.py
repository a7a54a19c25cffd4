"""The usage journal on a real, full file system: a 64 KiB tmpfs, filled up.

Mounting needs privileges CI may not grant: without them this test skips and says why. The proof does
not rest on it: test_journal_full.py (the whole gateway) and tests/unit/test_journal_full_disk.py run
the same cases on a fault-injecting disk everywhere.
"""

from __future__ import annotations

import errno
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tollway.adapters.journal.file import FileJournal
from tollway.adapters.memory.store import MemoryEventStore
from tollway.errors import UnavailableError
from tollway.metering.intents import CallIntent
from tollway.metering.pipeline import UsagePipeline
from tollway.metering.records import Replay

T0 = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(mount_point)],
            check=True,
            capture_output=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        stderr = getattr(exc, "stderr", b"") or b""
        pytest.skip(
            f"cannot mount a tmpfs here ({exc} {stderr.decode(errors='replace').strip()}); "
            "test_journal_full.py proves the same on a fault-injecting disk"
        )
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=True, capture_output=True, timeout=10)


def intent(n: int) -> CallIntent:
    return CallIntent(
        request_id=f"req{n}",
        subject="acme",
        time=T0,
        model="gpt-4o",
        upstream_model="gpt-4o",
        provider="up",
        route="/v1/chat/completions",
        streamed=False,
        input_tokens=100 + n,
    )


def fill(path: Path) -> None:
    """Write zeros to `path` until the file system is full."""
    for chunk in (4096, 1):  # pages, then the last bytes of a page
        with path.open("ab", buffering=0) as filler:
            try:
                while True:
                    filler.write(bytes(chunk))
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise


async def test_a_full_tmpfs_refuses_calls_and_keeps_every_whole_record(tiny_disk: Path) -> None:
    journal_dir = tiny_disk / "journal"
    pipeline = UsagePipeline(MemoryEventStore(), FileJournal(journal_dir), interval_s=60)
    await pipeline.start()
    pipeline.probe()
    pipeline.begin(intent(0))
    fill(tiny_disk / "filler")

    accepted = [0]
    for n in range(1, 200):  # the segment's last page takes a few more records, then one tears
        try:
            pipeline.begin(intent(n))
        except UnavailableError:
            break
        accepted.append(n)
    else:
        pytest.fail("a full tmpfs kept taking records")
    with pytest.raises(OSError, match="No space left on device"):
        pipeline.probe()  # /readyz: not ready
    (segment,) = journal_dir.glob("*.jsonl")
    assert segment.read_bytes().endswith(b"\n"), "the record that did not fit was cut off again"

    (tiny_disk / "filler").unlink()
    pipeline.probe()
    pipeline.begin(intent(999))
    accepted.append(999)

    # the process "dies" with these calls in flight: the replay meters each once, as interrupted
    replay = Replay()
    events = replay.segment(segment.read_bytes().splitlines(), final=True)
    assert sorted(e.id for e in events if e.type == "llm.request") == sorted(f"req{n}:request" for n in accepted)
    assert replay.unreadable == 0
    await pipeline.stop()

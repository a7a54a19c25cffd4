"""A SIGKILL after responses were sent loses no usage; a replay never double counts; SIGTERM flushes all.

The flush interval is set far beyond the test's length, so every event is still only in the
journal when the gateway dies: what the meter shows afterwards came back through the replay.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.support.fake_upstream import FakeOpenAI, Reply
from tests.support.scenario import KEY, SUBJECT, client, config_for, metered, usage_block
from tests.support.stored import journal_segments, request_records, stored_events, tokens_by_type
from tests.support.tollway_process import TollwayProcess

NO_PERIODIC_FLUSH = {"TOLLWAY_FLUSH_INTERVAL_S": "30"}
USAGES = [
    usage_block(1200, 300, cached=1024, reasoning=128),
    usage_block(57, 11),
    usage_block(402, 90, cached=256),
    usage_block(31, 7, reasoning=5),
    usage_block(999, 1, cached=3),
]
EVENTS_PER_REQUEST = {0: 4, 1: 3, 2: 4, 3: 3, 4: 4}  # request + input + output (+ cache_read when cached)
TOTAL_EVENTS = sum(EVENTS_PER_REQUEST.values())


def traffic(tollway: TollwayProcess, fake: FakeOpenAI) -> list[dict[str, Any]]:
    """Three unary calls and two streams (one asking for usage, one not); returns the usage each reported."""
    # The last stream lingers after its [DONE] before the upstream closes it: the client has its whole
    # answer (the SDK stops at [DONE]) while the gateway still waits for the end of the upstream body.
    fake.enqueue(*(Reply(usage=u) for u in USAGES[:-1]))
    fake.enqueue(Reply(usage=USAGES[-1], stream_pieces=["Hello from the fake upstream."], chunk_delay_s=0.25))
    reported: list[dict[str, Any]] = []
    messages: Any = [{"role": "user", "content": "Hi"}]
    with client(tollway) as sdk:
        for _ in range(3):
            completion = sdk.chat.completions.create(model="gpt-4o", messages=messages)
            assert completion.usage is not None
            reported.append(completion.usage.model_dump())
        chunks = list(
            sdk.chat.completions.create(
                model="gpt-4o", messages=messages, stream=True, stream_options={"include_usage": True}
            )
        )
        assert chunks[-1].usage is not None
        reported.append(chunks[-1].usage.model_dump())
        chunks = list(sdk.chat.completions.create(model="gpt-4o", messages=messages, stream=True))
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello from the fake upstream."
        reported.append(USAGES[4])  # the client did not ask for it; the upstream reported this
    assert [u["total_tokens"] for u in reported] == [u["total_tokens"] for u in USAGES]
    return reported


def sqlite_url(workdir: Path) -> str:
    return f"sqlite:///{workdir / 'tollway.db'}"


def assert_exactly_once(tollway: TollwayProcess, workdir: Path) -> None:
    expected = metered(USAGES)
    assert expected == {"input": 1200 - 1024 + 57 + 402 - 256 + 31 + 999 - 3, "cache_read": 1283, "output": 409}
    assert tollway.tokens_by_type(SUBJECT) == expected
    requests = tollway.query("llm_requests", subject=SUBJECT, groupBy="status_code")["data"]
    assert [(r["groupBy"]["status_code"], r["value"]) for r in requests] == [("200", str(len(USAGES)))]
    events = stored_events(sqlite_url(workdir))
    assert len(events) == TOTAL_EVENTS
    assert len(request_records(events)) == len(USAGES)
    assert tokens_by_type(events) == expected


@pytest.fixture
def launch(workdir: Path, fake_openai: FakeOpenAI) -> Iterator[Callable[[], TollwayProcess]]:
    """Start a gateway on the test's database and journal (each start: a new process, same files)."""
    started: list[TollwayProcess] = []

    def start() -> TollwayProcess:
        started.append(TollwayProcess(workdir, config_for(fake_openai), env=NO_PERIODIC_FLUSH).start())
        return started[-1]

    yield start
    for process in started:
        process.stop()


def test_sigkill_after_responses_loses_nothing_and_replays_count_once(
    workdir: Path, fake_openai: FakeOpenAI, launch: Callable[[], TollwayProcess]
) -> None:
    gateway = launch()
    traffic(gateway, fake_openai)
    gateway.kill()

    journal = workdir / "journal"
    assert stored_events(sqlite_url(workdir)) == [], "nothing may have been flushed before the kill"
    assert sum(journal_segments(journal).values()) > 0
    saved = workdir / "journal-before-replay"
    shutil.copytree(journal, saved)

    # Restart on the same database and journal: the replay stores everything, once.
    restarted = launch()
    assert_exactly_once(restarted, workdir)
    assert sum(journal_segments(journal).values()) == 0, "replayed segments are released once stored"

    # Killed again after that flush. Had it crashed between storing the batch and releasing its journal
    # segments, the next start would replay events already stored: put the old segments back to make
    # exactly that happen. (source, id) deduplication keeps the count exact.
    restarted.kill()
    for segment in saved.iterdir():
        shutil.copy2(segment, journal / segment.name)
    final = launch()
    assert_exactly_once(final, workdir)
    assert sum(journal_segments(journal).values()) == 0


def test_sigterm_flushes_everything_before_exit(
    workdir: Path, fake_openai: FakeOpenAI, launch: Callable[[], TollwayProcess]
) -> None:
    gateway = launch()
    traffic(gateway, fake_openai)
    assert stored_events(sqlite_url(workdir)) == [], "nothing may have been flushed before the stop"

    assert gateway.stop() == 0  # a graceful stop is a normal exit, not "killed by SIGTERM"
    assert "tollway stopped:" in gateway.log()
    assert "Application shutdown complete." in gateway.log()
    assert journal_segments(workdir / "journal") == {}, "a graceful stop leaves no journal segment behind"
    events = stored_events(sqlite_url(workdir))
    assert len(events) == TOTAL_EVENTS
    assert tokens_by_type(events) == metered(USAGES)

    assert_exactly_once(launch(), workdir)


def test_stream_cut_by_a_graceful_stop_is_still_recorded_once(workdir: Path, fake_openai: FakeOpenAI) -> None:
    """A stream still running when the stop's grace period ends is cancelled: its tokens are recorded anyway."""
    fake_openai.enqueue(Reply(stream_pieces=[f"w{i}" for i in range(200)], chunk_delay_s=0.02))
    gateway = TollwayProcess(
        workdir, config_for(fake_openai), env={**NO_PERIODIC_FLUSH, "TOLLWAY_SHUTDOWN_GRACE_S": "0.5"}
    ).start()
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}], "stream": True}
    contents = 0
    try:
        with (
            httpx.Client(base_url=gateway.base_url, headers={"Authorization": f"Bearer {KEY}"}) as http,
            http.stream("POST", "/v1/chat/completions", json=body) as response,
        ):
            request_id = response.headers["x-request-id"]
            with contextlib.suppress(httpx.HTTPError):
                for line in response.iter_lines():
                    if line.startswith("data: {") and orjson.loads(line[6:])["choices"][0]["delta"].get("content"):
                        contents += 1
                        if contents == 5:
                            assert gateway.process is not None
                            gateway.process.send_signal(signal.SIGTERM)
        assert gateway.process is not None
        gateway.process.wait(20)
    finally:
        gateway.stop()
    assert 5 <= contents < 200, "the stream was cut by the stop"
    assert "timeout graceful shutdown exceeded" in gateway.log()

    events = [e for e in stored_events(sqlite_url(workdir)) if e.request_id == request_id]
    (record,) = request_records(events)
    assert record.data["partial"] is True
    assert record.data["estimated"] is True
    assert record.data["output_tokens"] == contents, "one token per content chunk the client received"
    assert journal_segments(workdir / "journal") == {}

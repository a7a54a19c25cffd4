"""SIGKILL under 50 concurrent streams: every stream a client received bytes of has exactly one usage record.

A real `tollway serve` over a fake upstream that streams slowly. Once every stream has delivered content
to its client, three quick unary calls complete: their records make the gateway flush, which seals the
journal segment holding the streams' write-ahead intents, carries those intents into a new segment and
deletes the old one. Then the gateway is killed with 50 streams in flight. The next start (in process,
on the same database and journal: the replay is the same code, and a second process start would double
the test's time) replays the journal: the three calls as they were recorded, and each stream from its
intent, flagged `interrupted`.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import httpx
import orjson

from tests.support.fake_upstream import FakeOpenAI, Reply
from tests.support.in_process import in_process
from tests.support.scenario import KEY, config_for
from tests.support.stored import StoredEvent, calls_stored_through, journal_segments, request_records, stored_events
from tests.support.tollway_process import TollwayProcess

STREAMS = 50
PIECES = 400  # x 0.05 s: far longer than the test, so every stream is still running at the kill
BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}], "stream": True}
# estimate of the prompt: 3 + 3 per message + ceil(len("Hi") / 4)
ESTIMATED_INPUT = 7


class Stream:
    def __init__(self) -> None:
        self.request_id = ""
        self.contents = 0
        self.started = asyncio.Event()


async def run_stream(http: httpx.AsyncClient, stream: Stream) -> None:
    with contextlib.suppress(httpx.HTTPError):  # the gateway dies under it
        async with http.stream("POST", "/v1/chat/completions", json=BODY) as response:
            assert response.status_code == 200
            stream.request_id = response.headers["x-request-id"]
            async for line in response.aiter_lines():
                if line.startswith("data: {") and orjson.loads(line[6:])["choices"][0]["delta"].get("content"):
                    stream.contents += 1
                    stream.started.set()


async def test_sigkill_under_concurrent_streams_leaves_one_record_per_stream(
    workdir: Path, fake_openai: FakeOpenAI
) -> None:
    fake_openai.default = Reply(stream_pieces=[f"w{i}" for i in range(PIECES)], chunk_delay_s=0.05)
    gateway = TollwayProcess(workdir, config_for(fake_openai)).start()
    database = f"sqlite:///{workdir / 'tollway.db'}"
    streams = [Stream() for _ in range(STREAMS)]
    limits = httpx.Limits(max_connections=STREAMS + 5)
    try:
        async with httpx.AsyncClient(
            base_url=gateway.base_url, headers={"Authorization": f"Bearer {KEY}"}, limits=limits, timeout=60
        ) as http:
            tasks = [asyncio.create_task(run_stream(http, stream)) for stream in streams]
            await asyncio.wait_for(asyncio.gather(*(s.started.wait() for s in streams)), 60)
            unary = {**BODY, "stream": False}
            finished = [(await http.post("/v1/chat/completions", json=unary)) for _ in range(3)]
            assert [r.status_code for r in finished] == [200, 200, 200]
            unary_ids = [r.headers["x-request-id"] for r in finished]
            # stored means flushed: the segment with the streams' intents was sealed and released
            await asyncio.to_thread(calls_stored_through, database, unary_ids[-1])
            gateway.kill()
            await asyncio.wait_for(asyncio.gather(*tasks), 30)
        received = {s.request_id: s.contents for s in streams}
        assert len(received) == STREAMS
        assert all(count >= 1 for count in received.values())
        assert all(count < PIECES for count in received.values()), "no stream finished before the kill"

    finally:
        gateway.stop()
    # the next start replays the journal before it serves (and stores what it replayed); stop: all released
    async with in_process(workdir, config_for(fake_openai)):
        records = request_records(stored_events(database))
    by_request: dict[str, list[StoredEvent]] = {}
    for record in records:
        by_request.setdefault(record.request_id, []).append(record)
    assert sorted(by_request) == sorted([*received, *unary_ids])
    assert all(len(found) == 1 for found in by_request.values()), "exactly one usage record per call"
    for request_id in unary_ids:
        data = by_request[request_id][0].data
        assert (data["status_code"], data["partial"], "interrupted" in data) == (200, False, False)
    for request_id in received:
        data = by_request[request_id][0].data
        assert data["interrupted"] is True
        assert (data["status_code"], data["partial"], data["estimated"], data["streamed"]) == (0, True, True, True)
        assert data["input_tokens"] == ESTIMATED_INPUT
        # output as of the last copy of the intent the journal carried: after the first content chunk
        assert 1 <= data["output_tokens"] <= PIECES
        assert data["cost_usd"] != "0", "priced like any call (the price book knows gpt-4o)"
    assert journal_segments(workdir / "journal") == {}, "replayed, stored and released"

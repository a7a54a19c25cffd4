"""A full usage-journal disk (ENOSPC) never loses money: calls are refused before the upstream, in the
caller's API shape; /readyz says why; a call the disk filled up under is still relayed whole and metered.

The whole Tollway runs in process, on SQLite and on PostgreSQL, with a FileJournal whose disk fills up on
demand (a fault-injecting `write`, tests/support/full_disk.py): deterministic, and it needs no mount.
(test_journal_tmpfs.py repeats the refusal on a real full tmpfs where the test may mount one.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.fake_upstream import FakeOpenAI, Reply
from tests.support.full_disk import FullDisk
from tests.support.in_process import in_process
from tests.support.scenario import KEY, config_for, prometheus_value
from tests.support.stored import request_records, stored_events
from tollway.adapters.journal.file import FileJournal

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]}
MESSAGES = {"model": "gpt-4o", "max_tokens": 20, "messages": [{"role": "user", "content": "Hi"}]}
GEMINI = {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}
BEARER = {"Authorization": f"Bearer {KEY}"}
REFUSAL = (
    "The gateway cannot record usage right now (its usage journal is not writable), so the request was "
    "refused before it reached any provider. Try again later."
)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'tollway.db'}"


async def test_a_full_journal_disk_refuses_calls_before_the_upstream_in_the_callers_shape(
    tmp_path: Path, fake_openai: FakeOpenAI, database_url: str
) -> None:
    disk = FullDisk()
    journal = FileJournal(tmp_path / "journal", write=disk.write)
    running = in_process(tmp_path, config_for(fake_openai), journal=journal, database_url=database_url)
    async with running as app, app.http() as http:
        assert (await http.get("/readyz")).json() == {"status": "ready"}

        # The disk fills up while a stream runs (its intent was written, its usage record is not): the
        # client still gets the whole answer, [DONE] included, and the call is metered from memory.
        fake_openai.enqueue(Reply(stream_pieces=["one", "two", "three"]))
        disk.fill_after(1)
        streamed = await http.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=BEARER)
        assert streamed.status_code == 200
        events = [line for line in streamed.text.splitlines() if line and not line.startswith(":")]  # SSE comments
        assert events[-1] == "data: [DONE]"  # (spend control's `: x-tollway-cost` comment may follow it)
        streamed_id = streamed.headers["x-request-id"]

        upstream_calls = len(fake_openai.received)
        openai = await http.post("/v1/chat/completions", json=CHAT, headers=BEARER)
        anthropic = await http.post(
            "/v1/messages", json=MESSAGES, headers={"x-api-key": KEY, "anthropic-version": "2023-06-01"}
        )
        gemini = await http.post("/v1beta/models/gpt-4o:generateContent", json=GEMINI, headers={"x-goog-api-key": KEY})
        assert len(fake_openai.received) == upstream_calls, "no refused call reached the upstream"
        assert (openai.status_code, anthropic.status_code, gemini.status_code) == (503, 503, 503)
        assert openai.json() == {
            "error": {"message": REFUSAL, "type": "api_error", "param": None, "code": "usage_journal_unavailable"}
        }
        assert anthropic.json() == {"type": "error", "error": {"type": "api_error", "message": REFUSAL}}
        assert gemini.json() == {"error": {"code": 503, "message": REFUSAL, "status": "UNAVAILABLE"}}

        ready = await http.get("/readyz")
        assert ready.status_code == 503
        assert ready.json() == {
            "status": "unavailable",
            "detail": "usage journal unwritable: [Errno 28] No space left on device",
        }
        metrics = (await http.get("/metrics")).text
        assert prometheus_value(metrics, "tollway_usage_journal_writable") == 0

        disk.free()
        assert (await http.get("/readyz")).json() == {"status": "ready"}, "a successful probe clears the flag"
        assert prometheus_value((await http.get("/metrics")).text, "tollway_usage_journal_writable") == 1
        served = await http.post("/v1/chat/completions", json=CHAT, headers=BEARER)
        assert served.status_code == 200
        served_id = served.headers["x-request-id"]
    metered = request_records(stored_events(database_url))
    assert sorted(r.request_id for r in metered) == sorted([streamed_id, served_id]), "refused calls: nothing"
    assert [r.data.get("interrupted") for r in metered] == [None, None]
    assert list((tmp_path / "journal").glob("*.jsonl")) == [], "the kept record was journaled, then released"

"""`tollway serve`'s default: usage stored by one supervised storage process, never on the request process.

The gateway only journals; its child `tollway worker --child` stores and rolls up. The child is restarted when
it dies, stopped after the gateway handed over its last segment, and exits when the gateway is killed. Nothing
is lost or counted twice through any of that."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import openai

from tests.support.closing import Closing
from tests.support.fake_upstream import FakeOpenAI
from tests.support.net import wait_until
from tests.support.scenario import KEY, gateway_config
from tests.support.stored import request_records, stored_events, tokens_by_type
from tests.support.tollway_process import TollwayProcess

STARTS_WITHIN_S = 60.0  # waits that include a Python process's start: a busy machine (a parallel suite)


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def storage_child(tollway: TollwayProcess) -> int:
    process = tollway.process
    assert process is not None
    found: list[tuple[int, list[bytes]]] = []

    def started() -> bool:
        # Live children only: a child just killed can still be listed until the gateway reaps it, and its
        # /proc entry may vanish between the listing and the read.
        # A child just forked still shows the gateway's own command line until it execs: wait for the exec.
        found[:] = [(pid, line) for pid in children(process.pid) if alive(pid) and (line := cmdline_of(pid))]
        return bool(found) and all(b"serve" not in line for _, line in found)

    wait_until(started, timeout_s=STARTS_WITHIN_S)
    assert len(found) == 1, found
    pid, cmdline = found[0]
    assert cmdline[-3:-1] == [b"worker", b"--child"], cmdline
    return pid


def niceness(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])  # field 19, nice


def cmdline_of(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []


def journal_files(tollway: TollwayProcess) -> list[str]:
    return sorted(p.name for p in (tollway.workdir / "journal").glob("*.jsonl"))


def test_the_default_stores_in_a_supervised_child(workdir: Path, fake_openai: FakeOpenAI, closing: Closing) -> None:
    tollway = TollwayProcess(workdir, gateway_config(fake_openai), env={"TOLLWAY_INGEST": ""}).start()
    try:
        client = closing(openai.OpenAI(base_url=tollway.base_url + "/v1", api_key=KEY))
        child = storage_child(tollway)
        # Background work: it yields the CPU to the gateway (TOLLWAY_STORAGE_NICE, 10 by default).
        assert tollway.process is not None
        gateway = tollway.process.pid
        wait_until(lambda: niceness(child) == max(10, niceness(gateway)), timeout_s=STARTS_WITHIN_S)
        for _ in range(2):
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
        wait_until(
            lambda: tollway.tokens_by_type("acme-corp") == {"input": 352, "cache_read": 2048, "output": 600},
            timeout_s=STARTS_WITHIN_S,
        )

        # The storage process dies: calls go on, the supervisor starts another, which stores them.
        os.kill(child, signal.SIGKILL)
        wait_until(lambda: not alive(child))
        stream = client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "Hi"}], stream=True
        )
        assert list(stream)
        restarted = storage_child(tollway)
        assert restarted != child
        wait_until(
            lambda: tollway.tokens_by_type("acme-corp") == {"input": 528, "cache_read": 3072, "output": 900},
            timeout_s=STARTS_WITHIN_S,
        )

        # A graceful stop: the gateway hands over its last segment, then its storage process stores it and exits.
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
        assert tollway.stop() == 0
        assert not alive(restarted)
        assert journal_files(tollway) == []
        events = stored_events(tollway.env["TOLLWAY_DATABASE_URL"])
        assert tokens_by_type(events) == {"input": 704, "cache_read": 4096, "output": 1200}
        assert len(request_records(events)) == 4

        # The gateway killed: its storage process sees its pipe close, stores what was handed over, and exits.
        tollway.start()
        child = storage_child(tollway)
        client = closing(openai.OpenAI(base_url=tollway.base_url + "/v1", api_key=KEY))
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
        wait_until(lambda: tollway.tokens_by_type("acme-corp")["output"] == 1500, timeout_s=STARTS_WITHIN_S)
        tollway.kill()
        wait_until(lambda: not alive(child), timeout_s=STARTS_WITHIN_S)
        events = stored_events(tollway.env["TOLLWAY_DATABASE_URL"])
        assert tokens_by_type(events) == {"input": 880, "cache_read": 5120, "output": 1500}
        assert len(request_records(events)) == 5
    finally:
        tollway.stop()

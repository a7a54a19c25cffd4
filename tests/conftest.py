"""Shared fixtures: fake upstreams, Tollway processes, and the database services."""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Generator, Iterator
from contextlib import ExitStack
from pathlib import Path

import psycopg
import pytest
import redis

from tests.support.closing import Client, Closing
from tests.support.fake_anthropic import FakeAnthropic
from tests.support.fake_azure import FakeAzureOpenAI
from tests.support.fake_gemini import FakeGemini
from tests.support.fake_stripe import FakeStripe
from tests.support.fake_upstream import FakeOpenAI

POSTGRES_URL = os.environ.get("TOLLWAY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TOLLWAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SERVICES_REQUIRED = os.environ.get("TOLLWAY_REQUIRE_SERVICES") == "1"


def service_missing(reason: str) -> None:
    """Skip with a visible reason, or fail when CI requires the services."""
    if SERVICES_REQUIRED:
        pytest.fail(f"required service unavailable: {reason}")
    pytest.skip(reason)


# -- CPU time per test ------------------------------------------------------------------------------------
# `--cpu-durations=N` lists the N tests that cost the most CPU: this process's own CPU plus that of the child
# processes it waited for (a `tollway serve` or a CLI run), over setup, call and teardown. Wall time
# (`--durations`) is inflated on a busy machine; CPU time is not. Works with xdist (the figures travel on
# each report's user_properties).

CPU_PROPERTY = "cpu_s"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--cpu-durations",
        type=int,
        default=None,
        metavar="N",
        help="show the N tests that used the most CPU (own + waited-for child processes); 0 for all",
    )


def _cpu_now() -> float:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, object, object]:
    item.stash[_CPU_START] = _cpu_now()
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, object, object]:
    report = yield
    if call.when == "teardown" and isinstance(report, pytest.TestReport):
        report.user_properties.append((CPU_PROPERTY, _cpu_now() - item.stash[_CPU_START]))
    return report


_CPU_START = pytest.StashKey[float]()


class CpuDurations:
    """Collects the CPU figure of each finished test (on the xdist controller too) and lists the costliest."""

    def __init__(self, wanted: int) -> None:
        self.wanted = wanted
        self.times: list[tuple[float, str]] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "teardown":
            for name, value in report.user_properties:
                if name == CPU_PROPERTY and isinstance(value, float):
                    self.times.append((value, report.nodeid))

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.times:
            return
        ranked = sorted(self.times, reverse=True)
        total = sum(seconds for seconds, _ in ranked)
        terminalreporter.write_sep("=", f"CPU time per test: {total:.1f} s over {len(ranked)} tests")
        for seconds, nodeid in ranked if self.wanted == 0 else ranked[: self.wanted]:
            terminalreporter.write_line(f"{seconds:8.2f}s cpu  {nodeid}")


def pytest_configure(config: pytest.Config) -> None:
    wanted = config.getoption("--cpu-durations")
    if wanted is not None:
        config.pluginmanager.register(CpuDurations(wanted), "tollway-cpu-durations")


@pytest.fixture
def closing() -> Iterator[Closing]:
    """Closes every client passed through it when the test ends (see tests/support/closing.py)."""
    with ExitStack() as stack:

        def enter(client: Client) -> Client:
            stack.enter_context(client)
            return client

        yield enter


# -- fake providers, one per test (a module that shares one defines its own module-scoped fixture) ---------


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


@pytest.fixture
def fake_anthropic() -> Iterator[FakeAnthropic]:
    fake = FakeAnthropic()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def fake_gemini() -> Iterator[FakeGemini]:
    fake = FakeGemini()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def fake_azure() -> Iterator[FakeAzureOpenAI]:
    fake = FakeAzureOpenAI()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def fake_stripe() -> Iterator[FakeStripe]:
    """The Stripe API stand-in (tests/support/fake_stripe.py), one per test."""
    server = FakeStripe().start()
    yield server
    server.stop()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL schema for one test (dropped afterwards)."""
    schema = f"t_{os.getpid()}_{os.urandom(4).hex()}"
    try:
        admin = psycopg.connect(
            POSTGRES_URL.replace("postgresql://", "postgresql://", 1), autocommit=True, connect_timeout=3
        )
    except psycopg.OperationalError as exc:
        service_missing(f"PostgreSQL at {POSTGRES_URL} is not reachable: {exc}")
        raise
    with admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in POSTGRES_URL else "?"
    yield f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test's own on the shared Redis; its keys (and only they) are deleted afterwards."""
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=3, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        service_missing(f"Redis at {REDIS_URL} is not reachable: {exc}")
        raise
    prefix = f"tollway-test:{os.getpid()}:{os.urandom(4).hex()}:"
    try:
        yield prefix
    finally:
        delete_prefix(client, prefix)
        client.close()


def delete_prefix(client: redis.Redis, prefix: str) -> int:
    """Delete every key under `prefix` (SCAN + DEL: never a FLUSHALL on the shared Redis)."""
    keys = list(client.scan_iter(match=prefix + "*", count=500))
    return int(client.delete(*keys)) if keys else 0


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path

"""Shared fixtures: fake upstreams, Tollway processes, and the database services."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.support.fake_upstream import FakeOpenAI

POSTGRES_URL = os.environ.get("TOLLWAY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
SERVICES_REQUIRED = os.environ.get("TOLLWAY_REQUIRE_SERVICES") == "1"


def service_missing(reason: str) -> None:
    """Skip with a visible reason, or fail when CI requires the services."""
    if SERVICES_REQUIRED:
        pytest.fail(f"required service unavailable: {reason}")
    pytest.skip(reason)


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


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
def workdir(tmp_path: Path) -> Path:
    return tmp_path

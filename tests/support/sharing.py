"""One `tollway serve` (and one fake of each provider) for a whole module's tests, each test still on its own.

A module that shares its gateway starts it in a module-scoped `tollway` over the module-scoped fakes of
tests/integration/conftest.py (`shared_openai`, `shared_anthropic`, `shared_gemini`, `shared_azure`), and names
the fakes its tests use by the usual fixture names:

    fake_openai = fresh_fake("fake_openai", "shared_openai")

Every test then gets that fake as started (nothing received, nothing scripted), and calls as a consumer of its
own (the `consumer` fixture), whose usage it reads: `tollway.expect_tokens(expected, consumer.subject)`.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.loopback import LoopbackServer


def fresh_fake(name: str, shared: str) -> Any:
    """An autouse fixture `name`: the module-scoped fake `shared`, reset before every test of the module (whether
    the test names it or not, so that no test sees replies another scripted)."""

    @pytest.fixture(name=name, autouse=True)
    def fresh(request: pytest.FixtureRequest) -> Any:
        fake = request.getfixturevalue(shared)
        assert isinstance(fake, LoopbackServer)
        fake.reset()
        return fake

    return fresh

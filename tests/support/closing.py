"""Close the SDK clients a test opens, when the test ends.

An official SDK client (openai, anthropic) keeps a pool of sockets open until it is closed. A test that drops
one leaves the socket to the garbage collector, which may run during a later test on the same worker; with
warnings as errors that later test then fails on a ResourceWarning it did not cause. The ``closing`` fixture
(tests/conftest.py) ties each client to the test that opened it: ``client = closing(openai.OpenAI(...))``.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol, TypeVar

Client = TypeVar("Client", bound=AbstractContextManager[object])


class Closing(Protocol):
    def __call__(self, client: Client, /) -> Client: ...

"""aiohttp's failures become the gateway's UpstreamError in one place (providers/openai.py): which kind each
is, before an answer (connecting, sending) and while one is read."""

from __future__ import annotations

import aiohttp
import pytest

from tollway.gateway.providers.openai import FAILURES, upstream_error


@pytest.mark.parametrize(
    ("exc", "reading", "timeout", "message"),
    [
        (TimeoutError(), False, True, "upstream timed out"),
        (aiohttp.ServerTimeoutError("read"), False, True, "upstream timed out"),
        (ConnectionRefusedError(111, "refused"), False, False, "upstream unreachable: [Errno 111] refused"),
        (aiohttp.ServerDisconnectedError(), False, False, "upstream unreachable: Server disconnected"),
        (aiohttp.ServerTimeoutError("idle"), True, True, "upstream went silent past the idle timeout"),
        (aiohttp.ClientPayloadError("cut"), True, False, "upstream connection broke: ClientPayloadError('cut')"),
        (ConnectionResetError(104, "reset"), True, False, "upstream connection broke"),
    ],
)
def test_each_failure_is_one_of_the_gateways_kinds(
    exc: BaseException, reading: bool, timeout: bool, message: str
) -> None:
    assert isinstance(exc, FAILURES)  # caught where aiohttp is called
    mapped = upstream_error(exc, reading=reading)
    assert mapped.timeout is timeout
    assert str(mapped).startswith(message)


def test_what_is_not_an_upstream_failure_is_not_caught() -> None:
    assert not isinstance(ValueError("a bug"), FAILURES)
    assert not isinstance(KeyError("x"), FAILURES)

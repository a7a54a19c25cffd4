"""A subscription listener stops when cancelled, even where redis-py's get_message swallows the cancellation."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from redis.asyncio.client import PubSub

from tollway.adapters.redis.pubsub import next_message


class SwallowingPubSub:
    """Answers None after its timeout and, like redis-py's timed read can, turns a cancellation into None."""

    def __init__(self) -> None:
        self.reads = 0

    async def get_message(self, *, ignore_subscribe_messages: bool, timeout: float) -> dict[str, Any] | None:  # noqa: ASYNC109 (redis-py's signature)
        self.reads += 1
        try:
            await asyncio.sleep(timeout)
        except asyncio.CancelledError:
            return None
        return None


async def listen(pubsub: PubSub) -> None:
    while True:
        await next_message(pubsub, timeout_s=0.01)


async def test_a_cancelled_listener_stops_although_the_read_swallowed_the_cancellation() -> None:
    fake = SwallowingPubSub()
    task = asyncio.create_task(listen(cast(PubSub, fake)))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(asyncio.shield(task), 2)
    assert task.cancelled()


async def test_a_message_is_returned_as_read() -> None:
    class OneMessage:
        async def get_message(self, *, ignore_subscribe_messages: bool, timeout: float) -> dict[str, Any] | None:  # noqa: ASYNC109 (redis-py's signature)
            return {"type": "message", "data": b"x"}

    assert await next_message(cast(PubSub, OneMessage())) == {"type": "message", "data": b"x"}

"""Reading a Redis subscription in a loop that can always be stopped."""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio.client import PubSub


async def next_message(pubsub: PubSub, timeout_s: float = 1.0) -> dict[str, Any] | None:
    """The next published message, or None after `timeout_s`.

    redis-py's `get_message(timeout=...)` times its read with a timeout of its own and can swallow a cancellation
    that lands while it waits (it answers None instead): a listener looping on it then never stops, and whoever
    awaits the cancelled task hangs. Seen under load as a gateway that never finished shutting down. A pending
    cancellation is raised here instead.
    """
    note: dict[str, Any] | None = await pubsub.get_message(ignore_subscribe_messages=True, timeout=timeout_s)
    raise_if_cancelling()
    return note


def raise_if_cancelling() -> None:
    """Raise the current task's pending cancellation, if one was swallowed on the way (redis-py's timed reads, and
    Python 3.11's `asyncio.wait_for` when what it waits for finishes as it is cancelled, can both do that): for a
    listener's retry loop, which would otherwise go round again."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError

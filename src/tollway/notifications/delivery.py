"""DeliveryWorker: sends the outbox's due deliveries, each to its channel, signed per Standard Webhooks.

At least once: a delivery is claimed (SENDING, with a lease) before it is sent and its outcome recorded
after; a worker killed in between leaves the claim to run out, and the next claim sends it again with the
same `webhook-id`. Outcomes (tollway.notifications.retry): 2xx SUCCESS; 410 disables the channel and ends
the delivery FAILED; anything else, a timeout (10 s) or no connection is retried on the Standard Webhooks
schedule, then FAILED. The URL is checked again before each attempt (DNS may have changed since the channel
was saved): a refused address is a failed attempt, retried like the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime

import orjson

from tollway.clock import Clock
from tollway.errors import ValidationError
from tollway.notifications.model import Attempt, DeliveryJob, DeliveryState
from tollway.notifications.ports import AttemptResult, NotificationStore, SendResult, WebhookSender
from tollway.notifications.retry import TIMEOUT_S, next_attempt, outcome
from tollway.notifications.signing import signed_headers
from tollway.notifications.urls import Resolve, check_url

log = logging.getLogger("tollway.notifications")
MAX_BODY_KEPT = 1024

# Outcome labels of tollway_notification_deliveries_total: success, retry (will try again), failed (gave up),
# gone (410: channel disabled).
Count = Callable[[str, str], None]  # (event type, outcome)


class DeliveryWorker:
    def __init__(
        self,
        store: NotificationStore,
        sender: WebhookSender,
        clock: Clock,
        *,
        resolve: Resolve,
        allow_private: bool = False,
        lease_s: float = 60.0,
        batch: int = 32,
        timeout_s: float = TIMEOUT_S,
        count: Count | None = None,
    ) -> None:
        self._store = store
        self._sender = sender
        self._clock = clock
        self._resolve = resolve
        self._allow_private = allow_private
        self._lease_s = lease_s
        self._batch = batch
        self._timeout_s = timeout_s
        self._count = count

    async def run_once(self) -> int:
        """Claim what is due and deliver it (concurrently); returns how many attempts were made."""
        jobs = await self._store.claim_deliveries(now=self._clock.now(), limit=self._batch, lease_s=self._lease_s)
        if jobs:
            await asyncio.gather(*(self.deliver(job) for job in jobs))
        return len(jobs)

    async def deliver(self, job: DeliveryJob) -> AttemptResult:
        event, channel = job.event, job.channel
        body = orjson.dumps(event.payload())
        started = self._clock.now()
        try:
            await check_url(channel.url, allow_private=self._allow_private, resolve=self._resolve)
        except ValidationError as exc:
            answer = SendResult(None, f"not sent: {exc.message}", 0)
        else:
            headers = signed_headers(channel.signing_secret, event.id, started, body, channel.custom_headers)
            answer = await self._sender.send(channel.url, headers, body, timeout_s=self._timeout_s)
        result = self._result(job, answer, started)
        await self._store.finish_delivery(event.id, channel.id, result)
        label = {"SUCCESS": "success", "PENDING": "retry"}.get(
            result.state, "gone" if result.disable_channel else "failed"
        )
        if self._count is not None:
            self._count(event.type, label)
        if label in ("failed", "gone"):
            log.warning("notification %s to channel %s failed: %s", event.id, channel.id, result.reason)
        return result

    async def close(self) -> None:
        await self._sender.close()

    def _result(self, job: DeliveryJob, answer: SendResult, at: datetime) -> AttemptResult:
        verdict = outcome(answer.status_code)
        state: DeliveryState = "SUCCESS" if verdict == "success" else "FAILED"
        attempt = Attempt(
            at=at,
            state=state,
            status_code=answer.status_code,
            body=answer.body[:MAX_BODY_KEPT],
            duration_ms=answer.duration_ms,
            url=job.channel.url,
        )
        said = f"HTTP {answer.status_code}" if answer.status_code is not None else answer.body[:200]
        if verdict == "success":
            return AttemptResult(attempt, "SUCCESS", None, "")
        if verdict == "gone":
            return AttemptResult(
                attempt, "FAILED", None, "the receiver answered 410 Gone: channel disabled", disable_channel=True
            )
        retry_at = next_attempt(job.attempts, at)
        if retry_at is None:
            return AttemptResult(attempt, "FAILED", None, f"gave up after {job.attempts} attempts: {said}")
        return AttemptResult(attempt, "PENDING", retry_at, f"attempt {job.attempts} failed: {said}")


class Poller:
    """Runs a step (`run_once`) every `interval_s` in a background task; a failing round is logged and retried."""

    def __init__(self, name: str, step: Callable[[], object], interval_s: float) -> None:
        self._name = name
        self._step = step
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self.failures_total = 0

    def wake(self) -> None:
        """Run the next round now instead of at the end of the interval (safe to call from the event loop only)."""
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"tollway-{self._name}")

    async def _run(self) -> None:
        while True:
            try:
                result = self._step()
                if asyncio.iscoroutine(result):
                    await result
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.failures_total += 1
                log.warning("%s: round failed: %s", self._name, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval_s)
            self._wake.clear()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

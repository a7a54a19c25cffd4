"""Optional active health checks: a one-token chat completion per target every interval, fed to its breaker.

Off unless a model sets `health_check`. A check is not a client request: it records no usage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping

import orjson

from tollway.gateway.balancing.policy import BalancingPolicy, HealthTarget
from tollway.gateway.providers.base import Provider, UpstreamError, UpstreamRequest

log = logging.getLogger("tollway.gateway.health")


async def check_once(provider: Provider, model: str, timeout_s: float) -> bool:
    """True when the target answered a tiny chat completion with a status below 500 other than 429."""
    payload = {"model": model, "messages": [{"role": "user", "content": "ping"}], "max_tokens": 1}
    request = UpstreamRequest(
        path="/chat/completions", body=orjson.dumps(payload), payload=payload, stream=False, request_id="health-check"
    )
    try:
        async with asyncio.timeout(timeout_s):
            response = await provider.send(request)
            try:
                await response.read()
            finally:
                response.close()
    except (UpstreamError, TimeoutError):
        return False
    return response.status < 500 and response.status != 429


class HealthChecks:
    """One task per checked target; restarted with the policy's targets after a reload."""

    def __init__(self, policy: BalancingPolicy) -> None:
        self._policy = policy
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, providers: Mapping[str, Provider]) -> None:
        for target in self._policy.health_targets:
            provider = providers.get(target.provider)
            if provider is not None:
                self._tasks.append(asyncio.create_task(self._run(target, provider)))

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def restart(self, providers: Mapping[str, Provider]) -> None:
        await self.stop()
        self.start(providers)

    async def _run(self, target: HealthTarget, provider: Provider) -> None:
        settings = target.settings
        while True:
            await asyncio.sleep(settings.interval_s)
            try:
                ok = await check_once(provider, target.model, settings.timeout_s)
            except Exception:  # a provider bug must not end the checks
                log.exception("health check of %s/%s failed unexpectedly", target.provider, target.model)
                ok = False
            self._policy.health(target.state, ok)

"""Keeps the spend rules snapshot current: rebuilt from the catalog when its version moves, off the request path.

The catalog's version is one primary-key read; the loop reads it every `refresh_s` and rebuilds the
snapshot only when a write (from any process: the API, `tollway apply`, a config reload) moved it. The
same loop runs the reconciler every `reconcile_s`: counters raised to the metered usage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from decimal import Decimal

from tollway.billing.grants.resets import EntitlementReset
from tollway.billing.ports import CatalogStore
from tollway.metering.meters import BUILT_IN_METERS
from tollway.metering.service import MeteringService
from tollway.spend.admission import SpendAdmission
from tollway.spend.ports import SpendLimitStore
from tollway.spend.rules import SpendRules

log = logging.getLogger("tollway.spend")


class RulesKeeper:
    def __init__(
        self,
        catalog: CatalogStore,
        metering: MeteringService,
        budgets: SpendLimitStore | None = None,
        *,
        refresh_s: float = 1.0,
        reconcile_s: float = 30.0,
        granted: Callable[[], Awaitable[Mapping[tuple[str, str], Decimal]]] | None = None,
        credits: Callable[[], Awaitable[Mapping[str, Decimal]]] | None = None,
        resets: Callable[[], Awaitable[Sequence[EntitlementReset]]] | None = None,
    ) -> None:
        self._resets = resets  # manual entitlement resets: they move the hard-limit windows (read like the grants)
        self._credits = credits  # prepaid-only customers' credit balances: read like the grants
        self._granted = granted  # unit grants on entitlements: read at each rebuild and each reconcile
        self._catalog = catalog
        self._metering = metering
        self._budgets = budgets
        self._refresh_s = refresh_s
        self._reconcile_s = reconcile_s
        self.rules = SpendRules()
        self.admission: SpendAdmission | None = None  # reconciled by the loop when set
        self._task: asyncio.Task[None] | None = None
        self._refreshing = asyncio.Lock()  # the loop and a refresh after an API write: one at a time, in order

    def current(self) -> SpendRules:
        return self.rules

    async def refresh(self) -> bool:
        """Rebuild the snapshot if the catalog changed since it was built; True when it did."""
        async with self._refreshing:
            return await self._refresh()

    async def _refresh(self) -> bool:
        version = (
            await self._catalog.version(),
            await self._budgets.budgets_version() if self._budgets is not None else 0,
        )
        if version == self.rules.version:
            return False
        customers, subscriptions, plans, features, meters = await asyncio.gather(
            self._catalog.list_customers(),
            self._catalog.list_subscriptions(),
            self._catalog.list_plans(),
            self._catalog.list_features(),
            self._metering.meters(),
        )
        budgets = await self._budgets.list_budgets() if self._budgets is not None else []
        rate_limits = await self._budgets.list_rate_limits() if self._budgets is not None else []
        known = {meter.slug: meter for meter in BUILT_IN_METERS} | {meter.slug: meter for meter in meters}
        self.rules = SpendRules.build(
            version, customers, subscriptions, plans, features, known.values(), budgets, rate_limits
        )
        await self._read_grants()
        return True

    async def refresh_grants(self) -> None:
        """Read again what the customers' unit grants make available (after a grant changed, and periodically:
        recurrences and expiries move it with time)."""
        async with self._refreshing:
            await self._read_grants()

    async def _read_grants(self) -> None:
        if self._granted is not None:
            self.rules = replace(self.rules, granted=dict(await self._granted()))
        if self._credits is not None:
            self.rules = replace(self.rules, credits=dict(await self._credits()))
        if self._resets is not None:
            by_entitlement: dict[tuple[str, str], list[EntitlementReset]] = {}
            for reset in await self._resets():
                by_entitlement.setdefault((reset.customer_id, reset.feature_key), []).append(reset)
            self.rules = replace(self.rules, resets={k: tuple(v) for k, v in by_entitlement.items()})

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_reconcile = loop.time() + self._reconcile_s
        while True:
            await asyncio.sleep(self._refresh_s)
            try:
                await self.refresh()
                if loop.time() >= next_reconcile:
                    next_reconcile = loop.time() + self._reconcile_s
                    await self.refresh_grants()
                    if self.admission is not None:
                        await self.admission.reconcile()
            except asyncio.CancelledError:
                raise
            except Exception:  # a database outage: keep the last snapshot and counters, try again
                log.warning("spend rules refresh failed; keeping the last snapshot", exc_info=True)

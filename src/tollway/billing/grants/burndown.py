"""OpenMeter's burn-down of a metered entitlement (pure but for the usage reads it is handed):

- the entitlement's usage periods run from the first one a grant touches up to `at`; at each period start the
  plan's allowance (the entitlement's limit) is issued again and each grant rolls over:
  MIN(maxRolloverAmount, MAX(balance before the reset, minRolloverAmount));
- a period is cut into segments at every grant event inside it (effective, expiry, void, recurrence); the
  usage of a segment burns the allowance first, then the grants active over the segment in order: priority
  (lower first), earliest expiry, oldest; what is left is overage;
- a grant becomes available at its effective time with its amount, and a recurring grant goes back to its
  amount at each recurrence (anchor + n x interval) after it became effective;
- a manual reset (tollway.billing.grants.resets) starts a period where it takes effect; one that preserves the
  overage carries the ended period's overage into the new one, burned before its usage.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import MAXYEAR, UTC, datetime, timedelta
from decimal import Decimal

from tollway.billing.grants.model import UnitGrant
from tollway.billing.grants.resets import EntitlementReset, reset_at, usage_period_at
from tollway.billing.periods import parse_cadence, period_containing

UsageBetween = Callable[[datetime, datetime], Awaitable[Decimal]]
_NEVER = datetime(MAXYEAR, 12, 31, tzinfo=UTC)
ZERO = Decimal(0)
_TICK = timedelta(microseconds=1)


@dataclass(frozen=True)
class Segment:
    start: datetime
    end: datetime
    usage: Decimal
    overage: Decimal
    balance_at_start: Decimal  # allowance left + the active grants' balances
    balance_at_end: Decimal
    grant_balances_at_start: dict[str, Decimal]
    grant_balances_at_end: dict[str, Decimal]
    grant_usages: dict[str, Decimal]
    allowance_usage: Decimal


@dataclass
class BurnDown:
    segments: list[Segment] = field(default_factory=list)
    period_start: datetime | None = None  # the current usage period
    usage: Decimal = ZERO  # in the current period
    overage: Decimal = ZERO
    allowance_left: Decimal = ZERO
    grant_balances: dict[str, Decimal] = field(default_factory=dict)  # active grants at `at`

    @property
    def available(self) -> Decimal:
        """What the allowance and the grants made available in the current period and was not lost unused: the
        usage they covered plus the balance left (OpenMeter's totalAvailableGrantAmount)."""
        return self.usage - self.overage + self.balance

    @property
    def balance(self) -> Decimal:
        return self.allowance_left + sum(self.grant_balances.values(), ZERO)


def recurrences(grant: UnitGrant, start: datetime, end: datetime) -> list[datetime]:
    """The grant's recurrence times in [start, end), strictly after it became effective (a recurrence on its
    effective time or on a reset is one event, applied once)."""
    if grant.recurrence_interval is None:
        return []
    cadence = parse_cadence(grant.recurrence_interval, field="recurrence.interval")
    anchor = grant.recurrence_anchor or grant.effective_at
    low = max(start, grant.effective_at)
    boundary, after = period_containing(anchor, cadence, low)
    moment = boundary if boundary >= start else after
    found: list[datetime] = []
    while moment < end and len(found) < 10_000:
        if moment > grant.effective_at:
            found.append(moment)
        moment = period_containing(anchor, cadence, moment)[1]
    return found


def _order(grant: UnitGrant) -> tuple[int, datetime, datetime, str]:
    return (grant.priority, grant.expires_at or _NEVER, grant.created_at, grant.id)


async def burn_down(
    *,
    grants: Sequence[UnitGrant],
    allowance: Decimal,
    anchor: datetime,
    usage_period: str,
    counted_from: datetime,
    at: datetime,
    usage_between: UsageBetween,
    resets: Sequence[EntitlementReset] = (),
) -> BurnDown:
    """Burn the entitlement down from the first period a grant (or `counted_from`) touches up to `at`; the
    result holds the current period's segments and totals."""
    cadence = parse_cadence(usage_period, field="usagePeriod")
    by_id = {g.id: g for g in grants}
    first = min([at, *(g.effective_at for g in grants)])
    for manual in resets:  # the period whose overage a reset carries over is burned down too
        if manual.preserve_overage and manual.effective_at <= at:
            first = min(first, usage_period_at(anchor, cadence, resets, manual.effective_at - _TICK)[0])
    period_start, period_end = usage_period_at(anchor, cadence, resets, max(first, counted_from))
    period_start = max(period_start, counted_from)
    balances: dict[str, Decimal] = {}
    result = BurnDown()
    carried = ZERO  # overage a reset preserved into the period
    while True:
        end = min(period_end, at)
        last = end >= at
        allowance_left = allowance
        for grant_id, balance in list(balances.items()):  # the reset: each grant rolls over
            grant = by_id[grant_id]
            balances[grant_id] = min(grant.rollover_cap, max(balance, grant.min_rollover))
        recurring = {g.id: set(recurrences(g, period_start, end)) for g in grants}
        events = {period_start, end}
        for grant in grants:
            for moment in (grant.effective_at, grant.expires_at, grant.voided_at, *recurring[grant.id]):
                if moment is not None and period_start < moment < end:
                    events.add(moment)
        bounds = sorted(events)
        usage_total = overage_total = ZERO
        for a, b in itertools.pairwise(bounds):
            for grant in grants:
                if not grant.active_at(a):
                    balances.pop(grant.id, None)
                elif grant.id not in balances or a in recurring[grant.id]:
                    balances[grant.id] = grant.amount  # issued, or re-issued at a recurrence
            start_balances = dict(balances)
            start_total = allowance_left + sum(balances.values(), ZERO)
            usage = await usage_between(a, b)
            left, carried = usage + carried, ZERO
            from_allowance = min(left, allowance_left)
            allowance_left -= from_allowance
            left -= from_allowance
            used: dict[str, Decimal] = {}
            for grant in sorted((by_id[i] for i in balances), key=_order):
                take = min(left, balances[grant.id])
                if take > 0:
                    balances[grant.id] -= take
                    used[grant.id] = take
                    left -= take
            usage_total += usage
            overage_total += left
            if last:
                end_total = allowance_left + sum(balances.values(), ZERO)
                result.segments.append(
                    Segment(
                        a, b, usage, left, start_total, end_total, start_balances, dict(balances), used, from_allowance
                    )
                )
        if last:
            result.period_start = period_start
            result.usage = usage_total
            result.overage = overage_total
            result.allowance_left = allowance_left
            result.grant_balances = {k: v for k, v in balances.items() if by_id[k].active_at(at)}
            return result
        reset = reset_at(resets, period_end)
        carried = overage_total if reset is not None and reset.preserve_overage else ZERO
        period_start, period_end = period_end, usage_period_at(anchor, cadence, resets, period_end)[1]

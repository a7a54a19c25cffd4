"""OpenMeter's burn-down of a metered entitlement with grants (pure, usage from a literal list of events): the
allowance first, then grants by priority, earliest expiry, oldest; rollover at each reset as
MIN(maxRolloverAmount, MAX(balance before the reset, minRolloverAmount)); recurrence re-issues the amount,
once even when it meets the reset. Every expected value is worked out by hand in the comments."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

from tollway.billing.grants.burndown import BurnDown, burn_down
from tollway.billing.grants.model import UnitGrant

D = Decimal
JAN_1 = datetime(2027, 1, 1, tzinfo=UTC)


def day(month: int, d: int) -> datetime:
    return datetime(2027, month, d, tzinfo=UTC)


def grant(gid: str, amount: int, **kw: object) -> UnitGrant:
    fields: dict[str, object] = {"priority": 1, "effective_at": JAN_1, "created_at": JAN_1, **kw}
    return UnitGrant(id=gid, customer_id="c", feature_key="tokens", amount=D(amount), **fields)  # type: ignore[arg-type]


async def run(
    grants: Sequence[UnitGrant], usage: list[tuple[datetime, int]], at: datetime, allowance: int = 0
) -> BurnDown:
    async def between(a: datetime, b: datetime) -> Decimal:
        return D(sum(n for t, n in usage if a <= t < b))

    return await burn_down(
        grants=grants,
        allowance=D(allowance),
        anchor=JAN_1,
        usage_period="P1M",
        counted_from=JAN_1,
        at=at,
        usage_between=between,
    )


async def test_allowance_first_then_grants_by_priority() -> None:
    grants = [grant("b", 300, priority=2), grant("a", 500, priority=1)]
    within = await run(grants, [(day(1, 5), 1200)], day(1, 20), allowance=1000)
    # 1000 from the allowance, 200 from a (priority 1); b untouched: balance 300 + 300 = 600
    assert (within.usage, within.overage, within.balance, within.grant_balances) == (
        D(1200),
        D(0),
        D(600),
        {"a": D(300), "b": D(300)},
    )
    assert within.available == D(1800)  # 1000 + 500 + 300
    past = await run(grants, [(day(1, 5), 1900)], day(1, 20), allowance=1000)
    assert (past.overage, past.balance) == (D(100), D(0))  # 1000 + 500 + 300 = 1800 < 1900


async def test_same_priority_burns_the_earliest_expiry_first() -> None:
    grants = [grant("late", 100), grant("soon", 100, expires_at=day(3, 1))]
    result = await run(grants, [(day(1, 5), 150)], day(1, 20))
    assert result.grant_balances == {"soon": D(0), "late": D(50)}
    (segment,) = result.segments
    assert segment.grant_usages == {"soon": D(100), "late": D(50)}


async def test_an_expired_grant_stops_paying_at_its_expiry() -> None:
    grants = [grant("short", 100, expires_at=day(1, 10))]
    result = await run(grants, [(day(1, 5), 30), (day(1, 12), 50)], day(1, 20))
    # 30 before the expiry comes from it; the 50 after is overage; its 70 left are gone
    assert (result.usage, result.overage, result.balance, result.available) == (D(80), D(50), D(0), D(30))
    assert [(s.start, s.end, s.grant_usages) for s in result.segments] == [
        (JAN_1, day(1, 10), {"short": D(30)}),
        (day(1, 10), day(1, 20), {}),
    ]


async def test_rollover_at_the_reset() -> None:
    usage = [(day(1, 5), 30)]  # 100 - 30 = 70 left at the February reset
    default = await run([grant("g", 100)], usage, day(2, 10))
    assert default.grant_balances == {"g": D(70)}  # MIN(100, MAX(70, 0)): maxRollover defaults to the amount
    capped = await run([grant("g", 100, max_rollover=D(50))], usage, day(2, 10))
    assert capped.grant_balances == {"g": D(50)}  # MIN(50, MAX(70, 0))
    refilled = await run([grant("g", 100, min_rollover=D(100))], usage, day(2, 10))
    assert refilled.grant_balances == {"g": D(100)}  # MIN(100, MAX(70, 100)): back to full each period
    lost = await run([grant("g", 100, max_rollover=D(0))], usage, day(2, 10))
    assert lost.grant_balances == {"g": D(0)}  # nothing rolls over


async def test_recurrence_reissues_the_amount() -> None:
    weekly = grant("w", 100, recurrence_interval="P1W", recurrence_anchor=JAN_1)
    usage = [(day(1, 3), 80), (day(1, 10), 80)]
    result = await run([weekly], usage, day(1, 12))
    # Jan 1-8: 80 of 100 (20 left); Jan 8: back to 100; Jan 10: 80 -> 20 left, no overage
    assert (result.usage, result.overage, result.grant_balances) == (D(160), D(0), {"w": D(20)})
    once = await run([grant("o", 100)], usage, day(1, 12))
    assert once.overage == D(60)  # without the recurrence: 160 - 100


async def test_a_recurrence_on_the_reset_is_applied_once() -> None:
    monthly = grant("m", 100, recurrence_interval="P1M", recurrence_anchor=JAN_1)
    result = await run([monthly], [(day(1, 5), 80), (day(2, 3), 10)], day(2, 10))
    # Feb 1: rollover MIN(100, MAX(20, 0)) = 20, then the recurrence: 100 (not 120, not 200); -10 = 90
    assert result.grant_balances == {"m": D(90)}
    assert result.available == D(100)

"""Manual resets of a metered entitlement (OpenMeter's POST .../entitlements/{featureKey}/reset): a new usage
period from effectiveAt, grants rolled over, the allowance issued again; retainAnchor keeps the old period
boundaries after it; preserveOverage carries the ended period's overage. Values worked out by hand."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

from tollway.billing.grants.burndown import BurnDown, burn_down
from tollway.billing.grants.model import UnitGrant
from tollway.billing.grants.resets import EntitlementReset, usage_period_at
from tollway.billing.periods import parse_cadence

D = Decimal
JAN_1 = datetime(2027, 1, 1, tzinfo=UTC)
MONTH = parse_cadence("P1M")


def day(month: int, d: int) -> datetime:
    return datetime(2027, month, d, tzinfo=UTC)


def reset(at: datetime, *, retain: bool = False, preserve: bool = False) -> EntitlementReset:
    return EntitlementReset(
        "r" + at.isoformat(), "c", "tokens", at, at, retain_anchor=retain, preserve_overage=preserve
    )


async def run(
    grants: Sequence[UnitGrant], usage: list[tuple[datetime, int]], at: datetime, resets: Sequence[EntitlementReset]
) -> BurnDown:
    async def between(a: datetime, b: datetime) -> Decimal:
        return D(sum(n for t, n in usage if a <= t < b))

    return await burn_down(
        grants=grants,
        allowance=D(100),
        anchor=JAN_1,
        usage_period="P1M",
        counted_from=JAN_1,
        at=at,
        usage_between=between,
        resets=resets,
    )


def test_a_reset_starts_a_period_anchored_at_it_unless_it_retains_the_anchor() -> None:
    assert usage_period_at(JAN_1, MONTH, [], day(1, 20)) == (JAN_1, day(2, 1))
    moved = [reset(day(1, 10))]
    assert usage_period_at(JAN_1, MONTH, moved, day(1, 9)) == (JAN_1, day(1, 10))  # the reset ends the old one
    assert usage_period_at(JAN_1, MONTH, moved, day(1, 20)) == (day(1, 10), day(2, 10))
    assert usage_period_at(JAN_1, MONTH, moved, day(2, 15)) == (day(2, 10), day(3, 10))
    kept = [reset(day(1, 10), retain=True)]
    assert usage_period_at(JAN_1, MONTH, kept, day(1, 20)) == (day(1, 10), day(2, 1))
    assert usage_period_at(JAN_1, MONTH, kept, day(2, 5)) == (day(2, 1), day(3, 1))


async def test_usage_counts_from_the_reset_and_grants_roll_over() -> None:
    grant = UnitGrant(id="g", customer_id="c", feature_key="tokens", amount=D(50), priority=1, effective_at=JAN_1,
                      created_at=JAN_1)  # fmt: skip
    usage = [(day(1, 5), 120), (day(1, 12), 40)]
    without = await run([grant], usage, day(1, 20), [])
    # one period: 160 used against 100 + 50: overage 10, nothing left
    assert (without.usage, without.overage, without.balance) == (D(160), D(10), D(0))
    after = await run([grant], usage, day(1, 20), [reset(day(1, 10))])
    # Jan 5: 120 = the allowance 100 + 20 of the grant (30 left). Jan 10 reset: the allowance is 100 again, the
    # grant rolls over MIN(50, MAX(30, 0)) = 30. Jan 12: 40 from the allowance -> 60 + 30 = 90 left
    assert (after.period_start, after.usage, after.overage, after.balance) == (day(1, 10), D(40), D(0), D(90))
    assert after.grant_balances == {"g": D(30)}
    assert after.available == D(130)  # 40 covered + 90 left: the gateway's limit 100 + 30 granted


async def test_preserve_overage_carries_it_into_the_new_period() -> None:
    usage = [(day(1, 5), 130), (day(1, 12), 10)]  # 30 over the allowance of 100 before the reset
    forgiven = await run([], usage, day(1, 20), [reset(day(1, 10))])
    assert (forgiven.usage, forgiven.overage, forgiven.balance) == (D(10), D(0), D(90))
    kept = await run([], usage, day(1, 20), [reset(day(1, 10), preserve=True)])
    assert (kept.usage, kept.overage, kept.balance) == (D(10), D(0), D(60))  # 100 - 30 carried - 10 used
    deep = await run([], [(day(1, 5), 250)], day(1, 20), [reset(day(1, 10), preserve=True)])
    assert (deep.usage, deep.overage, deep.balance) == (D(0), D(50), D(0))  # 150 carried: 100 paid, 50 still over

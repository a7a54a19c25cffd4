"""One contract suite for the notification store: the memory fake, SQLite and PostgreSQL keep the same rules —
an event and its deliveries are written together, a threshold mark fires once however many writers race, a
delivery is claimed by one worker at a time and comes back when its claimer's lease ends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tests.support.databases import BACKENDS, database_url
from tollway.adapters.memory.notifications import MemoryNotificationStore
from tollway.adapters.sql.engine import create_sql_engine
from tollway.adapters.sql.migrate import upgrade
from tollway.adapters.sql.notifications import SqlNotificationStore
from tollway.notifications.model import Attempt, Channel, Event, EventFilter, Rule, Threshold, ThresholdMark
from tollway.notifications.ports import AttemptResult, NotificationStore

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

StoreFactory = Callable[[], NotificationStore]


@pytest.fixture(params=BACKENDS)
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """Handles over ONE database (SQL: each handle with its own engine, as two processes would have)."""
    if request.param == "memory":
        memory = MemoryNotificationStore()
        yield lambda: memory
        return
    url = database_url(request, tmp_path, "n.db")
    engines = [create_sql_engine(url)]
    await asyncio.to_thread(upgrade, engines[0])
    first = [True]

    def make() -> NotificationStore:
        if not first[0]:
            engines.append(create_sql_engine(url))
        first[0] = False
        return SqlNotificationStore(engines[-1])

    yield make
    for engine in engines:
        engine.dispose()


def channel(channel_id: str = "01JCHANNEL0000000000000001", **changes: object) -> Channel:
    base = Channel(
        id=channel_id,
        name="ops",
        url="https://hooks.example.com/tollway",
        signing_secret=SECRET,
        created_at=NOW,
        updated_at=NOW,
        custom_headers={"x-team": "billing"},
        metadata={"env": "prod"},
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def event(event_id: str, at: datetime = NOW, **changes: object) -> Event:
    base = Event(
        id=event_id,
        type="entitlements.balance.threshold",
        created_at=at,
        data={"threshold": {"value": 80, "type": "PERCENT"}},
        rule_id="01JRULE000000000000000001",
        feature_key="output-tokens",
        subject_key="acme-corp",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def attempt(state: str, code: int | None, at: datetime = NOW) -> Attempt:
    return Attempt(at=at, state=state, status_code=code, body="ok", duration_ms=12, url="https://hooks.example.com")  # type: ignore[arg-type]


async def test_channels_and_rules_round_trip(stores: StoreFactory) -> None:
    store = stores()
    await store.save_channel(channel())
    rule = Rule(
        id="01JRULE000000000000000001",
        name="80 and 100",
        type="entitlements.balance.threshold",
        channel_ids=("01JCHANNEL0000000000000001",),
        created_at=NOW,
        updated_at=NOW,
        feature_keys=("output-tokens",),
        thresholds=(Threshold(Decimal("80"), "PERCENT"), Threshold(Decimal("1000.5"), "NUMBER")),
    )
    await store.save_rule(rule)
    assert await store.get_rule(rule.id) == rule
    assert await store.get_channel("01JCHANNEL0000000000000001") == channel()
    later = channel(name="ops-2", disabled=True, updated_at=NOW + timedelta(hours=1))
    await store.save_channel(later)
    assert await stores().list_channels() == [later]
    assert await store.get_channel("nope") is None
    assert [r.id for r in await store.list_rules()] == [rule.id]


async def test_a_mark_fires_once_however_many_writers_race(stores: StoreFactory) -> None:
    handles = [stores() for _ in range(4)]
    await handles[0].save_channel(channel())
    mark = ThresholdMark("01JRULE000000000000000001", "cust/output-tokens", "PERCENT:80", NOW)
    results = await asyncio.gather(
        *(
            handles[n % 4].add_event(event(f"01JEVENT00000000000000{n:04d}"), (channel().id,), mark=mark)
            for n in range(12)
        )
    )
    assert sum(results) == 1
    assert len(await handles[1].list_events(EventFilter())) == 1
    assert await handles[2].has_mark(mark)
    next_period = replace(mark, period_start=NOW + timedelta(days=30))
    assert not await handles[2].has_mark(next_period)
    assert await handles[3].add_event(event("01JEVENT000000000000009999"), (channel().id,), mark=next_period)


async def test_dedup_key_and_deliveries_written_with_the_event(stores: StoreFactory) -> None:
    store = stores()
    await store.save_channel(channel())
    await store.save_channel(channel("01JCHANNEL0000000000000002"))
    channels = ("01JCHANNEL0000000000000001", "01JCHANNEL0000000000000002")
    assert await store.add_event(event("01JEVENT000000000000000001"), channels, dedup_key="invoice.created:I1")
    assert not await store.add_event(event("01JEVENT000000000000000002"), channels, dedup_key="invoice.created:I1")
    stored = await store.get_event("01JEVENT000000000000000001")
    assert stored is not None
    assert stored.payload() == {
        "id": "01JEVENT000000000000000001",
        "type": "entitlements.balance.threshold",
        "timestamp": "2026-12-01T12:00:00.000Z",
        "data": {"threshold": {"value": 80, "type": "PERCENT"}},
    }
    assert [(d.channel_id, d.state, d.attempts, d.next_attempt_at) for d in stored.deliveries] == [
        (channels[0], "PENDING", 0, NOW),
        (channels[1], "PENDING", 0, NOW),
    ]
    assert await store.get_event("01JEVENT000000000000000002") is None
    assert await store.oldest_pending() == NOW
    assert await store.delivery_counts() == {"PENDING": 2}


async def test_claims_are_disjoint_and_a_dead_claim_comes_back_after_its_lease(stores: StoreFactory) -> None:
    a, b = stores(), stores()
    await a.save_channel(channel())
    for n in range(6):
        await a.add_event(event(f"01JEVENT00000000000000000{n}", NOW + timedelta(seconds=n)), (channel().id,))
    first, second = await asyncio.gather(
        a.claim_deliveries(now=NOW + timedelta(minutes=1), limit=4, lease_s=60),
        b.claim_deliveries(now=NOW + timedelta(minutes=1), limit=4, lease_s=60),
    )
    ids = [job.event.id for job in first + second]
    assert sorted(ids) == [f"01JEVENT00000000000000000{n}" for n in range(6)]
    assert all(job.attempts == 1 for job in first + second)
    assert all(job.channel.signing_secret == SECRET for job in first + second)
    # nothing is due while the leases hold; the same deliveries come back once they end (the claimer died)
    assert await b.claim_deliveries(now=NOW + timedelta(minutes=1, seconds=59), limit=10, lease_s=60) == []
    again = await b.claim_deliveries(now=NOW + timedelta(minutes=2, seconds=1), limit=10, lease_s=60)
    assert sorted(job.event.id for job in again) == sorted(ids)
    assert {job.attempts for job in again} == {2}


async def test_finish_success_retry_and_gone(stores: StoreFactory) -> None:
    store = stores()
    await store.save_channel(channel())
    await store.save_channel(channel("01JCHANNEL0000000000000002"))
    await store.add_event(event("01JEVENT000000000000000001"), ("01JCHANNEL0000000000000001",))
    await store.add_event(event("01JEVENT000000000000000002"), ("01JCHANNEL0000000000000002",))
    jobs = await store.claim_deliveries(now=NOW, limit=10, lease_s=60)
    assert len(jobs) == 2
    retry_at = NOW + timedelta(seconds=5)
    await store.finish_delivery(
        "01JEVENT000000000000000001",
        "01JCHANNEL0000000000000001",
        AttemptResult(attempt("FAILED", 500), "PENDING", retry_at, "HTTP 500"),
    )
    await store.finish_delivery(
        "01JEVENT000000000000000002",
        "01JCHANNEL0000000000000002",
        AttemptResult(attempt("FAILED", 410), "FAILED", None, "HTTP 410: channel disabled", disable_channel=True),
    )
    gone = await store.get_channel("01JCHANNEL0000000000000002")
    assert gone is not None
    assert gone.disabled
    assert gone.disabled_reason == "HTTP 410: channel disabled"
    assert await store.claim_deliveries(now=NOW + timedelta(seconds=4), limit=10, lease_s=60) == []
    (job,) = await store.claim_deliveries(now=retry_at, limit=10, lease_s=60)
    assert (job.event.id, job.attempts) == ("01JEVENT000000000000000001", 2)
    await store.finish_delivery(
        job.event.id, job.channel.id, AttemptResult(attempt("SUCCESS", 200, retry_at), "SUCCESS", None, "")
    )
    done = await store.get_event("01JEVENT000000000000000001")
    assert done is not None
    (delivery,) = done.deliveries
    assert (delivery.state, delivery.attempts, [a.status_code for a in delivery.history]) == ("SUCCESS", 2, [500, 200])
    assert await store.delivery_counts() == {"SUCCESS": 1, "FAILED": 1}
    assert await store.oldest_pending() is None
    # a resend starts a new round, delivered again (to a live channel)
    assert await store.resend("01JEVENT000000000000000001", at=NOW + timedelta(hours=1))
    assert not await store.resend("01JEVENTNOPE0000000000000", at=NOW)
    (again,) = await store.claim_deliveries(now=NOW + timedelta(hours=1), limit=10, lease_s=60)
    assert (again.event.id, again.attempts) == ("01JEVENT000000000000000001", 1)


async def test_list_events_filters(stores: StoreFactory) -> None:
    store = stores()
    await store.save_channel(channel())
    await store.save_channel(channel("01JCHANNEL0000000000000002"))
    await store.add_event(event("01JEVENT000000000000000001"), ("01JCHANNEL0000000000000001",))
    await store.add_event(
        event("01JEVENT000000000000000002", NOW + timedelta(hours=1), rule_id="01JRULE000000000000000002"),
        ("01JCHANNEL0000000000000002",),
    )
    await store.add_event(
        event("01JEVENT000000000000000003", NOW + timedelta(hours=2), feature_key="input-tokens"),
        ("01JCHANNEL0000000000000001",),
    )
    (job, *_) = await store.claim_deliveries(now=NOW, limit=1, lease_s=60)
    await store.finish_delivery(
        job.event.id, job.channel.id, AttemptResult(attempt("FAILED", 500), "FAILED", None, "gave up")
    )

    async def ids(**query: object) -> list[str]:
        return [e.id[-1] for e in await store.list_events(EventFilter(**query))]  # type: ignore[arg-type]

    assert await ids() == ["3", "2", "1"]
    assert await ids(rule_ids=("01JRULE000000000000000002",)) == ["2"]
    assert await ids(channel_ids=("01JCHANNEL0000000000000001",)) == ["3", "1"]
    assert await ids(states=("FAILED",)) == ["1"]
    assert await ids(states=("PENDING",)) == ["3", "2"]
    assert await ids(feature_keys=("input-tokens",)) == ["3"]
    assert await ids(subject_keys=("acme-corp",), start=NOW + timedelta(minutes=30)) == ["3", "2"]
    assert await ids(end=NOW + timedelta(hours=1)) == ["1"]
    assert await ids(limit=1) == ["3"]
    assert await ids(limit=1, offset=1) == ["2"]
    assert await ids(offset=2) == ["1"]
    # channel and state together: one delivery to that channel in that state (event 2 went to channel 2, pending)
    assert await ids(channel_ids=("01JCHANNEL0000000000000001",), states=("PENDING",)) == ["3"]
    assert await ids(channel_ids=("01JCHANNEL0000000000000002",), states=("FAILED",)) == []
    assert await store.count_events(EventFilter()) == 3
    assert await store.count_events(EventFilter(states=("PENDING",), limit=1, offset=1)) == 2

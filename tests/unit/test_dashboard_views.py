"""The dashboard's view code (pure): number, money and time formatting, ranges, chart series, session cookies and
CSRF tokens, live rows, bars."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import orjson

from tollway.dashboard import fmt
from tollway.dashboard.charts import series_chart, window_starts
from tollway.dashboard.pages_ops import live_row
from tollway.dashboard.reports import Bar, totals_of
from tollway.dashboard.security import SESSION_TTL, Sessions
from tollway.metering.aggregation import QueryRow
from tollway.metering.events import Event
from tollway.metering.llm import LlmCall, TokenUsage, call_from_record, call_record, llm_call_events
from tollway.metering.meters import WindowSize

NOW = datetime(2026, 3, 29, 10, 30, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")


def test_numbers_and_money_for_people() -> None:
    assert fmt.number(1234567) == "1,234,567"
    assert fmt.number(Decimal("1234.50")) == "1,234.5"
    assert fmt.number(None) == "—"
    assert fmt.money(123456, "USD") == "$1,234.56"
    assert fmt.money(1235, "JPY") == "¥1,235"
    assert fmt.money_amount(Decimal("12.345"), "USD") == "$12.35"
    assert fmt.small_money(Decimal("0.0001234")) == "$0.000123"
    assert fmt.small_money(Decimal("1234.5")) == "$1,234.50"
    assert fmt.small_money(Decimal("0.5"), "KWD") == "0.5 KWD"
    assert fmt.percent(1, 3) == "33.3%"
    assert fmt.percent(0, 0) == "—"


def test_times_in_a_chosen_zone() -> None:
    assert fmt.when(NOW) == "2026-03-29 10:30 UTC"
    assert fmt.when(NOW, BERLIN) == "2026-03-29 12:30 CEST"  # summer time began at 01:00 UTC that day
    assert fmt.when(None) == "—"
    assert fmt.zone("Europe/Berlin") == BERLIN
    assert fmt.zone("Not/AZone") is UTC
    assert fmt.zone("../../etc/passwd") is UTC
    assert fmt.zone_name(UTC) == "UTC"


def test_ranges_end_with_the_current_window_on_boundaries_of_the_zone() -> None:
    week = fmt.time_range("7d", None, UTC, NOW)
    assert (week.start, week.end, week.window, week.granularity) == (
        datetime(2026, 3, 23, tzinfo=UTC),
        datetime(2026, 3, 30, tzinfo=UTC),
        WindowSize.DAY,
        "day",
    )
    berlin = fmt.time_range("7d", "day", BERLIN, NOW)  # midnights in Berlin, across the switch to summer time
    assert (berlin.start, berlin.end) == (datetime(2026, 3, 22, 23, tzinfo=UTC), datetime(2026, 3, 29, 22, tzinfo=UTC))
    day = fmt.time_range("24h", None, UTC, NOW)
    assert (day.window, day.start, day.end) == (
        WindowSize.HOUR,
        datetime(2026, 3, 28, 11, tzinfo=UTC),
        datetime(2026, 3, 29, 11, tzinfo=UTC),
    )
    quarter = fmt.time_range("90d", "month", UTC, NOW)
    assert (quarter.window, quarter.start, quarter.end) == (
        WindowSize.MONTH,
        datetime(2025, 12, 1, tzinfo=UTC),
        datetime(2026, 4, 1, tzinfo=UTC),
    )
    december = fmt.time_range("30d", "month", UTC, datetime(2026, 12, 20, tzinfo=UTC))
    assert (december.start, december.end) == (datetime(2026, 11, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    unknown = fmt.time_range("1y", "decade", UTC, NOW)
    assert (unknown.key, unknown.granularity) == ("7d", "day")
    assert fmt.time_range("7d", "hour", UTC, NOW).granularity == "hour"
    assert fmt.time_range("30d", "hour", UTC, NOW).granularity == "day"  # 720 hourly windows: daily instead


def test_window_starts_follow_the_zone_across_a_dst_change() -> None:
    start, end = datetime(2026, 3, 28, 0, tzinfo=UTC), datetime(2026, 3, 31, 0, tzinfo=UTC)
    starts = window_starts(start, end, WindowSize.DAY, BERLIN)
    assert starts == [
        datetime(2026, 3, 27, 23, tzinfo=UTC),  # 28 Mar 00:00 CET
        datetime(2026, 3, 28, 23, tzinfo=UTC),  # 29 Mar 00:00 CET (the day is 23 hours long)
        datetime(2026, 3, 29, 22, tzinfo=UTC),  # 30 Mar 00:00 CEST
        datetime(2026, 3, 30, 22, tzinfo=UTC),
    ]
    months = window_starts(datetime(2026, 11, 15, tzinfo=UTC), datetime(2027, 2, 1, tzinfo=UTC), WindowSize.MONTH, UTC)
    assert [m.month for m in months] == [11, 12, 1]
    assert len(window_starts(start, end, WindowSize.HOUR, UTC)) == 72


def row(start: datetime, value: str, **group: str) -> QueryRow:
    return QueryRow(Decimal(value), start, start + timedelta(days=1), None, dict(group))


def test_series_chart_fills_empty_windows_and_sorts_series() -> None:
    rng = fmt.Range(
        "7d", datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 4, tzinfo=UTC), WindowSize.DAY, "day", UTC
    )
    rows = [
        row(datetime(2026, 3, 1, tzinfo=UTC), "5", type="output"),
        row(datetime(2026, 3, 3, tzinfo=UTC), "100", type="input"),
        row(datetime(2026, 3, 3, tzinfo=UTC), "2.5", type="output"),
        row(datetime(2026, 2, 1, tzinfo=UTC), "999", type="input"),  # outside the range: left out
    ]
    chart = series_chart(rows, rng, "type")
    assert chart["labels"] == ["01 Mar", "02 Mar", "03 Mar"]
    assert chart["series"] == [
        {"name": "input", "values": [0, 0, 100]},
        {"name": "output", "values": [5, 0, 2.5]},
    ]


def test_series_beyond_eight_are_summed_as_other() -> None:
    rng = fmt.Range(
        "7d", datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC), WindowSize.DAY, "day", UTC
    )
    rows = [row(datetime(2026, 3, 1, tzinfo=UTC), str(10 + i), model=f"m{i}") for i in range(10)]
    series = series_chart(rows, rng, "model")["series"]
    assert [s["name"] for s in series] == ["m9", "m8", "m7", "m6", "m5", "m4", "m3", "other"]
    assert series[-1]["values"] == [10 + 11 + 12]


def test_totals_by_type_and_model() -> None:
    rows = [
        row(NOW, "3", type="input", model="a"),
        row(NOW, "4", type="output", model="a"),
        row(NOW, "5", type="input", model="b"),
    ]
    totals = totals_of(rows)
    assert totals.by_type == {"input": Decimal(8), "output": Decimal(4)}
    assert totals.by_model == {"a": Decimal(7), "b": Decimal(5)}
    assert totals.total == Decimal(12)


def test_session_cookies_are_signed_expire_and_end() -> None:
    sessions = Sessions(b"0123456789abcdef-secret")
    cookie = sessions.new(NOW)
    session = sessions.read(cookie, NOW + timedelta(hours=1))
    assert session is not None
    assert sessions.read(cookie, NOW + SESSION_TTL + timedelta(seconds=1)) is None
    issued, nonce, signature = cookie.split(".")
    assert sessions.read(f"{int(issued) + 3600}.{nonce}.{signature}", NOW) is None  # a changed time: refused
    assert sessions.read(cookie[:-2] + "xx", NOW) is None
    assert Sessions(b"another-secret-0123456").read(cookie, NOW) is None
    assert sessions.read(None, NOW) is None
    token = sessions.csrf(session.nonce)
    assert sessions.csrf_ok(session.nonce, token)
    assert not sessions.csrf_ok(session.nonce, None)
    assert not sessions.csrf_ok(session.nonce, token[:-1] + "A" if token[-1] != "A" else token[:-1] + "B")
    assert not sessions.csrf_ok("another-nonce", token)
    sessions.end(session)
    assert sessions.read(cookie, NOW) is None


def test_live_row_reads_a_request_event() -> None:
    event = Event(
        id="req_1:request",
        source="tollway",
        type="llm.request",
        subject="acme-corp",
        time=NOW,
        data={
            "model": "demo",
            "status_code": 200,
            "input_tokens": 1200,
            "output_tokens": 34,
            "cache_read_tokens": 5,
            "cache_write_tokens": 1,
            "cost_usd": "0.0042",
            "streamed": True,
            "duration_ms": 842,
        },
    )
    live = live_row(event)
    assert (live.subject, live.model, live.input, live.output, live.cached, live.cost, live.status) == (
        "acme-corp",
        "demo",
        1200,
        34,
        6,
        Decimal("0.0042"),
        200,
    )
    assert live.duration_ms == 842
    odd = live_row(Event("x", "s", "llm.request", "s", NOW, {"input_tokens": True, "cost_usd": "nan?"}))
    assert (odd.input, odd.cost, odd.model, odd.status, odd.duration_ms) == (0, None, "—", 0, None)


def test_request_duration_travels_from_the_journal_line_to_the_request_event() -> None:
    call = LlmCall(
        request_id="req_1",
        subject="acme-corp",
        time=NOW,
        model="demo",
        upstream_model="demo",
        provider="local",
        route="/v1/chat/completions",
        status_code=200,
        streamed=False,
        usage=TokenUsage(input=10, output=5),
        duration_ms=1234,
    )
    stored = call_from_record(orjson.loads(call_record(call)))
    assert stored.duration_ms == 1234
    request = next(e for e in llm_call_events(stored) if e.type == "llm.request")
    assert request.data["duration_ms"] == 1234
    without = replace(call, duration_ms=None)
    assert b"duration_ms" not in call_record(without)  # older lines and callers without it: unchanged
    assert "duration_ms" not in next(e for e in llm_call_events(without) if e.type == "llm.request").data


def test_bars_toward_a_limit() -> None:
    def bar(used: str, limit: str) -> Bar:
        return Bar("x", Decimal(used), Decimal(limit), "tokens", True)

    assert (bar("50", "100").percent, bar("50", "100").level) == (50, "ok")
    assert (bar("85", "100").percent, bar("85", "100").level) == (85, "warn")
    assert (bar("150", "100").percent, bar("150", "100").level) == (100, "over")
    assert bar("1", "0").percent == 100
    assert bar("0", "0").percent == 0

"""How the pages show numbers, money and times (pure): thousands separators, currency symbols, a chosen zone,
and the time ranges the pages offer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tollway.billing.plans import RateCard
from tollway.billing.pricing.registry import PRICERS
from tollway.metering.meters import WindowSize
from tollway.money import format_money, format_quantity, price_text, to_minor_units

RANGES = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30), "90d": timedelta(days=90)}
DEFAULT_RANGE = "7d"
GRANULARITIES = {"hour": WindowSize.HOUR, "day": WindowSize.DAY, "month": WindowSize.MONTH}
MAX_HOURLY = timedelta(days=7)  # hourly windows over a longer range: daily (hour buckets cost 24x the day's)
ZONES = ("UTC", "Europe/London", "Europe/Berlin", "America/New_York", "America/Los_Angeles", "Asia/Tokyo")


def number(value: int | Decimal | None) -> str:
    """1234567 -> "1,234,567"; decimals exact ("1,234.5")."""
    if value is None:
        return "—"
    if isinstance(value, int):
        return f"{value:,}"
    return format_quantity(value)


def money(minor: int, currency: str) -> str:
    """Minor units for people: "$1,234.56", "¥1,235", "1,234.567 KWD"."""
    return format_money(minor, currency)


def money_amount(amount: Decimal, currency: str) -> str:
    """An exact amount rounded to the currency's minor unit for display: Decimal("12.345") USD -> "$12.35"."""
    return format_money(to_minor_units(amount, currency), currency)


def small_money(amount: Decimal, currency: str = "USD") -> str:
    """Provider costs, often fractions of a cent: 6 decimals below 1 ("$0.000123"), else the minor unit."""
    if abs(amount) >= 1:
        return money_amount(amount, currency)
    rounded = amount.quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP)
    sample = format_money(0, currency)  # "$0.00", "0.000 KWD"
    digits = [i for i, c in enumerate(sample) if c.isdigit()]
    prefix, suffix = sample[: digits[0]], sample[digits[-1] + 1 :]
    sign = "-" if rounded < 0 else ""
    return f"{sign}{prefix}{format_quantity(abs(rounded))}{suffix}"


def percent(part: int | Decimal, whole: int | Decimal) -> str:
    if not whole:
        return "—"
    share = (Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    return f"{share}%"


def zone(name: str | None) -> tzinfo:
    """An IANA zone by name; UTC for none or an unknown one."""
    if not name or name == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def zone_name(tz: tzinfo) -> str:
    return "UTC" if tz is UTC else str(tz)


def when(moment: datetime | None, tz: tzinfo = UTC) -> str:
    """ "2026-12-07 18:55 UTC", in `tz` with its abbreviation ("2026-12-07 19:55 CET")."""
    if moment is None:
        return "—"
    local = moment.astimezone(tz)
    return f"{local:%Y-%m-%d %H:%M} {local.tzname() or zone_name(tz)}"


def day(moment: datetime | None, tz: tzinfo = UTC) -> str:
    return "—" if moment is None else f"{moment.astimezone(tz):%d %b %Y}"


@dataclass(frozen=True)
class Range:
    key: str  # 24h, 7d, 30d, 90d
    start: datetime
    end: datetime
    window: WindowSize
    granularity: str  # hour | day | month
    tz: tzinfo

    def label(self, moment: datetime) -> str:
        local = moment.astimezone(self.tz)
        if self.window is WindowSize.HOUR:
            return f"{local:%d %b %H:%M}"
        if self.window is WindowSize.DAY:
            return f"{local:%d %b}"
        return f"{local:%b %Y}"


def time_range(key: str | None, granularity: str | None, tz: tzinfo, now: datetime) -> Range:
    """The range ending with the window that holds `now`, cut on window boundaries in `tz` (so a page reads whole
    day or month rollup buckets, never the hour and minute buckets of a ragged edge), and its window size; defaults
    where a choice is unknown. Hourly windows over more than MAX_HOURLY turn daily."""
    key = key if key in RANGES else DEFAULT_RANGE
    span = RANGES[key]
    default = "hour" if span <= timedelta(days=2) else "day"
    granularity = granularity if granularity in GRANULARITIES else default
    if granularity == "hour" and span > MAX_HOURLY:
        granularity = "day"
    if granularity == "hour":
        end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        return Range(key, end - span, end, WindowSize.HOUR, granularity, tz)
    local = now.astimezone(tz).replace(tzinfo=None)
    if granularity == "day":
        last = local.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
        first = last - timedelta(days=span.days)
    else:
        last = _month_start(local, 1)
        first = _month_start(local - span + timedelta(days=1), 0)
    start, end = (moment.replace(tzinfo=tz).astimezone(UTC) for moment in (first, last))
    return Range(key, start, end, GRANULARITIES[granularity], granularity, tz)


def _month_start(local: datetime, months_ahead: int) -> datetime:
    month = local.month - 1 + months_ahead
    return datetime(local.year + month // 12, month % 12 + 1, 1)


def price_label(card: RateCard, currency: str) -> str:
    """A rate card's price in a few words: "$0.000003 per unit", "graduated tiers (2)", "$49 flat, in advance"."""
    if card.flat is not None:
        return f"{price_text(card.flat.amount, currency)} flat, {card.flat.payment_term.replace('_', ' ')}"
    if card.usage is None:
        return "—"
    return PRICERS.of(card.usage.price).label(card.usage.price, currency)

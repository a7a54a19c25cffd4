"""BudgetEvents: budget.threshold and budget.exceeded, detected off the request path (a step of the notification
worker, every round), from each budget's metered use in its current window (tollway.spend.budget_usage: the
window, subjects and pricing spend control itself uses).

- budget.threshold: each threshold of a rule a budget's use has reached (PERCENT / usage_percentage of its
  limit, NUMBER / usage_value in the budget's unit, balance_value: what is left) fires once per rule, budget,
  threshold and window; a new window has no marks yet (re-armed).
- budget.exceeded: once per rule, budget and window, when the use reached the limit (hard or soft), or when the
  gateway refused a call at the hard budget (`refused`, handed over by the refusal hook; the round it wakes
  stores the event, the request itself writes nothing).

The store's unique mark (rule, "budget:{id}", threshold, window start) decides, however many workers look.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from tollway.money import decimal_text
from tollway.notifications.model import BUDGET_EXCEEDED, BUDGET_THRESHOLD, Rule, Threshold, ThresholdMark
from tollway.notifications.service import NotificationService
from tollway.notifications.thresholds import Reading, reached_thresholds
from tollway.notifications.wire import number, rfc3339
from tollway.spend.budget_usage import BudgetReading

EXCEEDED = "exceeded"
MAX_KNOWN = 100_000
MAX_REFUSALS = 10_000


class BudgetReadings(Protocol):
    async def readings(self) -> list[BudgetReading]: ...


class BudgetEvents:
    def __init__(
        self,
        service: NotificationService,
        budgets: BudgetReadings,
        *,
        refresh: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self._service = service
        self._budgets = budgets
        self._refresh = refresh  # brings the budgets snapshot up to date before a round
        self._known: set[ThresholdMark] = set()
        self._refused: dict[str, datetime | None] = {}  # budget key -> the refused window's end

    def refused(self, limit: str | None, resets_at: datetime | None) -> None:
        """The gateway refused a call at limit `limit` ("budget:{key}"; others are ignored). Cheap: memory only."""
        if limit is None or not limit.startswith("budget:") or len(self._refused) >= MAX_REFUSALS:
            return
        self._refused[limit.removeprefix("budget:")] = resets_at

    async def run_once(self) -> int:
        """One round; returns how many events it stored."""
        threshold_rules = await self._service.active_rules(BUDGET_THRESHOLD)
        exceeded_rules = await self._service.active_rules(BUDGET_EXCEEDED)
        refused, self._refused = self._refused, {}
        if not threshold_rules and not exceeded_rules:
            return 0
        if self._refresh is not None:
            await self._refresh()
        stored = 0
        for reading in await self._budgets.readings():
            stored += await self._thresholds(threshold_rules, reading)
            key = reading.budget.key
            was_refused = key in refused and refused[key] == reading.window.end
            if reading.used >= reading.budget.limit or was_refused:
                cause = "refused" if was_refused else "used"
                for rule in exceeded_rules:
                    mark = ThresholdMark(rule.id, _target(reading), EXCEEDED, reading.window.start)
                    stored += await self._fire(rule, BUDGET_EXCEEDED, reading, mark, None, cause)
        if len(self._known) > MAX_KNOWN:
            self._known.clear()
        return stored

    async def _thresholds(self, rules: Sequence[Rule], reading: BudgetReading) -> int:
        stored = 0
        for rule in rules:
            for threshold in reached_thresholds(rule.thresholds, Reading(reading.budget.limit, reading.used)):
                mark = ThresholdMark(rule.id, _target(reading), threshold.key, reading.window.start)
                stored += await self._fire(rule, BUDGET_THRESHOLD, reading, mark, threshold, None)
        return stored

    async def _fire(
        self,
        rule: Rule,
        event_type: str,
        reading: BudgetReading,
        mark: ThresholdMark,
        threshold: Threshold | None,
        cause: str | None,
    ) -> int:
        if mark in self._known:
            return 0
        if await self._service.store.has_mark(mark):
            self._known.add(mark)
            return 0
        data = budget_payload(reading)
        if threshold is not None:
            data["threshold"] = {"value": number(threshold.value), "type": threshold.type}
        if cause is not None:
            data["cause"] = cause
        event = await self._service.record(rule, event_type, data, mark=mark, subject_key=reading.budget.target)
        self._known.add(mark)
        return int(event is not None)


def _target(reading: BudgetReading) -> str:
    return f"budget:{reading.budget.id}"


def budget_payload(reading: BudgetReading) -> dict[str, Any]:
    """The data of a budget event: the budget (its settings as GET /api/v1/budgets/{id} shows them, and its
    current window) and its use now (`usage`, `balance`: what is left, `percent` of the limit)."""
    budget, window = reading.budget, reading.window
    return {
        "budget": {
            "id": budget.id,
            "key": budget.key,
            "name": budget.name,
            "scope": budget.scope,
            "target": budget.target,
            "kind": budget.kind,
            "limit": decimal_text(budget.limit),
            "window": budget.window,
            "hard": budget.hard,
            "currency": reading.currency,
            "windowStart": rfc3339(window.start),
            "resetsAt": rfc3339(window.end) if window.end is not None else None,
        },
        "value": {
            "usage": decimal_text(reading.used),
            "limit": decimal_text(reading.budget.limit),
            "balance": decimal_text(reading.remaining),
            "percent": decimal_text(_percent(reading.used, reading.budget.limit)),
        },
    }


def _percent(used: Decimal, limit: Decimal) -> Decimal:
    if limit <= 0:
        return Decimal(0)
    return (used * 100 / limit).quantize(Decimal("0.01"))

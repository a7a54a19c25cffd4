"""What an admitted call holds (`Hold`: settled or released exactly once), and how a refusal names its limit."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from tollway.errors import LimitExceededError
from tollway.metering.llm import LlmCall
from tollway.money import decimal_text
from tollway.spend.budgets import Budget
from tollway.spend.limits import Amount, Governed
from tollway.spend.ports import Ask, Counter, CounterStore
from tollway.spend.rate_limits import RateLimit, Slide
from tollway.spend.rates import RateText, Standing, rate_headers, rate_refusal_text, standing

HeldRate = tuple[int, RateLimit, Slide, RateText | None]
COST_HEADER = b"x-tollway-cost"
COST_CURRENCY_HEADER = COST_HEADER + b"-currency"
BUDGET_REMAINING_HEADER = b"x-tollway-budget-remaining"
BUDGET_NAME_HEADER = b"x-tollway-budget-name"
DEGRADED_HEADER = b"x-tollway-degraded"
# the distinct measures of a call's asks, the index among them of each ask's measure (None: the asks' measures are
# the distinct ones, in order), and of the cost's (-1: none)
Picks = tuple[tuple[Amount, ...], tuple[int, ...] | None, int]


class Hold:
    """What an admitted call holds; settled to the call's usage, or released, exactly once. After a settle,
    `cost` is what the call cost (in `currency`), and `budget_remaining` what the tightest budget has left;
    `rate_headers` say where the caller stands on its rate limits (in `family`'s format: openai | anthropic)."""

    __slots__ = (
        "_actual",
        "_asks",
        "_before",
        "_budgets",
        "_cost_of",
        "_done",
        "_measures",
        "_picks",
        "_rates",
        "_store",
        "at",
        "cost",
        "currency",
        "degraded",
        "family",
        "rewrite",
    )

    def __init__(
        self,
        store: CounterStore,
        asks: tuple[Ask, ...],
        measures: tuple[Amount, ...],
        *,
        cost_of: Amount | None = None,
        currency: str = "USD",
        before: tuple[Counter, ...] = (),
        budgets: tuple[tuple[int, str], ...] = (),  # (index of the ask, budget name) for each budget held
        # (index of the ask, the limit, where the call's moment falls in its window, its header values if kept) for
        # each sliding rate limit
        rates: tuple[HeldRate, ...] = (),
        at: datetime | None = None,
        picks: Picks | None = None,
    ) -> None:
        self._store = store
        self._picks = picks
        self._asks = asks
        self._measures = measures
        self._cost_of = cost_of
        self._before = before
        self._budgets = budgets
        self._rates = rates
        self._done = False
        self.cost: Decimal | None = None
        self.currency = currency
        self._actual: list[Decimal] | None = None
        self.at = at
        self.family = "openai"
        self.degraded: str | None = None  # what degradation changed (x-tollway-degraded), if any
        self.rewrite: dict[str, object] | None = None  # the request fields degradation changes (hooks.Degraded)

    @property
    def asks(self) -> tuple[Ask, ...]:
        return self._asks

    def settle(self, record: LlmCall) -> None:
        if self._done:
            return
        self._done = True
        picks = self._picks
        if picks is not None:  # the distinct measures worked out beforehand (a compiled plan's)
            distinct, each, cost_index = picks
            values = [amount_of(record) for amount_of in distinct]
            self._actual = actual = values if each is None else [values[index] for index in each]
            if self._cost_of is not None:
                self.cost = values[cost_index] if cost_index >= 0 else self._cost_of(record)
            self._store.settle(self._asks, actual)
            return
        measured: dict[Amount, Decimal] = {}  # limits that read the call the same way: measured once
        actual = []
        for amount_of in self._measures:
            amount = measured.get(amount_of)
            if amount is None:
                amount = measured[amount_of] = amount_of(record)
            actual.append(amount)
        self._actual = actual
        if self._cost_of is not None:
            cost = measured.get(self._cost_of)
            self.cost = self._cost_of(record) if cost is None else cost
        self._store.settle(self._asks, actual)

    def release(self) -> None:
        if self._done:
            return
        self._done = True
        self._store.release(self._asks)

    def budget_remaining(self) -> tuple[str, Decimal] | None:
        """The tightest budget on this call and what it has left after it (its worst case before a settle)."""
        tightest: tuple[str, Decimal] | None = None
        for index, name in self._budgets:
            ask, before = self._asks[index], self._before[index]
            spent = self._actual[index] if self._actual is not None else ask.amount
            left = (ask.limit or _ZERO) - before.used - before.reserved - spent
            if left < 0:
                left = _ZERO
            if tightest is None or left < tightest[1]:
                tightest = (name, left)
        return tightest

    def spend_headers(self) -> list[tuple[bytes, bytes]]:
        """The response's spend headers after the call: its cost (x-tollway-cost, x-tollway-cost-currency), what the
        tightest budget has left (x-tollway-budget-remaining, x-tollway-budget-name), the rate-limit headers, and
        what degradation changed (x-tollway-degraded): one call per response."""
        headers: list[tuple[bytes, bytes]] = []
        cost = self.cost
        if cost is not None:
            headers.append((COST_HEADER, decimal_text(cost).encode()))
            headers.append((COST_CURRENCY_HEADER, self.currency.encode()))
        if self._budgets:
            remaining = self.budget_remaining()
            if remaining is not None:
                headers.append((BUDGET_REMAINING_HEADER, decimal_text(remaining[1]).encode()))
                headers.append((BUDGET_NAME_HEADER, remaining[0].encode()))
        if self._rates:
            headers += self.rate_headers()
        if self.degraded:
            headers.append((DEGRADED_HEADER, self.degraded.encode()))
        return headers

    def rate_headers(self) -> list[tuple[bytes, bytes]]:
        """x-ratelimit-* (OpenAI) or anthropic-ratelimit-* (Anthropic) for the caller's rate limits, after this call."""
        if not self._rates or self.at is None:
            return []
        found = []
        actual, asks, before = self._actual, self._asks, self._before
        for index, rate, slide, text in self._rates:
            spent = actual[index] if actual is not None else asks[index].amount
            state = standing(rate, slide, before[index], spent, text)
            if state is not None:
                found.append(state)
        return rate_headers(self.family, found, self.at)


_ZERO = Decimal(0)
PREPAID_KEY = "prepaid-credits"


def prepaid_budget(customer_key: str, balance: Decimal) -> Budget:
    """A prepaid-only customer's credit balance as a hard money budget over the billing period: the period's
    spend so far, priced as its invoice prices it, plus what calls in flight hold, may not pass it."""
    return Budget(
        id=f"credits:{customer_key}",
        key=PREPAID_KEY,
        scope="customer",
        target=customer_key,
        kind="money",
        limit=balance,
        window="billing_period",
        name="prepaid credits",
    )


def prepaid_governed(budget: Budget, governed: Governed) -> Governed:
    if budget.key != PREPAID_KEY or not budget.id.startswith("credits:"):
        return governed
    key = budget.target
    return replace(
        governed,
        name="credits",
        what=f"the prepaid credit balance of customer '{key}'",
        per="this billing period",
        hint=f"Top up: POST /api/v1/customers/{key}/credits/grants (or set an auto-recharge).",
    )


class Degradable(Exception):
    """A call a budget with `on_exceeded: degrade` would refuse: `room` is what the budget has left, `amount_of`
    how a call counts on it; `refusal` is what the caller gets when no degraded call fits either."""

    def __init__(self, refusal: LimitExceededError, budget: Budget, room: Decimal, amount_of: Amount) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal
        self.budget = budget
        self.room = room
        self.amount_of = amount_of


class RateLimitExceeded(LimitExceededError):
    """A refusal at a rate limit: `standing` is where the caller stands on it (for its rate-limit headers)."""

    def __init__(self, message: str, *, wait_s: int, limit: str, at: datetime, standing: Standing | None) -> None:
        super().__init__(message, code="rate_limit_exceeded", retry_after_s=wait_s, limit=limit, resets_at=at)
        self.standing = standing
        self.at = at

    def with_headers(self, family: str, now: datetime) -> RateLimitExceeded:
        if self.standing is not None:
            self.headers = rate_headers(family, [self.standing], now)
        return self


def refusal(governed: Governed, counter: Counter, now: datetime) -> LimitExceededError:
    if governed.rate is not None:
        text, wait, at = rate_refusal_text(governed, counter, now)
        return RateLimitExceeded(
            text,
            wait_s=wait,
            limit=governed.name,
            at=at,
            standing=standing(governed.rate, governed.slide, counter, Decimal(0)),
        )
    used, reserved = counter.used, counter.reserved
    window = governed.window
    limit = governed.ask.limit or Decimal(0)
    resets = "never" if window.end is None else _time(window.end)
    held = f", {decimal_text(reserved)} held by calls in flight" if reserved else ""
    message = (
        f"Limit reached: {governed.what} allows {decimal_text(limit)} {governed.per} "
        f"({_time(governed.counted_from)} to {resets}); {decimal_text(used)} used{held}, and this request may "
        f"use up to {decimal_text(governed.ask.amount)}. It resets at {resets}."
    ) + (f" {governed.hint}" if governed.hint else "")
    return LimitExceededError(
        message,
        code="insufficient_quota",
        retry_after_s=window.seconds_left(now) or None,
        limit=governed.name,
        resets_at=window.end,
    )


def _time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")

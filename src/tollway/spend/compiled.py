"""A static plan compiled for its calls: the asks of a call worked out from integers, without a worst-case call.

A call's worst case on a target counts only input and output tokens (its prompt's tokens, and its output cap), so
every measure the gateway's built-in limits read is linear in them: a constant (requests), a count of token types
(tokens, input tokens, output tokens), or a price per token (a plan's plain unit prices; the target's provider
price). `Compiled` keeps each distinct measure of a static plan in that form and works out a call's asks from its
shape (the output cap; each target's input tokens and price): the same amounts, exact, as measuring the worst-case
call's record. The asks of the limits that do not slide (entitlements, budgets, calls in flight) are kept while
calls of the same shape follow each other (their amounts are the same); a sliding rate limit's ask is built per
call (its previous bucket's weight moves with the clock). A plan whose measures are not all linear (a filter on the
model or provider, a custom meter) is not compiled: its calls take `Plan.govern`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from tollway.errors import ForbiddenError
from tollway.metering.llm import TokenPrice
from tollway.spend.hold import HeldRate, Picks
from tollway.spend.limits import Amount, Governed, LinearCost
from tollway.spend.measure import FeatureMeasure
from tollway.spend.ports import Ask
from tollway.spend.rate_limits import EPOCH, WEIGHT_SCALE, RateLimit, Slide
from tollway.spend.rates import MEASURES, RateText, rate_governed
from tollway.spend.selection import Rated

# a measure's linear form: (CONSTANT, amount, _) | (TOKENS, per input token, per output token) (ints)
# | (MONEY, per input token, per output token) (Decimals) | (PROVIDER, _, _): the target's provider price
CONSTANT, TOKENS, MONEY, PROVIDER = 0, 1, 2, 3
Form = tuple[int, Decimal | int, Decimal | int]
Along = tuple[tuple[Amount, ...], Picks, tuple[tuple[int, str], ...], tuple[Governed, ...]]
Shape = tuple[int, tuple[tuple[int, TokenPrice | None], ...]]  # output tokens; (input tokens, price) per target
_ZERO = Decimal(0)
_ONE = Decimal(1)
_BY_FUNCTION: dict[Amount, Form] = {
    MEASURES["requests"]: (CONSTANT, _ONE, 0),
    MEASURES["in_flight"]: (CONSTANT, _ZERO, 0),
    MEASURES["tokens"]: (TOKENS, 1, 1),
    MEASURES["input_tokens"]: (TOKENS, 1, 0),
    MEASURES["output_tokens"]: (TOKENS, 0, 1),
}


def linear_form(amount_of: Amount) -> Form | None:
    """The measure's worst-case form, None where it reads more of a call than its token counts and price."""
    if isinstance(amount_of, LinearCost):
        return MONEY, amount_of.per_input, amount_of.per_output
    found = _BY_FUNCTION.get(amount_of)
    if found is not None:
        return found
    measure = getattr(amount_of, "__self__", None)
    if not isinstance(measure, FeatureMeasure) or getattr(amount_of, "__func__", None) is not FeatureMeasure.amount:
        return None
    kind = measure.worst_kind()
    if kind is None:
        return None
    if kind == "requests":
        return CONSTANT, _ONE, 0
    if kind == "cost":
        return PROVIDER, 0, 0
    types = measure.token_types()
    assert types is not None
    return TOKENS, int("input" in types), int("output" in types)


def _amount(form: Form, output: int, targets: tuple[tuple[int, TokenPrice | None], ...]) -> Decimal:
    """The measure of the worst case: the largest over the targets."""
    kind, per_input, per_output = form
    if not targets:  # no target to call: nothing (as `worst` of no calls)
        return _ZERO
    if kind == CONSTANT:
        assert isinstance(per_input, Decimal)
        return per_input
    if kind == TOKENS:  # integers; one Decimal at the end
        assert isinstance(per_input, int)
        assert isinstance(per_output, int)
        return Decimal(max(per_input * tokens for tokens, _ in targets) + per_output * output)
    found: Decimal | None = None
    for tokens, price in targets:
        amount: Decimal
        if kind == MONEY:
            assert isinstance(per_input, Decimal)
            assert isinstance(per_output, Decimal)
            amount = per_input * tokens + per_output * output
        elif price is None:
            amount = _ZERO  # a call without a price adds nothing to the provider cost
        else:
            amount = price.input * tokens + price.output * output
        if found is None or amount > found:
            found = amount
    return found if found is not None else _ZERO


class Compiled:
    """A static plan's limits, in `Plan.govern`'s order: entitlements (a template, or None for a gate the plan
    lacks), then rate limits, then budgets; each reading a call through one of `forms` (by index)."""

    __slots__ = (
        "_all",
        "_budgets",
        "_cost_of",
        "_entitled",
        "_fixed",
        "_rate_keys",
        "_rates",
        "_shape",
        "_sliding",
        "_texts",
        "along",
        "forms",
    )

    def __init__(
        self,
        forms: tuple[Form, ...],
        entitled: tuple[tuple[int, Governed | None, str, str], ...],  # (measure, template, feature, customer key)
        rates: tuple[tuple[int | None, Rated, Governed], ...],  # (measure or None: 1, the rate, a template)
        budgets: tuple[tuple[int, Governed], ...],
        cost_of: Amount | None,
    ) -> None:
        self.forms = forms
        self._cost_of = cost_of
        self._entitled = entitled
        self._rates = rates
        self._budgets = budgets
        # each sliding rate limit's keys in its current bucket: (bucket, key, previous key)
        self._rate_keys: list[tuple[int, str, str] | None] = [None] * len(rates)
        self._texts = tuple(RateText(rate.limit) for _, (rate, _, _), _ in rates)  # each rate limit's header values
        self._shape: Shape | None = None
        # for the last shape: its asks (_PLACEHOLDER in a sliding rate limit's place), all of them when none slides,
        # and of each sliding one: (place, index among the rates, amount, rate, window length in microseconds, fresh
        # TTL, header values)
        self._fixed: tuple[Ask, ...] = ()
        self._all: tuple[Ask, ...] = ()
        self._sliding: tuple[tuple[int, int, Decimal, RateLimit, int, int, RateText], ...] = ()
        # what goes with the last shape's asks: their measures, picks, budget names and templates (one tuple: read
        # at once with the asks, before an await after which another shape may have compiled)
        self.along: Along = ((), ((), (), -1), (), ())

    def asks(self, shape: Shape, now: datetime) -> tuple[tuple[Ask, ...], tuple[HeldRate, ...]]:
        """The call's asks, and (index of its ask, the rate limit, where now falls in it) of each sliding rate
        limit; ForbiddenError for a feature the plan does not include."""
        if shape != self._shape:
            self._compile(shape)
        sliding = self._sliding
        if not sliding:
            return self._all, ()
        since = now - EPOCH  # whole microseconds since the epoch (as slide_at counts them)
        micros = (since.days * 86_400 + since.seconds) * 1_000_000 + since.microseconds
        asks = list(self._fixed)  # a sliding rate limit's place (a placeholder) is filled in below
        slides: list[HeldRate] = []
        rate_keys = self._rate_keys
        for place, index, amount, rate, length, ttl_s, text in sliding:
            bucket, into = divmod(micros, length)
            weight = (length - into) * WEIGHT_SCALE // length
            keys = rate_keys[index]
            if keys is None or keys[0] != bucket:
                _, entity, _ = self._rates[index][1]
                base = f"rl:{rate.id}:{entity}"
                keys = rate_keys[index] = (bucket, f"{base}:{bucket}", f"{base}:{bucket - 1}")
            slides.append((place, rate, Slide(bucket, into, length, weight), text))
            asks[place] = Ask(keys[1], amount, rate.limit, None, ttl_s, keys[2], weight)
        return tuple(asks), tuple(slides)

    @property
    def measures(self) -> tuple[Amount, ...]:
        """How a settled call counts on each ask of the last shape."""
        return self.along[0]

    @property
    def picks(self) -> Picks:
        """The last shape's distinct measures, each ask's among them, and the cost's (what `Hold.settle` measures)."""
        return self.along[1]

    @property
    def budget_names(self) -> tuple[tuple[int, str], ...]:
        """(index of the ask, the budget's name) of each budget among the last shape's asks."""
        return self.along[2]

    @property
    def templates(self) -> tuple[Governed, ...]:
        """The limits of the last shape's asks (what decides fail-open or closed when the counters do not answer)."""
        return self.along[3]

    def _compile(self, shape: Shape) -> None:
        output, targets = shape
        amounts = [_amount(form, output, targets) for form in self.forms]
        fixed: list[Ask] = []  # _PLACEHOLDER: a sliding rate limit's place
        sliding: list[tuple[int, int, Decimal, RateLimit, int, int, RateText]] = []
        measures: list[Amount] = []
        templates: list[Governed] = []
        for index, template, feature, customer in self._entitled:
            amount = amounts[index]
            if amount <= 0:
                continue
            if template is None:
                raise ForbiddenError(
                    f"The plan of customer '{customer}' does not include the feature '{feature}' this request "
                    "would use.",
                    code="feature_not_entitled",
                )
            fixed.append(_with(template.ask, amount))
            measures.append(template.amount_of)
            templates.append(template)
        texts = self._texts
        for index, (measured, (rate, _, _), template) in enumerate(self._rates):
            measures.append(template.amount_of)
            templates.append(template)
            if rate.window is None:  # in flight: holds 1 while the call runs, the same ask every call
                fixed.append(template.ask)
            else:
                amount = _ONE if measured is None else amounts[measured]
                window_s = rate.window_s
                # the fresh TTL as rate_governed sets it: two windows and a minute
                sliding.append((len(fixed), index, amount, rate, window_s * 1_000_000, 2 * window_s + 60, texts[index]))
                fixed.append(_PLACEHOLDER)
        budgets: list[tuple[int, str]] = []
        for index, template in self._budgets:
            if template.name[:7] == "budget:":  # a budget's remainder header (prepaid credits, named "credits": not)
                budgets.append((len(fixed), template.name[7:]))
            fixed.append(_with(template.ask, amounts[index]))
            measures.append(template.amount_of)
            templates.append(template)
        self._fixed, self._sliding = tuple(fixed), tuple(sliding)
        self._all = () if sliding else self._fixed
        distinct = tuple(dict.fromkeys(measures))
        cost = self._cost_of
        cost_index = distinct.index(cost) if cost is not None and cost in distinct else -1
        each = tuple(distinct.index(m) for m in measures)
        picks = (distinct, None if len(distinct) == len(each) else each, cost_index)  # None: no measure twice
        self.along = (tuple(measures), picks, tuple(budgets), tuple(templates))
        self._shape = shape


_PLACEHOLDER = Ask("", _ZERO, None, None)  # a sliding rate limit's place among the kept asks (built per call)


def _with(ask: Ask, amount: Decimal) -> Ask:
    return Ask(ask.key, amount, ask.limit, ask.expires_at, ask.fresh_ttl_s, ask.previous, ask.weight)


def compile_plan(
    measures: Sequence[Amount],
    entitled: Sequence[tuple[int, Governed | None, str]],
    customer_key: str,
    rates: Sequence[tuple[int | None, Rated]],
    budgets: Sequence[tuple[int, Governed]],
    cost_of: Amount | None,
    now: datetime,
) -> Compiled | None:
    """A static plan's limits compiled, or None where one of its measures is not linear in a call's tokens."""
    forms = []
    for measure in measures:
        form = linear_form(measure)
        if form is None:
            return None
        forms.append(form)
    templated: list[tuple[int | None, Rated, Governed]] = []
    for measured, rated in rates:
        rate, entity, who = rated
        template = rate_governed(rate, entity, who, cost_of, (), now, amount=_ONE)
        if template is None:  # a cost limit on a call that cannot be priced: not compiled
            return None
        templated.append((measured, rated, template))
    return Compiled(
        tuple(forms),
        tuple((index, template, feature, customer_key) for index, template, feature in entitled),
        tuple(templated),
        tuple(budgets),
        cost_of,
    )

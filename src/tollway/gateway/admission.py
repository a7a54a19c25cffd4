"""Spend control at the gateway: a call's worst case, from its body, handed to the spend admission.

The worst case of a call on a target: its input tokens (exact where the target counts tokens itself,
as the simulator does; otherwise the conservative estimate below) and its output tokens (the request's
`max_completion_tokens`, `max_tokens` or `max_output_tokens`; without one, the model's configured
`max_output_tokens`, else the gateway default), priced with the target's price book entry. The spend
admission measures that call's events the way metering will measure the real one.

Conservative input estimate: one token per 3 bytes of the prompt's JSON text (English runs about 4
characters a token, CJK text about 3 UTF-8 bytes a token, and the JSON punctuation adds bytes), so it
errs high; a settled call counts what the provider reported.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

import orjson

from tollway.clock import Clock
from tollway.errors import ValidationError
from tollway.gateway.hooks import NO_RESERVATION, Admit, Reservation
from tollway.gateway.routing import Route, Target
from tollway.gateway.state import GatewayState
from tollway.gateway.token_count import count_input_tokens
from tollway.metering.llm import LlmCall, TokenUsage
from tollway.money import decimal_text, parse_decimal
from tollway.spend.admission import Estimate, SpendAdmission, SpendCall
from tollway.spend.compiled import Shape
from tollway.spend.hold import COST_CURRENCY_HEADER, COST_HEADER, Degradable, Hold, RateLimitExceeded

BYTES_PER_TOKEN = 3
OUTPUT_FIELDS = ("max_completion_tokens", "max_tokens", "max_output_tokens")
EMBEDDINGS = "/v1/embeddings"
RESPONSES = "/v1/responses"
MESSAGES = "/v1/messages"


def requested_output(payload: Mapping[str, Any] | None) -> int | None:
    """The output cap the request sets, if any (a positive integer)."""
    if payload is None:
        return None
    for name in OUTPUT_FIELDS:
        value = payload.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    generation = payload.get("generationConfig")
    if generation is not None and isinstance(generation, Mapping):  # (an ABC check costs: skipped when absent)
        value = generation.get("maxOutputTokens")
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def output_field(endpoint: str, payload: Mapping[str, Any] | None) -> str | None:
    """The request field that caps its output: the one it sets, else the endpoint's own; None where a call
    cannot be degraded to fewer output tokens (embeddings, the Gemini format)."""
    if embeds(endpoint) or ":" in endpoint:
        return None
    for name in OUTPUT_FIELDS:
        if payload is not None and name in payload:
            return name
    return "max_output_tokens" if endpoint == RESPONSES else "max_tokens"


def most_output(cases: Sequence[LlmCall], room: Decimal, amount_of: Callable[[LlmCall], Decimal], most: int) -> int:
    """The most output tokens (at most `most`; 0 when none) with which every case counts no more than `room`."""

    def fits(output: int) -> bool:
        return all(
            amount_of(replace(case, usage=replace(case.usage, output=output))) <= room
            for case in cases
            if case.usage is not None
        )

    low, high = 0, max(most, 0)
    if not fits(0):
        return 0
    while low < high:  # the largest output that fits (what a call costs grows with its output)
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return low


def conservative_tokens(value: object) -> int:
    """One token per 3 bytes of the value's JSON text, rounded up."""
    return -(-len(orjson.dumps(value)) // BYTES_PER_TOKEN)


def embeds(endpoint: str) -> bool:
    """An embeddings call (OpenAI's, or Gemini's embedContent / batchEmbedContents): input tokens only."""
    return endpoint == EMBEDDINGS or endpoint.endswith(("}:embedContent", "}:batchEmbedContents"))


def input_tokens(endpoint: str, target: Target, payload: Mapping[str, Any], prompt: Mapping[str, Any] | None) -> int:
    """The call's input tokens on `target`: exact where the target counts them, else the conservative estimate."""
    if embeds(endpoint):
        return conservative_tokens(payload.get("input"))
    counts = getattr(target.provider, "count_prompt_tokens", None)  # token_count.CountsTokens (no slow isinstance)
    if counts is not None:
        if endpoint == MESSAGES:
            return count_input_tokens(Route(target.model, (target,)), dict(payload))[0]
        if prompt is not None:
            return int(counts(prompt))
    relevant = prompt if prompt is not None else payload
    if type(relevant) is dict and not (
        "max_completion_tokens" in relevant or "max_tokens" in relevant or "max_output_tokens" in relevant
    ):  # OUTPUT_FIELDS: nothing to leave out, the same JSON text without a copy
        return conservative_tokens(relevant)
    return conservative_tokens({k: v for k, v in relevant.items() if k not in OUTPUT_FIELDS})


class GatewayAdmission:
    """The flow's admission hook over spend control (gateway.hooks.Admission)."""

    def __init__(
        self,
        spend: SpendAdmission,
        state: Callable[[], GatewayState],
        clock: Clock,
        *,
        default_max_tokens: int = 4096,
    ) -> None:
        self._spend = spend
        self._clock = clock
        self._state = state
        self._default_max_tokens = default_max_tokens

    async def admit(self, call: Admit) -> Reservation:
        consumer = call.consumer
        if call.route is None:
            return NO_RESERVATION
        request_budget, task, task_budget = agent_budgets(call.headers)
        now = self._clock.now()
        plan = self._spend.plan(consumer.username, consumer.key_id, call.route.model, now)
        if request_budget is None and task_budget is None and not plan.needs_worst:
            return ProviderCost()  # nothing limits or prices the call: no worst case to compute
        family = "anthropic" if call.endpoint == MESSAGES else "openai"
        try:
            try:
                hold: Hold | Literal[False] | None = False
                if plan.compiled is not None and request_budget is None and task_budget is None:
                    # the caller's plan is compiled: its asks from the call's token counts (no worst-case calls)
                    hold = await self._spend.admit_compiled(plan, self._shape(call, call.route), now)
                if hold is False:  # the general way (also: a counter to seed, or a refusal to word)
                    spend_call = self._spend_call(call, call.route, request_budget, task, task_budget, now)
                    hold = await self._spend.admit(spend_call, plan=plan, now=now)
            except Degradable as degradable:
                hold = await self._degrade(call, call.route, degradable, request_budget, task, task_budget)
        except RateLimitExceeded as exc:
            exc.with_headers(family, self._clock.now())
            raise
        if hold is None:
            return ProviderCost()
        hold.family = family
        return hold

    async def _degrade(
        self,
        call: Admit,
        route: Route,
        degradable: Degradable,
        request_budget: Decimal | None,
        task: str | None,
        task_budget: Decimal | None,
    ) -> Hold | None:
        """The call degraded as its budget says (a cheaper model, or fewer output tokens), admitted without a
        second degradation; the budget's refusal where no degraded call fits."""
        budget = degradable.budget
        if budget.route_to is not None:
            cheaper = self._state().router.resolve(call.consumer, budget.route_to)
            if cheaper is None or cheaper.model == route.model:
                raise degradable.refusal
            spend_call = self._spend_call(call, cheaper, request_budget, task, task_budget)
            hold = await self._spend.admit(spend_call, degrade=False)
            if hold is not None:
                hold.rewrite, hold.degraded = {"model": budget.route_to}, f"model={budget.route_to}"
            return hold
        field = output_field(call.endpoint, call.payload)
        cases = self.worst_cases(call, route)
        most = max((case.usage.output for case in cases if case.usage is not None), default=0)
        fewer = most_output(cases, degradable.room, degradable.amount_of, most - 1)
        if field is None or fewer < 1:
            raise degradable.refusal
        spend_call = self._spend_call(call, route, request_budget, task, task_budget)
        spend_call = replace(spend_call, worst_cases=self.worst_cases(call, route, output=fewer))
        hold = await self._spend.admit(spend_call, degrade=False)
        if hold is not None:
            hold.rewrite, hold.degraded = {field: fewer}, f"max_tokens={fewer}"
        return hold

    def _spend_call(
        self,
        call: Admit,
        route: Route,
        request_budget: Decimal | None,
        task: str | None,
        task_budget: Decimal | None,
        now: datetime | None = None,
    ) -> SpendCall:
        return SpendCall(
            call.request_id,
            call.consumer.username,
            self.worst_cases(call, route, now=now),
            request_budget=request_budget,
            task=task,
            task_budget=task_budget,
            key_id=call.consumer.key_id,
            model=route.model,
        )

    async def estimate(self, call: Admit) -> Estimate:
        """POST /v1/cost/estimate: the call's cost range and whether its limits would let it through now."""
        assert call.route is not None
        request_budget, task, task_budget = agent_budgets(call.headers)
        spend_call = self._spend_call(call, call.route, request_budget, task, task_budget)
        return await self._spend.estimate(spend_call, self.worst_cases(call, call.route, output=0))

    def worst_cases(
        self, call: Admit, route: Route, *, output: int | None = None, now: datetime | None = None
    ) -> tuple[LlmCall, ...]:
        """The call's worst case on each target it may reach (`output`: its output tokens instead of the most)."""
        if output is None:
            output = self._output(call, route)
        prices = self._state().prices
        cases: list[LlmCall] = []
        if now is None:
            now = self._clock.now()
        for target, tokens in self._input_tokens(call, route):
            provider = target.provider.name
            cases.append(
                LlmCall(
                    request_id=call.request_id,
                    subject=call.consumer.username,
                    time=now,
                    model=route.model,
                    upstream_model=target.model,
                    provider=provider,
                    route=call.endpoint,
                    status_code=200,
                    streamed=call.stream,
                    usage=TokenUsage(input=tokens, output=output),
                    price=prices.get((provider, target.model)),
                )
            )
        return tuple(cases)

    def _shape(self, call: Admit, route: Route) -> Shape:
        """The call's worst case as a compiled plan reads it: its output tokens, and its input tokens and provider
        price on each target (what `worst_cases` builds its calls from)."""
        prices = self._state().prices
        targets = route.targets
        if len(targets) == 1:  # one target: its input tokens as `_input_tokens` works them out, without its lists
            target = targets[0]
            payload = call.payload or {}
            try:
                tokens = input_tokens(call.endpoint, target, payload, call.prompt)
            except ValidationError:
                tokens = conservative_tokens(payload)
            return self._output(call, route), ((tokens, prices.get((target.provider.name, target.model))),)
        inputs = self._input_tokens(call, route)
        found = tuple((tokens, prices.get((target.provider.name, target.model))) for target, tokens in inputs)
        return self._output(call, route), found

    def _output(self, call: Admit, route: Route) -> int:
        """The call's most output tokens: the request's cap, else the model's, else the gateway default."""
        if embeds(call.endpoint):
            return 0
        return requested_output(call.payload) or route.max_output_tokens or self._default_max_tokens

    @staticmethod
    def _input_tokens(call: Admit, route: Route) -> list[tuple[Target, int]]:
        """The call's input tokens on each target of the route."""
        payload = call.payload or {}
        found: list[tuple[Target, int]] = []
        estimate: int | None = None  # the conservative estimate: the same on every target that counts no tokens
        for target in route.targets:
            counting = getattr(target.provider, "count_prompt_tokens", None) is not None
            if estimate is not None and not counting:
                tokens = estimate
            else:
                try:
                    tokens = input_tokens(call.endpoint, target, payload, call.prompt)
                except ValidationError:
                    tokens = conservative_tokens(payload)
                if not counting:
                    estimate = tokens
            found.append((target, tokens))
        return found


ZERO = Decimal(0)


class ProviderCost:
    """The reservation of a call nothing limits: it holds nothing and reports the provider cost in USD."""

    __slots__ = ("cost", "currency")

    def __init__(self) -> None:
        self.cost: Decimal | None = None
        self.currency = "USD"

    def settle(self, record: LlmCall) -> None:
        # Every call of the default mode passes here (x-tollway-cost): the products of the token types the call
        # used, read straight from the record (no per-type dicts, no product of a zero count).
        usage, price = record.usage, record.price
        if usage is None or price is None:
            self.cost = ZERO
            return
        cost = price.input * usage.input + price.output * usage.output
        if usage.cache_read:
            cost += (price.input if price.cache_read is None else price.cache_read) * usage.cache_read
        if usage.cache_write:
            cost += (price.input if price.cache_write is None else price.cache_write) * usage.cache_write
        self.cost = cost

    def release(self) -> None:
        return None

    def budget_remaining(self) -> tuple[str, Decimal] | None:
        return None

    def rate_headers(self) -> list[tuple[bytes, bytes]]:
        return []

    def spend_headers(self) -> list[tuple[bytes, bytes]]:
        cost = self.cost
        if cost is None:
            return []
        return [(COST_HEADER, decimal_text(cost).encode()), (COST_CURRENCY_HEADER, self.currency.encode())]


BUDGET_HEADER = b"x-tollway-budget"
TASK_HEADER = b"x-tollway-task"
TASK_BUDGET_HEADER = b"x-tollway-task-budget"
TASK_ID = re.compile(r"[A-Za-z0-9._:/@-]{1,128}")


def agent_budgets(headers: Sequence[tuple[bytes, bytes]]) -> tuple[Decimal | None, str | None, Decimal | None]:
    """x-tollway-budget (the most this call may cost), x-tollway-task and x-tollway-task-budget (the most the
    task's calls may cost together), in the customer's currency (USD without a plan); a bad value is a 400."""
    budget = task = task_budget = None
    for name, value in headers:
        if not name.startswith(b"x-tollway-"):
            continue
        if name == BUDGET_HEADER:
            budget = _money(value, "x-tollway-budget")
        elif name == TASK_HEADER:
            text = value.decode("latin-1").strip()
            if not TASK_ID.fullmatch(text):
                raise ValidationError(
                    "x-tollway-task must be 1-128 letters, digits or . _ : / @ -", field="x-tollway-task"
                )
            task = text
        elif name == TASK_BUDGET_HEADER:
            task_budget = _money(value, "x-tollway-task-budget")
    if (task is None) != (task_budget is None):
        raise ValidationError(
            "x-tollway-task and x-tollway-task-budget go together: the task's id and its budget", field="x-tollway-task"
        )
    return budget, task, task_budget


def _money(value: bytes, header: str) -> Decimal:
    amount = parse_decimal(value.decode("latin-1").strip(), field=header)
    if amount <= 0:
        raise ValidationError(f"{header} must be > 0", field=header)
    return amount

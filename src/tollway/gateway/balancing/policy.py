"""The gateway's target policy: which targets a request tries, in which order, and what each try taught us.

Per model, the targets are split into priority groups (lowest first); within a group the model's
strategy orders the usable ones. A target is skipped without a network call while its breaker is
open, while it cools down after a 429 with Retry-After, or while it is over its budget for the
minute. A half-open target's one probe goes first in the order of the request that carries it
(the flow fails over to the next target if the probe fails). When no target of a model is usable,
the request fails fast in the caller's shape, a 429 with Retry-After when its targets are only rate
limited (cooling down, over budget), else a 503; nothing is recorded (no upstream call).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from tollway.clock import Clock
from tollway.errors import DomainError, RateLimitedError, UnavailableError
from tollway.gateway.balancing.breaker import CLOSED, Breaker
from tollway.gateway.balancing.budgets import Budget
from tollway.gateway.balancing.fleet import Exchange, forget, take
from tollway.gateway.balancing.metrics import TargetMetrics
from tollway.gateway.balancing.settings import BalancedModel, BalancedTarget, BalanceSettings, HealthCheckSettings
from tollway.gateway.balancing.state import TargetKey, TargetState
from tollway.gateway.balancing.strategies import (
    Cheapest,
    Entry,
    LowestLatency,
    Strategy,
    least_busy,
    priority,
    weighted,
)
from tollway.gateway.hooks import Admit, Attempt
from tollway.gateway.routing import Route, Target
from tollway.metering.llm import TokenPrice


class Plan:
    """One model's targets, grouped, with its strategy."""

    __slots__ = (
        "cached",
        "cached_for",
        "dynamic",
        "entries",
        "groups",
        "model",
        "plain",
        "schedule",
        "states",
        "strategy",
        "turn",
    )

    def __init__(self, model: str, entries: list[Entry], strategy: Strategy) -> None:
        self.model = model
        self.entries = entries
        self.states = tuple(entry.state for entry in entries)
        numbers = sorted({entry.group for entry in entries})
        self.groups = tuple([e for e in entries if e.group == number] for number in numbers)
        self.strategy = strategy
        # the configured order, unless a target is unusable: nothing to compute per request
        self.plain = strategy is priority and len(self.groups) == 1
        # without breakers and budgets only a cool-down makes a target unusable
        self.dynamic = any(state.breaker is not None or state.budget is not None for state in self.states)
        # weighted over one group: one period of the round-robin worked out once, followed turn by turn while
        # every target is usable (the route's targets for each turn cached for the route seen first)
        self.schedule = _schedule(entries) if strategy is weighted and len(self.groups) == 1 else None
        self.turn = 0
        self.cached_for: tuple[Target, ...] | None = None
        self.cached: tuple[tuple[Target, ...], ...] = ()

    def quiet(self) -> bool:
        """Every target usable, known without reading the clock (no breaker, no budget, nothing cooling down)."""
        if self.dynamic:
            return False
        for state in self.states:  # noqa: SIM110 (a plain loop: no generator object per request)
            if state.cool_until:
                return False
        return True

    def next_turn(self, targets: tuple[Target, ...]) -> Sequence[Target]:
        """The next turn of the weighted schedule, as these targets."""
        schedule = self.schedule
        assert schedule is not None
        turn = self.turn
        self.turn = turn + 1 if turn + 1 < len(schedule) else 0
        if targets is self.cached_for:
            return self.cached[turn]
        if self.cached_for is None:
            self.cached_for = targets
            self.cached = tuple(tuple(targets[i] for i in order) for order in schedule)
            return self.cached[turn]
        return [targets[i] for i in schedule[turn]]  # another view of the route (an endpoint's adapters)

    def order_all(self, call: Admit) -> list[Entry]:
        """The order when every target is usable."""
        if len(self.groups) == 1:
            return self.strategy(self.groups[0], call)
        ordered: list[Entry] = []
        for group in self.groups:
            ordered.extend(self.strategy(group, call))
        return ordered

    def order(self, now: float, call: Admit) -> list[Entry] | None:
        """The entries to try in order; None: all of them, as configured."""
        if self.plain and all(entry.state.ready(now) for entry in self.entries):
            return None
        probe: Entry | None = None
        ordered: list[Entry] = []
        for group in self.groups:
            usable: list[Entry] = []
            for entry in group:
                state = entry.state
                if not state.usable(now):
                    continue
                if state.breaker is not None and state.breaker.state != CLOSED:
                    if probe is None:  # one probe per request; another recovering target waits for the next
                        probe = entry
                    continue
                usable.append(entry)
            if usable:
                ordered.extend(self.strategy(usable, call))
        if probe is not None:
            breaker = probe.state.breaker
            assert breaker is not None
            breaker.claim_probe(now)
            ordered.insert(0, probe)
        return ordered


@dataclass(frozen=True, slots=True)
class HealthTarget:
    """A target to check actively: its state, provider name, upstream model and check settings."""

    state: TargetState
    provider: str
    model: str
    settings: HealthCheckSettings


class BalancingPolicy:
    """The TargetPolicy routing fills (tollway.gateway.hooks); reconfigured in place on reload."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._plans: dict[str, Plan] = {}
        self._states: dict[TargetKey, TargetState] = {}
        self.health_targets: tuple[HealthTarget, ...] = ()
        self._timed: tuple[TargetState, ...] = ()  # the targets of lowest_latency models
        self.metrics = TargetMetrics(lambda: list(self._states.values()), self.now)
        # shared routing state (adapters/redis/routing.py): told of breaker moves and cool-downs made here
        self.share: Callable[[str, str, int, float], None] | None = None

    def now(self) -> float:
        return self._clock.now().timestamp()

    # configuration ---------------------------------------------------------------------------------------

    def configure(self, models: Sequence[BalancedModel], prices: Mapping[tuple[str, str], TokenPrice]) -> None:
        """Build the plans for these models. A target whose provider (type, URL), breaker, budget and
        balancing settings did not change keeps its state (breaker, latency averages, cool-down)."""
        states: dict[TargetKey, TargetState] = {}
        plans: dict[str, Plan] = {}
        health: list[HealthTarget] = []
        for model in models:
            entries: list[Entry] = []
            for index, target in enumerate(model.targets):
                key = (target.provider, target.model)
                state = states.get(key)
                if state is None:
                    state = states[key] = self._state(key, model, target)
                    if model.health_check is not None:
                        health.append(HealthTarget(state, target.provider, target.model, model.health_check))
                price = prices.get(key)
                entries.append(Entry(index, state, weight=target.weight, group=target.group, price=price))
            plans[model.name] = Plan(model.name, entries, _strategy(model.balance))
        timed = {
            e.state.key: e.state for p in plans.values() if isinstance(p.strategy, LowestLatency) for e in p.entries
        }
        self._plans, self._states, self.health_targets = plans, states, tuple(health)
        self._timed = tuple(timed.values())

    def _state(self, key: TargetKey, model: BalancedModel, target: BalancedTarget) -> TargetState:
        budget = target.budget
        fingerprint = (target.upstream, model.breaker, budget, model.balance.ewma_alpha)
        kept = self._states.get(key)
        if kept is not None and kept.fingerprint == fingerprint:
            return kept
        breaker = Breaker(model.breaker, f"{key[0]}/{key[1]}") if model.breaker is not None else None
        if breaker is not None:
            breaker.listener = self._breaker_moved
        return TargetState(
            key,
            fingerprint,
            breaker=breaker,
            budget=Budget(budget) if budget is not None else None,
            alpha=model.balance.ewma_alpha,
        )

    def _breaker_moved(self, breaker: Breaker) -> None:
        if self.share is not None:
            self.share("breaker", breaker.name, breaker.state, breaker.opened_at)

    def adopt(self, kind: str, label: str, state: int, at: float) -> None:
        """A breaker move or a cool-down another process shared (off the request path)."""
        found = self._states.get(_key(label))
        if found is None:
            return
        if kind == "cool":
            found.cool_until = max(found.cool_until, at)
        elif kind == "breaker" and found.breaker is not None:
            found.breaker.adopt(state, at, self._clock.now().timestamp())

    def exchange(self) -> Exchange:
        """What this process counted since the last exchange with the others (fleet.py; off the request path)."""
        return take(self._states.values(), self._timed, self.now)

    def forget(self) -> None:
        """The others are out of reach: count alone until they are back."""
        forget(self._states.values())

    # the TargetPolicy hooks (hot path) -------------------------------------------------------------------

    def targets(self, route: Route, call: Admit) -> Sequence[Target]:
        plan = self._plans.get(route.model)
        if plan is None or len(plan.entries) != len(route.targets):
            return route.targets
        if plan.quiet():  # the common case: no clock, no filtering
            if plan.plain:
                return route.targets
            if plan.schedule is not None:
                return plan.next_turn(route.targets)
            targets = route.targets
            return [targets[entry.index] for entry in plan.order_all(call)]
        now = self._clock.now().timestamp()
        order = plan.order(now, call)
        if order is None:
            return route.targets
        if not order:
            raise _refusal(route.model, plan, now)
        targets = route.targets
        return [targets[entry.index] for entry in order]

    def started(self, target: Target) -> None:
        state = self._states.get((target.provider.name, target.model))
        if state is None:
            return
        state.in_flight += 1
        if state.budget is not None:
            state.budget.take_request(self._clock.now().timestamp())
        self.metrics.attempts.inc(state.key)

    def finished(self, attempt: Attempt) -> None:
        target = attempt.target
        state = self._states.get((target.provider.name, target.model))
        if state is None:
            return
        if state.in_flight > 0:
            state.in_flight -= 1
        cause = attempt.cause
        breaker = state.breaker
        metrics = self.metrics
        if cause == "skipped":
            if breaker is not None:
                breaker.released()
            return
        if attempt.ttfb_s is not None:
            metrics.ttfb.observe(attempt.ttfb_s, state.key)
        metrics.duration.observe(attempt.total_s, state.key)
        if cause == "ok":
            state.observe_latency(attempt.ttfb_s, attempt.total_s)
            if breaker is not None:
                breaker.success(self._clock.now().timestamp())
            return
        metrics.failures.inc((*state.key, cause))
        now = self._clock.now().timestamp()
        if cause == "timeout":
            state.observe_latency(attempt.total_s, attempt.total_s)  # at least this slow
        retry_after = attempt.retry_after_s
        if retry_after is not None and retry_after > 0 and now + retry_after > state.cool_until:
            state.cool_until = now + retry_after
            if self.share is not None:
                self.share("cool", state.label, 0, state.cool_until)
        if attempt.status == 429:
            # rate limited, not broken: the cool-down (or the budget) handles it, the breaker does not count it
            if breaker is not None:
                breaker.released()
            return
        if breaker is not None:
            breaker.failure(now)

    def spent(self, provider: str, model: str, tokens: int) -> None:
        """Tokens a target's answer used (for tokens_per_minute budgets)."""
        state = self._states.get((provider, model))
        if state is not None and state.budget is not None:
            state.budget.take_tokens(self._clock.now().timestamp(), tokens)

    # health checks and visibility ------------------------------------------------------------------------

    def health(self, state: TargetState, ok: bool) -> None:
        """An active health check's outcome, fed to the target's breaker."""
        if state.breaker is None:
            return
        now = self._clock.now().timestamp()
        if ok:
            if state.breaker.state != CLOSED and now < state.breaker.reopens_at():
                return  # an open breaker waits out its cool-down; the probe after it decides
            state.breaker.success(now)
        else:
            state.breaker.failure(now)

    def unusable_models(self) -> list[str]:
        """Models none of whose targets may take a request now (for /readyz)."""
        now = self._clock.now().timestamp()
        return sorted(name for name, plan in self._plans.items() if not any(e.state.usable(now) for e in plan.entries))

    def states(self) -> Iterator[TargetState]:
        return iter(self._states.values())


def _key(label: str) -> TargetKey:
    provider, _, model = label.partition("/")
    return provider, model


def _refusal(model: str, plan: Plan, now: float) -> DomainError:
    """No target can take the request: 429 with Retry-After when they are only rate limited (cooling down
    after a 429, over their budget), else 503 (a breaker is open)."""
    wait = max(1, math.ceil(min(entry.state.usable_at(now) for entry in plan.entries) - now - 1e-6))
    if all(entry.state.breaker is None or entry.state.breaker.state == CLOSED for entry in plan.entries):
        return RateLimitedError(
            f"Every target of the model '{model}' is at its rate limit (cooling down after a 429, or over its "
            f"budget for the minute); try again in {wait} s.",
            retry_after_s=wait,
            code="targets_rate_limited",
        )
    return UnavailableError(
        f"No target of the model '{model}' can take a request now (circuit open, cooling down after a rate "
        f"limit, or over its budget); try again in {wait} s.",
        code="no_usable_target",
    )


MAX_SCHEDULE = 1000  # turns; larger weight sums are balanced request by request instead


def _schedule(entries: list[Entry]) -> tuple[tuple[int, ...], ...] | None:
    """One period of smooth weighted round-robin (as `weighted` picks it): per turn, the indexes in order."""
    period = sum(entry.weight for entry in entries)
    if period > MAX_SCHEDULE:
        return None
    current = [0] * len(entries)
    turns: list[tuple[int, ...]] = []
    for _ in range(period):
        best = 0
        for position, entry in enumerate(entries):
            current[position] += entry.weight
            if current[position] > current[best]:
                best = position
        current[best] -= period
        rest = tuple(entry.index for position, entry in enumerate(entries) if position != best)
        turns.append((entries[best].index, *rest))
    return tuple(turns)


def _strategy(balance: BalanceSettings) -> Strategy:
    if balance.strategy == "weighted":
        return weighted
    if balance.strategy == "least_busy":
        return least_busy
    if balance.strategy == "cost":
        return Cheapest(balance.expected_input_tokens, balance.expected_output_tokens)
    if balance.strategy == "lowest_latency":
        return LowestLatency(balance.explore, balance.seed, balance.probe_every)
    return priority

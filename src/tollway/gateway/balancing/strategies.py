"""Balancing strategies: the order in which the usable targets of one group are tried.

Each takes the group's usable entries (in configured order) and returns them ordered, first choice
first. They are called once per request, so they keep to a few comparisons and one small list.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from decimal import Decimal

from tollway.gateway.balancing.state import TargetState
from tollway.gateway.hooks import Admit
from tollway.gateway.usage import estimate_prompt_tokens
from tollway.metering.llm import TokenPrice


class Entry:
    """One target of one model: its position in the route, its weight and group, and its shared state."""

    __slots__ = ("current", "group", "index", "passed", "price", "state", "weight")

    def __init__(self, index: int, state: TargetState, *, weight: int, group: int, price: TokenPrice | None) -> None:
        self.index = index
        self.state = state
        self.weight = weight
        self.group = group
        self.price = price  # per token at this target, from the price book (None: unknown)
        self.current = 0  # smooth weighted round-robin's running weight
        self.passed = 0  # lowest_latency: requests since this entry last went first


Strategy = Callable[[list[Entry], Admit], list[Entry]]


def priority(entries: list[Entry], call: Admit) -> list[Entry]:
    """The configured order."""
    return entries


def weighted(entries: list[Entry], call: Admit) -> list[Entry]:
    """Smooth weighted round-robin (as nginx): every entry gains its weight, the richest is chosen and pays
    the total. Weights 3:1 give A A B A, A A B A, ... The others follow in configured order."""
    if len(entries) == 1:
        return entries
    total = 0
    best = entries[0]
    for entry in entries:
        entry.current += entry.weight
        total += entry.weight
        if entry.current > best.current:
            best = entry
    best.current -= total
    if best is entries[0]:
        return entries
    return [best, *(entry for entry in entries if entry is not best)]


def least_busy(entries: list[Entry], call: Admit) -> list[Entry]:
    """Fewest tries in flight first; ties in configured order."""
    return sorted(entries, key=_in_flight)


class Cheapest:
    """Cheapest call first by the price book: the call's prompt tokens as the gateway estimates them (the
    configured `expected_input_tokens` when the call carries no prompt) plus `expected_output_tokens`.
    Targets without a known price last; ties in configured order."""

    def __init__(self, expected_input_tokens: int, expected_output_tokens: int) -> None:
        self._input = expected_input_tokens
        self._output = expected_output_tokens

    def __call__(self, entries: list[Entry], call: Admit) -> list[Entry]:
        if len(entries) == 1:
            return entries
        tokens = estimate_prompt_tokens(call.prompt) if call.prompt is not None else self._input
        output = self._output

        def cost(entry: Entry) -> tuple[bool, Decimal]:
            price = entry.price
            if price is None:
                return (True, Decimal(0))
            return (False, price.input * tokens + price.output * output)

        return sorted(entries, key=cost)


class LowestLatency:
    """Lowest moving average first: time to first byte for streams, total duration otherwise. A target
    with no sample yet counts as fastest (so it gets sampled). So that a target that was slow is sampled
    again and wins traffic back once it has recovered, a random usable target goes first with probability
    `explore`, and a target passed over `probe_every` requests in a row goes first once (0: never)."""

    def __init__(self, explore: float, seed: int | None, probe_every: int) -> None:
        self._explore = explore
        self._random = random.Random(seed)
        self._probe_every = probe_every

    def __call__(self, entries: list[Entry], call: Admit) -> list[Entry]:
        if len(entries) == 1:
            return entries
        stream = call.stream
        chosen: Entry | None = None
        if self._probe_every:
            for entry in entries:
                if entry.passed >= self._probe_every:
                    chosen = entry
                    break
        if chosen is None and self._explore and self._random.random() < self._explore:
            chosen = entries[self._random.randrange(len(entries))]
        if chosen is None:
            ordered = sorted(entries, key=_ttfb if stream else _total)
            chosen = ordered[0]
        else:
            ordered = [chosen, *(entry for entry in entries if entry is not chosen)]
        for entry in entries:
            entry.passed += 1
        chosen.passed = 0
        return ordered


def _in_flight(entry: Entry) -> int:
    return entry.state.in_flight


def _ttfb(entry: Entry) -> float:
    value = entry.state.ewma_ttfb
    if value is None:
        value = entry.state.ewma_total
    return 0.0 if value is None else value


def _total(entry: Entry) -> float:
    value = entry.state.ewma_total
    return 0.0 if value is None else value

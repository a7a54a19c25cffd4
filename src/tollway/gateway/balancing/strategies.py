"""Balancing strategies: the order in which the usable targets of one group are tried.

Each takes the group's usable entries (in configured order) and returns them ordered, first choice
first. They are called once per request, so they keep to a few comparisons and one small list.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

from tollway.gateway.balancing.state import TargetState


class Entry:
    """One target of one model: its position in the route, its weight and group, and its shared state."""

    __slots__ = ("cost", "current", "group", "index", "passed", "state", "weight")

    def __init__(self, index: int, state: TargetState, *, weight: int, group: int, cost: float) -> None:
        self.index = index
        self.state = state
        self.weight = weight
        self.group = group
        self.cost = cost  # the expected request's price at this target (inf when the price is unknown)
        self.current = 0  # smooth weighted round-robin's running weight
        self.passed = 0  # lowest_latency: requests since this entry last went first


Strategy = Callable[[list[Entry], bool], list[Entry]]


def priority(entries: list[Entry], stream: bool) -> list[Entry]:
    """The configured order."""
    return entries


def weighted(entries: list[Entry], stream: bool) -> list[Entry]:
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


def least_busy(entries: list[Entry], stream: bool) -> list[Entry]:
    """Fewest tries in flight first; ties in configured order."""
    return sorted(entries, key=_in_flight)


def cheapest(entries: list[Entry], stream: bool) -> list[Entry]:
    """Cheapest expected request first (targets without a known price last); ties in configured order."""
    return sorted(entries, key=_cost)


class LowestLatency:
    """Lowest moving average first: time to first byte for streams, total duration otherwise. A target
    with no sample yet counts as fastest (so it gets sampled). So that a target that was slow is sampled
    again and wins traffic back once it has recovered, a random usable target goes first with probability
    `explore`, and a target passed over `probe_every` requests in a row goes first once (0: never)."""

    def __init__(self, explore: float, seed: int | None, probe_every: int) -> None:
        self._explore = explore
        self._random = random.Random(seed)
        self._probe_every = probe_every

    def __call__(self, entries: list[Entry], stream: bool) -> list[Entry]:
        if len(entries) == 1:
            return entries
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


def _cost(entry: Entry) -> float:
    return entry.cost


def _ttfb(entry: Entry) -> float:
    value = entry.state.ewma_ttfb
    if value is None:
        value = entry.state.ewma_total
    return 0.0 if value is None else value


def _total(entry: Entry) -> float:
    value = entry.state.ewma_total
    return 0.0 if value is None else value


UNKNOWN_COST = math.inf

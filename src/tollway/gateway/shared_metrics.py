"""One /metrics for `tollway serve --workers N`: every worker's counters and histograms, summed at each scrape.

Each worker writes its own exposition to `<TOLLWAY_METRICS_DIR>/<pid>.prom` (atomically: a temporary file
renamed) every `interval_s` and whenever it answers a scrape; the worker that answers reads every file and
sums the samples of each counter and histogram family by series. Files of workers that exited stay, so a
counter never goes down when a worker is replaced. Gauges (a backlog, an age, 0/1 health) are the answering
worker's own. A sibling's numbers are at most `interval_s` old.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

SUMMED = ("counter", "histogram")


@dataclass
class Family:
    name: str
    header: list[str] = field(default_factory=list)  # the HELP and TYPE lines
    kind: str = "untyped"
    samples: dict[str, float] = field(default_factory=dict)  # series (name and labels) -> value


def parse(text: str) -> list[Family]:
    families: list[Family] = []
    current: Family | None = None
    for line in text.splitlines():
        if not line:
            continue
        if line.startswith("# "):
            parts = line.split(" ", 3)
            name = parts[2] if len(parts) > 2 else ""
            if current is None or current.name != name:
                current = Family(name)
                families.append(current)
            current.header.append(line)
            if parts[1] == "TYPE" and len(parts) > 3:
                current.kind = parts[3]
            continue
        series, _, value = line.rpartition(" ")
        if current is None:
            current = Family(series.split("{", 1)[0])
            families.append(current)
        try:
            current.samples[series] = current.samples.get(series, 0.0) + float(value)
        except ValueError:
            continue
    return families


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


def merge(own: str, others: list[str]) -> bytes:
    """`own` exposition with every counter and histogram sample summed over `others` too."""
    families = parse(own)
    by_name = {family.name: family for family in families}
    for text in others:
        for family in parse(text):
            if family.kind not in SUMMED:
                continue
            mine = by_name.get(family.name)
            if mine is None:
                by_name[family.name] = family
                families.append(family)
                continue
            if mine.kind != family.kind:
                continue
            for series, value in family.samples.items():
                mine.samples[series] = mine.samples.get(series, 0.0) + value
    lines: list[str] = []
    for family in families:
        lines.extend(family.header)
        lines.extend(f"{series} {_number(value)}" for series, value in family.samples.items())
    return ("\n".join(lines) + "\n").encode()


class SharedExposition:
    def __init__(self, directory: Path, render: Callable[[], bytes], *, interval_s: float = 0.5) -> None:
        self._directory = directory
        self._render = render
        self._interval_s = interval_s
        self._own = directory / f"{os.getpid()}.prom"

    def publish(self, exposition: bytes | None = None) -> bytes:
        exposition = self._render() if exposition is None else exposition
        self._directory.mkdir(parents=True, exist_ok=True)
        temporary = self._own.with_suffix(".tmp")
        temporary.write_bytes(exposition)
        os.replace(temporary, self._own)
        return exposition

    def scrape(self) -> bytes:
        own = self.publish()
        others = []
        for path in sorted(self._directory.glob("*.prom")):
            if path == self._own:
                continue
            try:
                others.append(path.read_text())
            except OSError:
                continue  # replaced between listing and reading: the next scrape reads it
        return merge(own.decode(), others)

    async def run(self) -> None:
        """Publish this worker's exposition every interval (cancel to stop)."""
        while True:
            await asyncio.to_thread(self.publish)
            await asyncio.sleep(self._interval_s)

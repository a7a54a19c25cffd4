"""One /metrics for `tollway serve --workers N`, in prometheus_client's multiprocess mode.

`serve` points PROMETHEUS_MULTIPROC_DIR at a directory of its own (a fresh temporary one, or the one given,
emptied at start). Each worker counts in process as a single process does (gateway/metrics.py: a dict update
per count, far cheaper than a write to a memory-mapped file per update) and flushes its families to its own
prometheus_client files there — `counter_<pid>.db`, `histogram_<pid>.db`, `gauge_<mode>_<pid>.db` — every
`interval_s` and whenever it answers a scrape. The worker that answers reads every worker's files with
prometheus_client's MultiProcessCollector: counters and histograms are summed over every worker that ever
ran (files of exited workers stay, so a count never goes back), gauges are combined by their mode (a backlog
summed, an age its maximum, a 0/1 health its minimum) over the live workers: a worker marks itself dead
(`mark_process_dead`) when it stops, and a scrape marks dead the workers that vanished without stopping
(killed). A sibling's numbers are at most `interval_s` old.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest, multiprocess
from prometheus_client.metrics_core import Metric
from prometheus_client.mmap_dict import MmapedDict, mmap_key

from tollway.gateway.metrics import GatewayMetrics
from tollway.metrics import GaugeMode, ModeGauge

# prometheus_client's process_* and python_* gauges, over the workers: memory and descriptors are the server's
# total, the start time is the latest (re)start of a worker, the limit and the version the same everywhere
COLLECTOR_GAUGE_MODES: dict[str, GaugeMode] = {
    "process_virtual_memory_bytes": "livesum",
    "process_resident_memory_bytes": "livesum",
    "process_open_fds": "livesum",
    "process_max_fds": "livemax",
    "process_start_time_seconds": "livemax",
    "python_info": "livemax",
}
DEFAULT_GAUGE_MODE: GaugeMode = "livemax"
_LIVE_GAUGE_FILE = re.compile(r"gauge_live[a-z]+_(\d+)\.db")
# prometheus_client's multiprocess pieces carry no annotations: typed here once
_open_values: Callable[[str], Any] = MmapedDict  # one worker's file of one kind: read_value, write_value, close
_reader: Callable[[CollectorRegistry, str], object] = multiprocess.MultiProcessCollector
mark_process_dead: Callable[[str, str], None] = multiprocess.mark_process_dead


def gauge_mode(family: Metric) -> GaugeMode:
    if isinstance(family, ModeGauge):
        return family.multiprocess_mode
    return COLLECTOR_GAUGE_MODES.get(family.name, DEFAULT_GAUGE_MODE)


def clean(directory: Path) -> None:
    """Remove what an earlier server left in the directory (its counts would be summed into this one's)."""
    directory.mkdir(parents=True, exist_ok=True)
    for leftover in directory.glob("*.db"):
        leftover.unlink(missing_ok=True)


class MultiprocessExposition:
    def __init__(
        self, directory: Path, metrics: GatewayMetrics, *, identity: str | None = None, interval_s: float = 0.5
    ) -> None:
        self._directory = directory
        self._local = metrics.registry
        self._identity = identity or str(os.getpid())
        self._interval_s = interval_s
        self._files: dict[str, Any] = {}
        self._keys: dict[tuple[str, str, tuple[tuple[str, str], ...]], str] = {}
        # counts a process with this pid left before (pids are reused): ours are added to them
        self._base: dict[str, float] = {}
        self._lock = threading.Lock()  # the periodic flush runs in a thread, a scrape's on the event loop
        self._all = CollectorRegistry(auto_describe=False)
        directory.mkdir(parents=True, exist_ok=True)
        _reader(self._all, str(directory))

    def flush(self) -> None:
        """Write this worker's current values to its files."""
        with self._lock:
            for family in self._local.collect():
                if family.type == "counter":
                    for sample in family.samples:
                        if sample.name.endswith("_total"):
                            self._write("counter", family, sample.name, sample.labels, sample.value)
                elif family.type == "histogram":
                    self._write_histogram(family)
                elif family.type == "gauge":
                    file = f"gauge_{gauge_mode(family)}"
                    for sample in family.samples:
                        self._write(file, family, sample.name, sample.labels, sample.value)

    def _write_histogram(self, family: Metric) -> None:
        """prometheus_client's files hold each bucket's own count (not cumulative) and the sum."""
        previous: dict[tuple[tuple[str, str], ...], float] = {}
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                series = tuple((k, v) for k, v in sample.labels.items() if k != "le")
                count = sample.value - previous.get(series, 0.0)
                previous[series] = sample.value
                self._write("histogram", family, sample.name, sample.labels, count)
            elif sample.name.endswith("_sum"):
                self._write("histogram", family, sample.name, sample.labels, sample.value)

    def _write(self, file: str, family: Metric, name: str, labels: dict[str, str], value: float) -> None:
        db = self._files.get(file)
        if db is None:
            db = self._files[file] = _open_values(str(self._directory / f"{file}_{self._identity}.db"))
        cache = (family.name, name, tuple(labels.items()))
        key = self._keys.get(cache)
        if key is None:
            key = self._keys[cache] = mmap_key(
                family.name, name, list(labels), list(labels.values()), family.documentation
            )
        if not file.startswith("gauge"):
            base = self._base.get(key)
            if base is None:
                base = self._base[key] = db.read_value(key)[0]
            value += base
        db.write_value(key, value, time.time())

    def scrape(self) -> bytes:
        """Every worker's metrics, this one's as of now."""
        self.flush()
        self._forget_vanished()
        return generate_latest(self._all)

    def _forget_vanished(self) -> None:
        """Gauges of workers that are gone without stopping (killed) no longer count."""
        for path in self._directory.glob("gauge_live*.db"):
            found = _LIVE_GAUGE_FILE.fullmatch(path.name)
            if found is None or found.group(1) == self._identity:
                continue
            try:
                os.kill(int(found.group(1)), 0)
            except ProcessLookupError:
                mark_process_dead(found.group(1), str(self._directory))
            except (PermissionError, OverflowError):
                continue  # alive (another user's), or not a pid

    async def run(self) -> None:
        """Flush every interval (cancel to stop)."""
        while True:
            await asyncio.to_thread(self.flush)
            await asyncio.sleep(self._interval_s)

    def close(self, *, mark_dead: bool = True) -> None:
        """This worker stops: its counts flushed one last time (they stay), its gauges leave the exposition
        (unless not `mark_dead`: then only its files are closed)."""
        self.flush()
        with self._lock:
            for db in self._files.values():
                db.close()
            self._files.clear()
        if mark_dead:
            mark_process_dead(self._identity, str(self._directory))

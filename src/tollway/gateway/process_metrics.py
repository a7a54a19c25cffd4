"""The standard `process_*` and `python_*` series (the names Prometheus' client libraries export), read from
the operating system at each scrape: CPU seconds, resident and virtual memory, open and maximum file
descriptors, the process's start time, and the Python version and garbage collections."""

from __future__ import annotations

import gc
import os
import platform
import resource
import time
from pathlib import Path

PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _start_time(proc: Path) -> float | None:
    """Seconds since the epoch the process started, from /proc (Linux); None elsewhere."""
    try:
        stat = (proc / "self" / "stat").read_text()
        boot = next(line for line in (proc / "stat").read_text().splitlines() if line.startswith("btime "))
    except (OSError, StopIteration):
        return None
    fields = stat.rpartition(")")[2].split()  # after the command name, which may hold spaces
    return int(boot.split()[1]) + int(fields[19]) / TICKS  # field 22 of stat: start time in clock ticks


class ProcessMetrics:
    def __init__(self, proc: Path = Path("/proc")) -> None:
        self._proc = proc
        self._started = _start_time(proc) or time.time()

    def render(self) -> list[str]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        lines = [
            "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.",
            "# TYPE process_cpu_seconds_total counter",
            f"process_cpu_seconds_total {usage.ru_utime + usage.ru_stime!r}",
            "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.",
            "# TYPE process_start_time_seconds gauge",
            f"process_start_time_seconds {self._started!r}",
        ]
        try:
            pages = (self._proc / "self" / "statm").read_text().split()
            virtual, resident = int(pages[0]) * PAGE_BYTES, int(pages[1]) * PAGE_BYTES
        except (OSError, IndexError, ValueError):
            virtual, resident = 0, usage.ru_maxrss * 1024  # peak, where /proc is missing
        lines += [
            "# HELP process_resident_memory_bytes Resident memory size in bytes.",
            "# TYPE process_resident_memory_bytes gauge",
            f"process_resident_memory_bytes {resident}",
            "# HELP process_virtual_memory_bytes Virtual memory size in bytes.",
            "# TYPE process_virtual_memory_bytes gauge",
            f"process_virtual_memory_bytes {virtual}",
        ]
        try:
            open_fds = len(os.listdir(self._proc / "self" / "fd"))
        except OSError:
            open_fds = None
        if open_fds is not None:
            soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
            lines += [
                "# HELP process_open_fds Number of open file descriptors.",
                "# TYPE process_open_fds gauge",
                f"process_open_fds {open_fds}",
                "# HELP process_max_fds Maximum number of open file descriptors.",
                "# TYPE process_max_fds gauge",
                f"process_max_fds {soft}",
            ]
        major, minor, patch = platform.python_version_tuple()
        info = (
            f'implementation="{platform.python_implementation()}",major="{major}",minor="{minor}",patchlevel="{patch}"'
        )
        lines += [
            "# HELP python_info Python platform information.",
            "# TYPE python_info gauge",
            f'python_info{{{info},version="{platform.python_version()}"}} 1',
            "# HELP python_gc_collections_total Number of times this generation was collected.",
            "# TYPE python_gc_collections_total counter",
        ]
        stats = gc.get_stats()
        lines += [f'python_gc_collections_total{{generation="{i}"}} {s["collections"]}' for i, s in enumerate(stats)]
        lines += [
            "# HELP python_gc_objects_collected_total Objects collected during gc.",
            "# TYPE python_gc_objects_collected_total counter",
        ]
        lines += [
            f'python_gc_objects_collected_total{{generation="{i}"}} {s["collected"]}' for i, s in enumerate(stats)
        ]
        return lines

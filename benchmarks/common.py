"""Small helpers the benchmarks share: summaries, process CPU and memory, a loaded-machine note.

Figures, not tests: nothing here asserts a timing. Every figure is a median with its spread
(p10-p90, or min-max for a handful of samples), printed next to its peer as a ratio.
"""

from __future__ import annotations

import os
import resource
import statistics
from collections.abc import Sequence

__all__ = ["cpu_seconds", "fmt_ms", "load_note", "peak_rss_mib", "self_cpu", "summary"]

_TICK = os.sysconf("SC_CLK_TCK")


def summary(samples: Sequence[float]) -> tuple[float, float, float]:
    """(median, low, high): p10/p90 from 10 samples on, else min/max."""
    ordered = sorted(samples)
    if len(ordered) >= 10:
        deciles = statistics.quantiles(ordered, n=10)
        return statistics.median(ordered), deciles[0], deciles[-1]
    return statistics.median(ordered), ordered[0], ordered[-1]


def fmt_ms(samples: Sequence[float]) -> str:
    """``median (low-high) ms`` of samples taken in seconds."""
    median, low, high = summary(samples)
    return f"{median * 1e3:8.2f} ms ({low * 1e3:.2f}-{high * 1e3:.2f})"


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and its reaped children (the jobs a node ran)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / _TICK


def self_cpu() -> float:
    """User + system CPU of this process."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mib(pid: int) -> float:
    """Peak resident memory of ``pid`` (VmHWM), MiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def load_note() -> str:
    """The machine's load, printed with every run: on shared cores it explains the spread."""
    one, five, _ = os.getloadavg()
    return f"{os.cpu_count()} cores, load average {one:.2f} (1 min) {five:.2f} (5 min)"

"""The metric registry: every figure computed per run, with its key, label, unit and extractor.

Two come from the literature on allocators:
- free_at_peak_mib: the free memory the allocators hold (kept-but-free: malloc's held - in use,
  plus pymalloc's arena bytes outside objects) at the probe where live memory peaked, what
  google/tcmalloc calls realized fragmentation (measured at peak demand, not at the run's end);
- active_per_allocated: jemalloc's stats.active / stats.allocated at the end of load, the
  definition behind Redis's allocator_frag_ratio (only jemalloc counts active pages).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sandbox.results.model import RunResult
from sandbox.units import MIB


@dataclass(frozen=True)
class Metric:
    """One figure computed per run."""

    key: str
    """Name in JSON/CSV, with the unit in it."""
    label: str
    """Human name for tables."""
    unit: str
    """Unit shown next to the numbers."""
    extract: Callable[[RunResult], float | None] = field(repr=False, compare=False)
    """The value for one run; None when the run has no data for it."""


def _rss(attr: str) -> Callable[[RunResult], float | None]:
    """A summary figure in MiB; None when the run has none (older files, no allocator view)."""

    def extract(result: RunResult) -> float | None:
        value = getattr(result.summary, attr, None)
        return None if value is None else float(value) / MIB

    return extract


def free_at_peak_bytes(result: RunResult) -> float | None:
    """Kept-but-free (malloc's held - in use, plus pymalloc's arena bytes outside objects) at the
    probe where live memory (in use plus pymalloc's used) was highest. None without an in-use
    count, or when pymalloc was on but its figures were not read (the figure would leave its
    free blocks out); with pymalloc off its part is 0 (Python's objects are malloc's)."""
    p = result.probes
    in_use, held = p.get("alloc_in_use_bytes"), p.get("alloc_held_bytes")
    used, free = p.get("pymalloc_used_bytes"), p.get("pymalloc_free_bytes")
    if not in_use or not held or (result.server.pymalloc and (not used or not free)):
        return None
    used = used or [0] * len(in_use)
    free = free or [0] * len(in_use)
    live = [a + b for a, b in zip(in_use, used, strict=True)]
    peak = max(range(len(live)), key=live.__getitem__)
    return float(held[peak] - in_use[peak] + free[peak])


def _free_at_peak(result: RunResult) -> float | None:
    value = free_at_peak_bytes(result)
    return None if value is None else value / MIB


def _active_per_allocated(result: RunResult) -> float | None:
    return result.summary.active_per_allocated


def _throughput(result: RunResult) -> float | None:
    """Requests over the time Locust itself measured (its req/s per batch), so Locust's own
    start-up and shut-down do not count as server time."""
    stats = [b for b in result.load.stats if b.rps > 0 and b.requests > 0]
    if not stats:
        return None
    return sum(b.requests for b in stats) / sum(b.requests / b.rps for b in stats)


def _p95(result: RunResult) -> float | None:
    if not result.load.stats:
        return None
    return float(statistics.median(b.p95_ms for b in result.load.stats))


def _failures(result: RunResult) -> float | None:
    return float(sum(b.failures for b in result.load.stats))


METRICS: tuple[Metric, ...] = (
    Metric("baseline_rss_mib", "baseline RSS", "MiB", _rss("baseline_rss_bytes")),
    Metric("peak_rss_mib", "peak RSS", "MiB", _rss("peak_rss_bytes")),
    Metric("end_of_load_rss_mib", "end-of-load RSS", "MiB", _rss("end_of_load_rss_bytes")),
    Metric("after_idle_rss_mib", "after-idle RSS", "MiB", _rss("after_idle_rss_bytes")),
    Metric("after_trim_rss_mib", "after-trim RSS", "MiB", _rss("after_trim_rss_bytes")),
    Metric("in_use_after_idle_mib", "in use after idle", "MiB", _rss("in_use_after_idle_bytes")),
    Metric("held_after_idle_mib", "held after idle", "MiB", _rss("held_after_idle_bytes")),
    Metric(
        "unused_after_idle_mib", "held unused after idle", "MiB", _rss("unused_after_idle_bytes")
    ),
    Metric("free_at_peak_mib", "free memory held at peak demand", "MiB", _free_at_peak),
    Metric("active_per_allocated", "active / allocated", "ratio", _active_per_allocated),
    Metric("throughput_rps", "throughput", "req/s", _throughput),
    Metric("p95_ms", "p95 latency", "ms", _p95),
    Metric("failures", "failures", "requests", _failures),
)
METRIC_BY_KEY: dict[str, Metric] = {m.key: m for m in METRICS}
HEADLINE_METRICS = ("after_idle_rss_mib", "peak_rss_mib")
CONFIRMATORY_METRIC = "after_idle_rss_mib"
"""The question the sandbox answers: its test stands alone (unadjusted); every other metric is
exploratory and Holm-adjusted with the others of its comparison (`multiplicity`)."""

MetricValues = dict[str, list[tuple[RunResult, float]]]
"""Metric key -> (run, value) for every run that has a finite value for it, in run order."""


def metric_values(runs: Sequence[RunResult]) -> MetricValues:
    """Every metric's finite values over `runs`, each paired with its run."""
    out: MetricValues = {}
    for m in METRICS:
        pairs = [(r, m.extract(r)) for r in runs]
        out[m.key] = [(r, v) for r, v in pairs if v is not None and math.isfinite(v)]
    return out

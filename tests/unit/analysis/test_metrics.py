"""metrics: every registered metric's value for one run."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sandbox.analysis import metrics
from sandbox.load.stats import BatchStats
from sandbox.results.model import RunResult
from sandbox.results.sampling import Columns
from sandbox.units import MIB
from tests.fakes import make_result, with_summary


def test_metrics_per_run() -> None:
    run = make_result("glibc")
    stats = [
        BatchStats(0, 0.0, 10.0, 1000, 2, 100.0, 10.0, 50.0, 60.0, 70.0),
        BatchStats(1, 20.0, 25.0, 2000, 3, 400.0, 10.0, 70.0, 80.0, 90.0),
        BatchStats(2, 30.0, 35.0, 600, 0, 120.0, 10.0, 30.0, 40.0, 50.0),
    ]
    run = replace(run, load=replace(run.load, stats=stats))
    run = with_summary(run, baseline_mib=50, peak_mib=300, end_of_load_mib=250, after_idle_mib=200)
    values = {m.key: m.extract(run) for m in metrics.METRICS}
    assert values == {
        "baseline_rss_mib": 50.0,
        "peak_rss_mib": 300.0,
        "end_of_load_rss_mib": 250.0,
        "after_idle_rss_mib": 200.0,
        # with_summary sets no allocator counters and no trim: those metrics have no value
        "after_trim_rss_mib": None,
        "in_use_after_idle_mib": None,
        "held_after_idle_mib": None,
        "unused_after_idle_mib": None,
        "free_at_peak_mib": None,
        "active_per_allocated": None,
        "throughput_rps": pytest.approx(3600 / 20),
        "p95_ms": 50.0,
        "failures": 5.0,
    }


def test_throughput_uses_locusts_own_rate() -> None:
    run = make_result("glibc")
    stats = [replace(b, requests=100, rps=50.0) for b in run.load.stats]
    run = replace(run, load=replace(run.load, stats=stats))
    assert metrics.METRIC_BY_KEY["throughput_rps"].extract(run) == pytest.approx(50.0)


def test_metric_values_keep_finite_values_with_their_runs() -> None:
    a = with_summary(make_result("glibc", repeat=0), after_idle_mib=100)
    b = with_summary(make_result("glibc", repeat=1), after_idle_mib=120)
    values = metrics.metric_values([a, b])
    assert list(values) == [m.key for m in metrics.METRICS]
    assert values["after_idle_rss_mib"] == [(a, 100.0), (b, 120.0)]
    assert values["after_trim_rss_mib"] == []  # with_summary sets no trim figure


def _with_probes(run: RunResult, pymalloc: bool, **columns: list[int]) -> RunResult:
    probes: Columns = {k: [*v] for k, v in columns.items()}
    return replace(run, probes=probes, server=replace(run.server, pymalloc=pymalloc))


def test_free_at_peak_is_kept_but_free_where_live_memory_peaked() -> None:
    run = make_result("glibc")
    probes = {
        "alloc_in_use_bytes": [10 * MIB, 50 * MIB, 20 * MIB],
        "alloc_held_bytes": [12 * MIB, 60 * MIB, 70 * MIB],
        "pymalloc_used_bytes": [5 * MIB, 5 * MIB, 5 * MIB],
        "pymalloc_free_bytes": [1 * MIB, 3 * MIB, 9 * MIB],
    }
    # Live (in use + pymalloc's used) peaks at the second probe: 10 + 3 MiB kept there, not the
    # 59 MiB at the end.
    assert metrics.free_at_peak_bytes(_with_probes(run, True, **probes)) == 13 * MIB
    no_pymalloc = {k: v for k, v in probes.items() if k.startswith("alloc")}
    assert metrics.free_at_peak_bytes(_with_probes(run, False, **no_pymalloc)) == 10 * MIB
    # pymalloc on but unread: its free blocks would be left out, so no figure.
    assert metrics.free_at_peak_bytes(_with_probes(run, True, **no_pymalloc)) is None
    held_only = {"alloc_held_bytes": probes["alloc_held_bytes"]}
    assert metrics.free_at_peak_bytes(_with_probes(run, False, **held_only)) is None


def test_active_per_allocated_only_where_active_pages_are_counted() -> None:
    run = make_result("jemalloc")
    s = replace(run.summary, in_use_end_of_load_bytes=40 * MIB, active_end_of_load_bytes=50 * MIB)
    assert metrics.METRIC_BY_KEY["active_per_allocated"].extract(replace(run, summary=s)) == 1.25
    none = replace(s, active_end_of_load_bytes=None)
    assert metrics.METRIC_BY_KEY["active_per_allocated"].extract(replace(run, summary=none)) is None

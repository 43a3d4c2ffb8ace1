"""The warnings of a comparison: what makes it less trustworthy, and what to do about it.

Skipped runs, too few repeats, unstable or outlying values, failed requests, batches cut
short, and settings that differ between the compared runs without being an experiment
parameter. Each message names the cause and the fix.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from sandbox.analysis.groups import group_label
from sandbox.analysis.metrics import METRICS, MetricValues
from sandbox.analysis.stats import outliers
from sandbox.results.model import RunResult

UNSTABLE_CV = 0.10
"""Warn when sd exceeds this fraction of the mean (pyperf's threshold)."""
UNEVEN_LOAD = 1.10
"""Warn when, under a time-bounded load, one group's runs served this many times the requests
of another's (medians)."""
MIN_REPEATS = 3

# Settings that must match across the compared runs unless an experiment parameter varies them.
# (result field, the experiment setting that varies it, how to read it from a run).
MATCHING_SETTINGS: tuple[tuple[str, str, Callable[[RunResult], Any]], ...] = (
    ("server.handler", "handler", lambda r: r.server.handler),
    ("server.sleep_ms", "sleep_ms", lambda r: r.server.sleep_ms),
    ("server.threads", "threads", lambda r: r.server.threads),
    ("server.pymalloc", "pymalloc", lambda r: r.server.pymalloc),
    ("load.tags", "tags", lambda r: ",".join(r.load.spec.tags)),
    ("load.users", "concurrency", lambda r: r.load.spec.users),
    ("load.iterations", "iterations", lambda r: r.load.spec.iterations),
    ("load.batches", "batches", lambda r: r.load.schedule.batches),
    ("load.pause_s", "pause_s", lambda r: r.load.schedule.pause_s),
    ("load.idle_s", "idle_s", lambda r: r.load.schedule.idle_s),
    ("load.model", "load", lambda r: _model_key(r)),
    ("load.workers", "load_workers", lambda r: r.load.spec.workers),
    ("server.workers", "workers", lambda r: r.server.workers),
    ("server.app", "app", lambda r: r.server.app),
    ("host.cpu_count", "cpu_count", lambda r: r.host.cpu_count),
    ("host.sandbox_version", "sandbox_version", lambda r: r.host.sandbox_version),
)


@dataclass(frozen=True)
class CompareWarning:
    """Something that makes the comparison less trustworthy, and what to do about it."""

    kind: str
    """unstable, outlier, few-repeats, settings-differ, skipped, failures, truncated or
    uneven-load."""
    message: str
    group: str | None = None
    metric: str | None = None


def skipped_warning(bad: Sequence[RunResult]) -> CompareWarning:
    """The runs left out because they did not finish ok, counted by status."""
    counts: dict[str, int] = {}
    for r in bad:
        counts[r.status] = counts.get(r.status, 0) + 1
    why = ", ".join(f"{c} {s}" for s, c in counts.items())
    ids = ", ".join(r.run_id for r in bad[:5]) + (", ..." if len(bad) > 5 else "")
    return CompareWarning(
        "skipped",
        f"skipped {len(bad)} run(s) that did not finish ok ({why}: {ids}); "
        "read their status_detail, fix the cause and re-run them so every group has its repeats",
    )


def _model_key(result: RunResult) -> str:
    """The load model with its parameters (format 1-2 results: drill's iterations)."""
    model = result.load.spec.model
    if model.name == "iterations":
        return "iterations"
    described = {f.name: getattr(model, f.name) for f in fields(model) if f.name != "users"}
    return ", ".join(f"{k} {v}" for k, v in described.items())


def _truncated(result: RunResult) -> bool:
    load = result.load.spec
    if load.model.name != "iterations":
        return False  # a model with a duration: the run notes a rate it did not reach
    planned = load.iterations * len(set(load.tags))
    return any(b.requests < planned for b in result.load.stats)


def group_warnings(
    label: str, runs: Sequence[RunResult], values: MetricValues
) -> list[CompareWarning]:
    """Truncated batches, few repeats, unstable values, outliers and failed requests in one
    group; `values` are the group's `metric_values`."""
    out: list[CompareWarning] = []
    short = [r.run_id for r in runs if _truncated(r)]
    if short:
        out.append(
            CompareWarning(
                "truncated",
                f"{label}: {len(short)} run(s) sent fewer requests than planned (a batch hit its "
                f"time limit: {short[0]}); raise run.batch_timeout_s or lower the iterations",
                group=label,
            )
        )
    if len(runs) < MIN_REPEATS:
        out.append(
            CompareWarning(
                "few-repeats",
                f"{label}: only {len(runs)} run(s); add repeats: at least {MIN_REPEATS} per "
                "group (5 for a tighter interval), otherwise intervals are wide or missing",
                group=label,
            )
        )
    for m in METRICS:
        pairs = values[m.key]
        if m.key == "failures" or len(pairs) < 2:
            continue
        nums = [v for _, v in pairs]
        mean = statistics.fmean(nums)
        sd = statistics.stdev(nums)
        if mean != 0 and sd > UNSTABLE_CV * abs(mean):
            out.append(
                CompareWarning(
                    "unstable",
                    f"{label}: {m.label} varies a lot between runs (sd {sd / abs(mean):.0%} of "
                    "the mean); close other busy programs, pin the CPU frequency, or add "
                    "repeats",
                    group=label,
                    metric=m.key,
                )
            )
        med = statistics.median(nums)
        for i in outliers(nums):
            run = pairs[i][0]
            out.append(
                CompareWarning(
                    "outlier",
                    f"{label}: {m.label} of run {run.run_id} (repeat {run.repeat}) is an "
                    f"outlier ({nums[i]:.1f} {m.unit} vs median {med:.1f} {m.unit}); check "
                    "what else ran on the host then, and re-run it or add repeats",
                    group=label,
                    metric=m.key,
                )
            )
    failed = sum(v for _, v in values["failures"])
    if failed > 0:
        nruns = sum(1 for _, v in values["failures"] if v > 0)
        out.append(
            CompareWarning(
                "failures",
                f"{label}: {failed:.0f} request(s) failed in {nruns} run(s); latency and "
                "throughput are not comparable: check the server log, then lower users or "
                "raise the server's limits",
                group=label,
                metric="failures",
            )
        )
    return out


def settings_warnings(results: Sequence[RunResult]) -> list[CompareWarning]:
    """One warning per `MATCHING_SETTINGS` entry whose value differs between `results`,
    unless an experiment parameter varies it."""
    varied = {str(k).lower() for r in results for k in r.parameters}
    out: list[CompareWarning] = []
    for key, setting, get in MATCHING_SETTINGS:
        if key in varied or setting in varied or key.split(".", 1)[1] in varied:
            continue
        seen: dict[str, dict[str, int]] = {}
        for r in results:
            per_label = seen.setdefault(str(get(r)), {})
            lab = group_label(r)
            per_label[lab] = per_label.get(lab, 0) + 1
        if len(seen) < 2:
            continue
        detail = "; ".join(
            f"{value} ({', '.join(f'{lab} x{c}' for lab, c in labs.items())})"
            for value, labs in seen.items()
        )
        out.append(
            CompareWarning(
                "settings-differ",
                f"{key} differs between the compared runs: {detail}; compare runs made with "
                "the same settings, or make it an experiment parameter",
                metric=None,
            )
        )
    return out


def served(result: RunResult) -> int:
    """Requests the run's batches completed without failing."""
    return sum(b.requests - b.failures for b in result.load.stats)


def _served_median(runs: Sequence[RunResult]) -> tuple[float, float] | None:
    """The median requests served a run and the median rate (requests a second of load) of
    the runs under a load with a duration; None when there are none."""
    timed = [r for r in runs if r.load.spec.model.name != "iterations" and r.load.stats]
    if not timed:
        return None
    seconds = [max(sum(b.end_s - b.start_s for b in r.load.stats), 1e-9) for r in timed]
    return (
        statistics.median(served(r) for r in timed),
        statistics.median(served(r) / s for r, s in zip(timed, seconds, strict=True)),
    )


def uneven_load_warning(
    groups: Mapping[str, Sequence[RunResult]], refs: Mapping[str, str]
) -> CompareWarning | None:
    """Under a load with a duration (every model but iterations) the requests served follow
    the server's speed: a group that served fewer allocated less, and memory that follows
    requests (live data: a cache, a leak) is smaller for that reason alone. One warning for the
    most uneven pair of a group and its reference (`refs`: group -> the group it is compared
    with) at the same experiment parameters (an allocator against another); None when the load
    is a fixed count, or each such pair's median requests a run are within UNEVEN_LOAD."""
    Pair = tuple[float, str, tuple[float, float], str, tuple[float, float]]
    worst: Pair | None = None
    figures = {label: _served_median(runs) for label, runs in groups.items()}
    for label, ref in refs.items():
        own, other = figures.get(label), figures.get(ref)
        if own is None or other is None or label not in groups or ref not in groups:
            continue
        if groups[label][0].parameters != groups[ref][0].parameters:
            continue  # a swept setting against another: serving more is part of its effect
        (low, low_fig), (high, high_fig) = sorted(((label, own), (ref, other)), key=lambda x: x[1])
        ratio = high_fig[0] / low_fig[0] if low_fig[0] > 0 else math.inf if high_fig[0] else 1.0
        if ratio >= UNEVEN_LOAD and (worst is None or ratio > worst[0]):
            worst = (ratio, low, low_fig, high, high_fig)
    if worst is None:
        return None
    _, low, low_fig, high, high_fig = worst
    paced = any(r.load.spec.model.paced for r in groups[low])
    fix = (
        f"lower the rate (--rate) below the {low_fig[1]:,.0f} req/s that {low} reached: it did "
        "not keep up with the rate asked"
        if paced
        else "compare at a fixed rate both keep up with (--load rate --rate R, R well below "
        f"the {low_fig[1]:,.0f} req/s that {low} reached)"
    )
    return CompareWarning(
        "uneven-load",
        f"{low} and {high} served different numbers of requests under a time-bounded load "
        f"({low_fig[0]:,.0f} and {high_fig[0]:,.0f} a run, medians): memory that follows the "
        "requests served (live data: a cache, a leak) is then smaller where fewer were served, "
        f"whatever the allocator; {fix}",
    )

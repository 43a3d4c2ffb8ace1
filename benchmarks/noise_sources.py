"""Where the run-to-run noise comes from: each experiment folder's spread, split into the part
runs share and the part each run has alone, for several candidate headline metrics.

Reads experiment folders (`sandbox experiment ...`, any `side_by_side`), e.g. the A/A runs of
benchmarks/aa-many.yml one at a time and side by side:

    .venv/bin/sandbox experiment benchmarks/aa-many.yml --repeats 8 [--side-by-side 2]
    .venv/bin/python benchmarks/noise_sources.py results/aa-many-*/ [more folders]

For every folder: its runs at once (`side_by_side`), how many runs, the experiment's wall
time from its manifest (started_at to the last update) and per run; then for every metric:
- the sd of the logs of the runs' values about their own group's mean (a group: an allocator
  label; an A/A folder's two labels are one allocator, so they are pooled), which is what an
  interval on the ratio is made of;
- split into the part runs of one slot share (runs started together: side by side; or, for
  runs one at a time, each pair of neighbours in time, which measures drift) and the part each
  run has alone, by a one-way random-effects analysis of the slots (method of moments; the
  shared part is 0 when the slots differ no more than chance);
- for a folder of two or more groups, each group's ratio to the first (geometric means, 95 %
  Welch interval).

The candidate metrics: after-idle RSS (the headline: the RSS at the end of the idle phase),
the mean RSS over the idle phase, the time-weighted mean RSS from the first batch to the end
of idle (what the service held while it served), and the peak. Writes nothing.
"""

from __future__ import annotations

import argparse
import itertools
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sandbox.analysis import stats
from sandbox.analysis.groups import label
from sandbox.analysis.metrics import METRIC_BY_KEY
from sandbox.experiment import manifest
from sandbox.results import files as result_files
from sandbox.results.model import RunResult
from sandbox.units import MIB


def _rss_between(
    result: RunResult, start: float | None, end: float | None
) -> list[tuple[float, float]]:
    """(t_s, rss_bytes) of the samples from `start` to `end` (none when either is missing)."""
    if start is None or end is None:
        return []
    t, rss = result.samples.get("t_s", []), result.samples.get("rss_bytes", [])
    return [(a, b) for a, b in zip(t, rss, strict=False) if start <= a <= end]


def _phase_start(result: RunResult, prefix: str, last: bool = False) -> float | None:
    starts = [p.start_s for p in result.phases if p.name.startswith(prefix)]
    return (starts[-1] if last else starts[0]) if starts else None


def _idle_end(result: RunResult) -> float | None:
    return next((p.end_s for p in result.phases if p.name == "idle"), None)


def _mean_mib(points: list[tuple[float, float]]) -> float | None:
    return statistics.fmean(b for _, b in points) / MIB if points else None


def idle_mean(result: RunResult) -> float | None:
    return _mean_mib(_rss_between(result, _phase_start(result, "idle"), _idle_end(result)))


def last_batch_and_pause_mean(result: RunResult) -> float | None:
    """Mean RSS over the last batch and the idle after it (the issue's "last batch and its
    pause"): samples from the start of the last batch to the end of idle."""
    start = _phase_start(result, "batch", last=True)
    return _mean_mib(_rss_between(result, start, _idle_end(result)))


def served_mean(result: RunResult) -> float | None:
    """Time-weighted mean RSS from the start of the first batch to the end of idle."""
    pts = _rss_between(result, _phase_start(result, "batch"), _idle_end(result))
    if len(pts) < 2 or pts[-1][0] <= pts[0][0]:
        return None
    area = sum((t2 - t1) * (r1 + r2) / 2 for (t1, r1), (t2, r2) in itertools.pairwise(pts))
    return area / (pts[-1][0] - pts[0][0]) / MIB


CANDIDATES: dict[str, Callable[[RunResult], float | None]] = {
    "after-idle RSS": METRIC_BY_KEY["after_idle_rss_mib"].extract,
    "mean RSS over idle": idle_mean,
    "mean RSS, last batch to end of idle": last_batch_and_pause_mean,
    "mean RSS, batch 1 to end of idle": served_mean,
    "peak RSS": METRIC_BY_KEY["peak_rss_mib"].extract,
}


@dataclass(frozen=True)
class Spread:
    sd: float
    """Sd of the logs about each group's mean (pooled over groups)."""
    shared: float
    """The part of the sd runs of one slot share (sqrt of the variance component)."""
    alone: float
    """The part each run has alone (sqrt of the within-slot mean square)."""
    slots: int


def spread(values: Sequence[float], groups: Sequence[str], slots: Sequence[int]) -> Spread:
    """Random-effects split of the log values' residuals (about their group means) by slot."""
    logs = [math.log(v) for v in values]
    by_group: dict[str, list[float]] = {}
    for g, x in zip(groups, logs, strict=True):
        by_group.setdefault(g, []).append(x)
    means = {g: statistics.fmean(xs) for g, xs in by_group.items()}
    resid = [x - means[g] for g, x in zip(groups, logs, strict=True)]
    n, k_groups = len(resid), len(by_group)
    sd = math.sqrt(sum(r * r for r in resid) / (n - k_groups)) if n > k_groups else math.nan
    by_slot: dict[int, list[float]] = {}
    for s, r in zip(slots, resid, strict=True):
        by_slot.setdefault(s, []).append(r)
    full = [rs for rs in by_slot.values() if len(rs) >= 2]
    within_df = sum(len(rs) - 1 for rs in full)
    if not full or within_df == 0 or len(full) < 2:
        return Spread(sd, math.nan, math.nan, len(by_slot))
    ms_within = sum(sum((r - statistics.fmean(rs)) ** 2 for r in rs) for rs in full) / within_df
    grand = statistics.fmean(r for rs in full for r in rs)
    size = statistics.fmean(len(rs) for rs in full)
    ms_between = sum(len(rs) * (statistics.fmean(rs) - grand) ** 2 for rs in full) / (len(full) - 1)
    shared_var = max(0.0, (ms_between - ms_within) / size)
    return Spread(sd, math.sqrt(shared_var), math.sqrt(ms_within), len(full))


@dataclass(frozen=True)
class Folder:
    path: Path
    side_by_side: int
    runs: list[RunResult]
    slots: list[int]
    wall_s: float | None


def read_folder(path: Path) -> Folder:
    m = manifest.load(path)
    runs: list[RunResult] = []
    slots: list[int] = []
    for entry in m.runs:
        if entry.status != "ok" or not entry.file:
            continue
        runs.append(result_files.load(path / entry.file))
        # one at a time: neighbours in time (pairs) stand in for a slot, to measure drift
        slots.append(entry.index // (m.side_by_side if m.side_by_side > 1 else 2))
    wall = None
    if m.started_at and m.updated_at:
        t0 = datetime.fromisoformat(m.started_at.replace("Z", "+00:00"))
        t1 = datetime.fromisoformat(m.updated_at.replace("Z", "+00:00"))
        wall = (t1 - t0).total_seconds()
    return Folder(path, m.side_by_side, runs, slots, wall)


def report(folder: Folder) -> list[str]:
    if not folder.runs:
        return [f"{folder.path.name}: no run finished ok yet"]
    names = [label(r.allocator.name, r.parameters) for r in folder.runs]
    aa = (
        len({(r.allocator.library, tuple(sorted(r.allocator.env.items()))) for r in folder.runs})
        == 1
    )
    groups = ["one"] * len(names) if aa else names
    per_run = folder.wall_s / len(folder.runs) if folder.wall_s and folder.runs else None
    lines = [
        f"{folder.path.name}: {len(folder.runs)} runs ok, {folder.side_by_side} at a time"
        + (f", {folder.wall_s:.0f} s in all ({per_run:.1f} s a run)" if per_run else "")
        + (" [A/A: groups pooled]" if aa else "")
    ]
    shared_of = "slot (side by side)" if folder.side_by_side > 1 else "neighbours in time"
    lines.append(f"  {'metric':<34} {'sd of logs':>10} {'shared':>8} {'alone':>8}  ({shared_of})")
    for metric, extract in CANDIDATES.items():
        vals = [
            (v, g, s)
            for r, g, s in zip(folder.runs, groups, folder.slots, strict=True)
            if (v := extract(r)) is not None and v > 0
        ]
        if len(vals) < 3:
            continue
        sp = spread([v for v, _, _ in vals], [g for _, g, _ in vals], [s for _, _, s in vals])
        lines.append(f"  {metric:<34} {sp.sd:>10.3f} {sp.shared:>8.3f} {sp.alone:>8.3f}")
    order = list(dict.fromkeys(names))
    base = order[0]
    for other in order[1:]:
        for metric in CANDIDATES:
            extract = CANDIDATES[metric]
            a = [
                v
                for r, n in zip(folder.runs, names, strict=True)
                if n == other and (v := extract(r)) is not None
            ]
            b = [
                v
                for r, n in zip(folder.runs, names, strict=True)
                if n == base and (v := extract(r)) is not None
            ]
            ratio = stats.log_ratio(a, b, metric)
            if ratio.ratio is not None and ratio.ci_low is not None and ratio.ci_high is not None:
                lines.append(
                    f"  {metric} {other}/{base}: {ratio.ratio:.3f} "
                    f"[{ratio.ci_low:.3f}, {ratio.ci_high:.3f}] (n {len(a)}/{len(b)})"
                )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path)
    args = parser.parse_args(argv)
    for path in args.folders:
        if not (path / "experiment.json").is_file():
            parser.error(f"{path}: no experiment.json; give an experiment's folder")
        print("\n".join(report(read_folder(path))))
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Time to a verdict: how many repeats does the quick experiment need before the jemalloc/glibc
after-idle interval excludes 1.0, and how long do they take?

Reads one experiment folder with at least 6 repeats per allocator, e.g. from

    .venv/bin/sandbox experiment experiments/quick.yml --repeats 6

and, for n = 2 .. the number of repeats, prints the ratio of `--allocator` to `--baseline` on
`--metric` (after-idle RSS by default), its 95 % interval, the interval's width and p, computed
by `sandbox.analysis.compare` on the first n repeats of each allocator; then, over every choice
of n runs of each allocator (all subset pairs, or `--samples` random ones when there are more), the
fraction whose interval excludes 1.0. Ends with the experiment's wall time (first run's start to
last run's end, so without the report and plots). With `--previous R ...` (ratios measured on
earlier occasions), it also says whether the ratio of the first `--occasion` repeats (today's
occasion of an experiment of that many repeats) is within ±10 % of each. Writes nothing.

    .venv/bin/python benchmarks/time_to_verdict.py results/quick-YYYYMMDDTHHMMSSZ/
        [--allocator jemalloc] [--baseline glibc] [--metric after_idle_rss_mib]
        [--previous 0.85 0.81] [--occasion 3]

Under the stopping rule (`--until-verdict`, `sandbox.analysis.sequential`): `--sequential`
reads the folders of experiments run with it, one folder an occasion, and prints for each the
repeats it took, its measuring time (first run's start to last run's end), the look that
stopped it and the 95 % after-idle ratio of the report; then how many occasions reached a
verdict within `--target-min` minutes of measuring. `--run N` first runs N occasions of
`--experiment` (quick.yml) with --until-verdict, one after another, noting the 1-minute load
average before and after each, then reads them:

    .venv/bin/python benchmarks/time_to_verdict.py --run 5 [--experiment experiments/quick.yml]
    .venv/bin/python benchmarks/time_to_verdict.py --sequential results/quick-A/ results/quick-B/
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import random
import re
import statistics
import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from sandbox.analysis import compare, groups, metrics, stats
from sandbox.experiment import manifest
from sandbox.results import files as result_files
from sandbox.results.model import RunResult

TOLERANCE = 0.10
"""Reproducibility target: the ratio within ±10 % of earlier occasions'."""


def by_repeat(runs: Sequence[RunResult], allocator: str) -> list[RunResult]:
    """The ok runs of one allocator, in repeat order."""
    return sorted(
        (r for r in runs if r.status == "ok" and r.allocator.name == allocator),
        key=lambda r: r.repeat,
    )


def values(runs: Sequence[RunResult], metric: str) -> list[float]:
    """`metric` per run, extracted exactly as `sandbox compare` does."""
    extract = metrics.METRIC_BY_KEY[metric].extract
    out = [extract(r) for r in runs]
    return [v for v in out if v is not None and math.isfinite(v)]


def subset_pairs(
    n_a: int, n_b: int, n: int, samples: int, rng: random.Random
) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Every pair (n of A's indexes, n of B's), or `samples` random pairs when there are more."""
    total = math.comb(n_a, n) * math.comb(n_b, n)
    if total <= samples:
        return list(
            itertools.product(
                itertools.combinations(range(n_a), n), itertools.combinations(range(n_b), n)
            )
        )
    return [
        (tuple(sorted(rng.sample(range(n_a), n))), tuple(sorted(rng.sample(range(n_b), n))))
        for _ in range(samples)
    ]


def wall_time_s(runs: Sequence[RunResult]) -> float:
    """First run's start to last run's end, in seconds."""
    starts = [datetime.fromisoformat(r.started_at.replace("Z", "+00:00")) for r in runs]
    ends = [datetime.fromisoformat(r.ended_at.replace("Z", "+00:00")) for r in runs]
    return (max(ends) - min(starts)).total_seconds()


REPO = Path(__file__).resolve().parents[1]
RESULTS_LINE = re.compile(r"^results:\s+(\S+?)/?$", re.MULTILINE)


def run_occasions(n: int, experiment: Path) -> list[Path]:
    """`sandbox experiment EXPERIMENT --until-verdict`, n times in a row; their folders."""
    folders = []
    sandbox = Path(sys.executable).with_name("sandbox")
    for k in range(n):
        before = os.getloadavg()[0]
        done = subprocess.run(
            [str(sandbox), "experiment", str(experiment), "--until-verdict"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
        )
        after = os.getloadavg()[0]
        found = RESULTS_LINE.search(done.stdout)
        print(
            f"occasion {k + 1}: exit {done.returncode}, load average {before:.2f} before, "
            f"{after:.2f} after; {found.group(1) if found else 'no results folder'}",
            flush=True,
        )
        for line in done.stderr.splitlines():
            decision = line.startswith("  ") and not line.startswith("  ->") and "->" in line
            if line.startswith("look ") or decision:  # a look and each comparison it decided
                print(f"    {line.strip()}", flush=True)
        if found:
            folders.append(Path(found.group(1)))
    return folders


def sequential_report(folders: Sequence[Path], target_min: float, args: argparse.Namespace) -> None:
    """One line per occasion run under the stopping rule, then the fraction within target."""
    print(
        f"{'occasion':<40} {'repeats':>7} {'runs':>4} {'measuring':>9}  stop; "
        f"{args.allocator}/{args.baseline} after-idle, 95 % (report)"
    )
    within = 0
    for folder in folders:
        m = manifest.load(folder)
        runs = [r for r in result_files.load_all([folder]) if r.status == "ok"]
        wall = wall_time_s(runs)
        within += wall <= target_min * 60
        stop = (m.stop or {}).get("summary", "no stop recorded (interrupted?)")
        rounds = (m.stop or {}).get("rounds", "-")
        comparison = compare.compare(runs, baseline=args.baseline)
        r = comparison.group(groups.label(args.allocator, {})).ratio(args.metric)
        shown = "-"
        if r is not None and r.ratio is not None and r.ci_low is not None and r.ci_high is not None:
            shown = f"{r.ratio:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]"
        last = m.looks[-1]["comparisons"] if m.looks else []
        outcome = ", ".join(c["outcome"] for c in last) or "-"
        print(
            f"{folder.name:<40} {rounds!s:>7} {len(runs):>4} {wall:>7.0f} s  {outcome}: {stop}; "
            f"{shown}"
        )
    print(
        f"{within} of {len(folders)} occasions reached their stop within {target_min:g} minutes "
        "of measuring"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, nargs="?", help="an experiment results folder")
    parser.add_argument("--sequential", type=Path, nargs="+", help="folders run --until-verdict")
    parser.add_argument("--run", type=int, metavar="N", help="run N occasions --until-verdict")
    parser.add_argument("--experiment", type=Path, default=REPO / "experiments" / "quick.yml")
    parser.add_argument("--target-min", type=float, default=3.0, help="minutes of measuring")
    parser.add_argument("--allocator", default="jemalloc")
    parser.add_argument("--baseline", default="glibc")
    parser.add_argument(
        "--metric", default="after_idle_rss_mib", choices=list(metrics.METRIC_BY_KEY)
    )
    parser.add_argument("--samples", type=int, default=10_000, help="random subset pairs at most")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--previous", type=float, nargs="*", default=[], help="ratios from earlier occasions"
    )
    parser.add_argument("--occasion", type=int, default=3, help="repeats in one occasion")
    args = parser.parse_args()

    if args.run or args.sequential:
        folders = run_occasions(args.run, args.experiment) if args.run else []
        sequential_report([*folders, *(args.sequential or [])], args.target_min, args)
        return
    if args.folder is None:
        parser.error("give an experiment folder, --sequential FOLDER..., or --run N")
    runs = result_files.load_all([args.folder])
    group = by_repeat(runs, args.allocator)
    base = by_repeat(runs, args.baseline)
    n_max = min(len(group), len(base))
    if n_max < 2:
        raise SystemExit(
            f"{args.folder}: need >= 2 ok runs of each of {args.allocator}, {args.baseline}"
        )
    rng = random.Random(args.seed)
    print(f"{args.folder}: {len(group)} {args.allocator} and {len(base)} {args.baseline} runs ok")
    print(
        f"{args.allocator}/{args.baseline}, {metrics.METRIC_BY_KEY[args.metric].label}, "
        "95 % interval"
    )
    print(
        f"{'n':>2}  {'first n repeats: ratio [95 % interval]':<38}  {'width':>5}  {'p':>6}  "
        f"{'subsets: excludes 1.0':>22}"
    )
    for n in range(2, n_max + 1):
        first = compare.compare([*base[:n], *group[:n]], baseline=args.baseline)
        r = first.group(groups.label(args.allocator, {})).ratio(args.metric)
        assert r is not None and r.ratio is not None
        if r.ci_low is None or r.ci_high is None or r.p_value is None:
            head = f"{r.ratio:.3f} ({r.note})"
            width, p = "-", "-"
        else:
            head = f"{r.ratio:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]"
            width, p = f"{r.ci_high - r.ci_low:.3f}", f"{r.p_value:.4f}"
        a_vals, b_vals = values(group, args.metric), values(base, args.metric)
        pairs = subset_pairs(len(a_vals), len(b_vals), n, args.samples, rng)
        hits, widths = 0, []
        for ia, ib in pairs:
            s = stats.log_ratio([a_vals[i] for i in ia], [b_vals[i] for i in ib], args.metric)
            hits += s.significant
            if s.ci_low is not None and s.ci_high is not None:
                widths.append(s.ci_high - s.ci_low)
        exhaustive = len(pairs) == math.comb(len(a_vals), n) * math.comb(len(b_vals), n)
        kind = "all" if exhaustive else "random"
        print(
            f"{n:>2}  {head:<38}  {width:>5}  {p:>6}  {hits / len(pairs):>6.1%} of {len(pairs):>5} "
            f"{kind} (median width {statistics.median(widths):.3f})"
        )
    if args.previous and args.occasion <= n_max:
        today = compare.compare(
            [*base[: args.occasion], *group[: args.occasion]], baseline=args.baseline
        )
        r = today.group(groups.label(args.allocator, {})).ratio(args.metric)
        assert r is not None and r.ratio is not None
        print(f"reproducibility: first {args.occasion} repeats give {r.ratio:.3f}")
        for prev in args.previous:
            change = r.ratio / prev - 1
            verdict = "within" if abs(change) <= TOLERANCE else "OUTSIDE"
            print(f"  vs {prev:g} earlier: {change:+.1%}, {verdict} ±{TOLERANCE:.0%}")
    wall = wall_time_s([*group, *base])
    print(
        f"wall time of the experiment's runs: {wall:.0f} s ({wall / 60:.1f} min) for "
        f"{len(group) + len(base)} runs, {wall / (len(group) + len(base)):.1f} s a run"
    )


if __name__ == "__main__":
    main()

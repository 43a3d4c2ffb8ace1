"""False alarms: how often does `sandbox compare` claim a difference between glibc and itself?

Reads one folder of many A/A runs (glibc against glibc under a second label), e.g. from

    .venv/bin/sandbox experiment benchmarks/aa-many.yml        # 12 repeats each, ~15 minutes

and reports, with the package's own comparison (`sandbox.analysis.compare`: Welch t on log values):

(a) the disjoint 3-vs-3 comparisons (repeats 1-3 of each label, 4-6, ...), each a comparison
    as an experiment of 3 repeats would give it: the after-idle ratio, its interval and p, and
    which metrics have p < 0.05; then how many of them claim a difference (p < 0.05) on
    after-idle RSS and on any metric;
(b) `--splits` random 3-vs-3 splits drawn from all the runs pooled (labels ignored: 6 distinct
    runs, 3 on each side), the fraction with p < 0.05 on each metric. The splits share runs, so
    they are not independent: the fraction estimates the rate, but not with the binomial
    precision `--splits` trials would suggest.

At a 5 % level, an honest test on runs that do not differ gives p < 0.05 about 5 % of the time
per metric; (b) should be about 5 % or less for after-idle RSS. Writes nothing.

    .venv/bin/python benchmarks/false_alarms.py results/aa-many-YYYYMMDDTHHMMSSZ/
        [--baseline glibc] [--other glibc-again] [--splits 2000] [--seed 7]
"""

from __future__ import annotations

import argparse
import math
import random
from collections.abc import Sequence
from pathlib import Path

from sandbox import results
from sandbox.analysis import compare, groups, metrics, stats
from sandbox.results import RunResult

ALPHA = 0.05
HEADLINE = "after_idle_rss_mib"
BLOCK = 3


def ok_runs(runs: Sequence[RunResult], allocator: str) -> list[RunResult]:
    """The ok runs of one allocator label, in repeat order."""
    return sorted(
        (r for r in runs if r.status == "ok" and r.allocator.name == allocator),
        key=lambda r: r.repeat,
    )


def fmt_ratio(r: stats.Ratio | None) -> str:
    if r is None or r.ratio is None:
        return "-"
    if r.ci_low is None or r.ci_high is None or r.p_value is None:
        return f"{r.ratio:.3f} ({r.note})"
    return f"{r.ratio:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}] p={r.p_value:.3f}"


def disjoint(
    base: Sequence[RunResult], other: Sequence[RunResult], baseline: str, label: str
) -> None:
    """(a): one comparison per block of 3 repeats."""
    blocks = min(len(base), len(other)) // BLOCK
    print(f"(a) disjoint {BLOCK}-vs-{BLOCK} comparisons, {label} vs {baseline}")
    headline_hits = any_hits = 0
    for k in range(blocks):
        part = slice(k * BLOCK, (k + 1) * BLOCK)
        comparison = compare.compare([*base[part], *other[part]], baseline=baseline)
        group = comparison.group(groups.label(label, {}))
        flagged = [r.metric for r in group.ratios if r.p_value is not None and r.p_value < ALPHA]
        headline = group.ratio(HEADLINE)
        headline_hits += HEADLINE in flagged
        any_hits += bool(flagged)
        print(
            f"  repeats {k * BLOCK + 1}-{(k + 1) * BLOCK}: after-idle {fmt_ratio(headline)}; "
            f"p < {ALPHA:g} on: {', '.join(flagged) or 'none'} "
            f"(of {sum(r.p_value is not None for r in group.ratios)} metrics with a test)"
        )
    print(
        f"  claims a difference: after-idle RSS in {headline_hits} of {blocks}; "
        f"any metric in {any_hits} of {blocks}"
    )


def random_splits(pooled: Sequence[RunResult], splits: int, rng: random.Random) -> None:
    """(b): random 3-vs-3 splits of the pooled runs, per metric."""
    print(
        f"(b) {splits} random {BLOCK}-vs-{BLOCK} splits of the {len(pooled)} pooled runs "
        f"(labels ignored); fraction with p < {ALPHA:g}"
    )
    print(
        "    NOTE: the splits reuse the same runs, so they are not independent trials; read the "
        "fractions as estimates without a binomial error bar"
    )
    hits = {m.key: 0 for m in metrics.METRICS}
    tested = {m.key: 0 for m in metrics.METRICS}
    any_hits = 0
    extract = {m.key: m.extract for m in metrics.METRICS}
    for _ in range(splits):
        picked = rng.sample(range(len(pooled)), 2 * BLOCK)
        left = [pooled[i] for i in picked[:BLOCK]]
        right = [pooled[i] for i in picked[BLOCK:]]
        flagged = False
        for key, get in extract.items():
            a = [v for v in map(get, left) if v is not None and math.isfinite(v)]
            b = [v for v in map(get, right) if v is not None and math.isfinite(v)]
            r = stats.log_ratio(a, b, key)
            if r.p_value is None:
                continue
            tested[key] += 1
            if r.p_value < ALPHA:
                hits[key] += 1
                flagged = True
        any_hits += flagged
    for m in metrics.METRICS:
        if tested[m.key]:
            marker = "  <- headline" if m.key == HEADLINE else ""
            print(
                f"    {m.label:<24} {hits[m.key] / tested[m.key]:>6.1%} of {tested[m.key]}{marker}"
            )
        else:
            print(f"    {m.label:<24}      - (no test: no values or no variation)")
    print(f"    any metric               {any_hits / splits:>6.1%} of {splits}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a results folder of A/A runs")
    parser.add_argument("--baseline", default="glibc")
    parser.add_argument("--other", default="glibc-again")
    parser.add_argument("--splits", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    runs = results.load_all([args.folder])
    base, other = ok_runs(runs, args.baseline), ok_runs(runs, args.other)
    if min(len(base), len(other)) < BLOCK:
        raise SystemExit(
            f"{args.folder}: need >= {BLOCK} ok runs of each of {args.baseline}, {args.other}"
        )
    print(f"{args.folder}: {len(base)} {args.baseline} and {len(other)} {args.other} runs ok")
    disjoint(base, other, args.baseline, args.other)
    random_splits([*base, *other], args.splits, random.Random(args.seed))


if __name__ == "__main__":
    main()

"""False alarms: how often does `sandbox compare` claim a difference between glibc and itself?

Reads one folder of many A/A runs (glibc against glibc under a second label), e.g. from

    .venv/bin/sandbox experiment benchmarks/aa-many.yml        # 12 repeats each, ~15 minutes

and reports, with the package's own comparison (`sandbox.analysis.compare`: Welch t on log values;
after-idle RSS confirmatory and unadjusted, the other metrics Holm-adjusted within the
comparison, `sandbox.analysis.multiplicity`):

(a) the disjoint 3-vs-3 comparisons (repeats 1-3 of each label, 4-6, ...), each a comparison
    as an experiment of 3 repeats would give it: the after-idle ratio, its interval and p, which
    metrics have a raw p < 0.05 and which are significant after the adjustment; then how many
    of them claim a difference on after-idle RSS and on any metric, raw and adjusted;
(b) `--splits` random 3-vs-3 splits drawn from all the runs pooled (labels ignored: 6 distinct
    runs, 3 on each side), the fraction with p < 0.05 on each metric, raw and adjusted. The
    splits share runs, so they are not independent: the fraction estimates the rate, but not
    with the binomial precision `--splits` trials would suggest.

Without a folder, `--simulate N` runs N synthetic A/A comparisons per `--correlation` instead:
`--runs` (3) against as many runs of one lognormal population (every metric with a 5 % spread,
sharing a per-run factor of the given correlation; p95 in whole milliseconds like Locust's),
built on the golden result file tests/data/result_v3.json.gz and put through the real
`compare()`.

With `--sequential`, the same for `sandbox experiment --until-verdict`
(`sandbox.analysis.sequential`): `--sequences` simulated experiments under the rule (looks from
3 repeats to `--max-repeats`, their levels adding up to 0.05), on after-idle RSS, for every true
ratio in `--effect` (1.0: A/A, where a claim is a false alarm; below 1: the power against that
effect). With a folder, each experiment's arms are drawn from the real runs' after-idle values
(both labels pooled, 2 x max-repeats of them without replacement, the second arm times the
effect); without one, lognormal with the sd of `--spread` (or, with a folder, also the sd of the
real runs' logs). Reported: the claims of the rule, its equivalence and cap stops, the repeats
it took; and for contrast the claims of 95 % intervals at every look (no adjustment) and of the
report's 95 % interval on the runs the rule stopped at.

At a 5 % level, an honest test on runs that do not differ gives p < 0.05 about 5 % of the time
per metric; after-idle RSS should be flagged about 5 % or less, and any of the exploratory
metrics, after Holm, 5 % or less as well. Writes nothing.

    .venv/bin/python benchmarks/false_alarms.py results/aa-many-YYYYMMDDTHHMMSSZ/
        [--baseline glibc] [--other glibc-again] [--splits 2000] [--seed 7]
    .venv/bin/python benchmarks/false_alarms.py --simulate 4000 [--correlation 0 0.5 0.9]
        [--runs 3] [--seed 7]
    .venv/bin/python benchmarks/false_alarms.py --sequential [results/aa-many-.../]
        [--sequences 4000] [--max-repeats 8] [--min-effect 0.05] [--effect 1 0.95 0.9 0.81]
        [--spread 0.05]
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from sandbox.analysis import compare, groups, metrics, multiplicity, sequential, stats
from sandbox.results import files as result_files
from sandbox.results.model import RunResult
from sandbox.results.summary import Summary
from sandbox.units import MIB

ALPHA = stats.ALPHA
HEADLINE = metrics.CONFIRMATORY_METRIC
BLOCK = 3
TEMPLATE = Path(__file__).resolve().parents[1] / "tests" / "data" / "result_v3.json.gz"
SPREAD_LOG = 0.05
"""Sd of the log of every simulated metric: a 5 % run-to-run spread."""
# Typical levels of the simulated metrics (MiB, req/s, ms); held = in use + unused.
LEVELS = {
    "baseline": 60.0,
    "peak": 200.0,
    "end_of_load": 190.0,
    "after_idle": 150.0,
    "after_trim": 120.0,
    "in_use": 40.0,
    "unused": 30.0,
    "rps": 40.0,
    "p95_ms": 400.0,
}


@dataclass(frozen=True)
class Alarms:
    """What one A/A comparison claims by chance."""

    headline: bool
    """After-idle RSS significant (its unadjusted test)."""
    any_raw: bool
    """Some metric with a raw p < ALPHA: what ten separate 5 % tests would claim."""
    any_exploratory: bool
    """Some exploratory metric significant after Holm."""
    any_adjusted: bool
    """Headline or an exploratory metric significant: what `sandbox compare` now claims."""


def alarms(ratios: Sequence[stats.Ratio]) -> Alarms:
    """The claims of one comparison's (adjusted) ratios."""
    head = next((r for r in ratios if r.metric == HEADLINE), None)
    headline = head is not None and head.significant
    exploratory = any(r.significant for r in ratios if r.exploratory)
    return Alarms(
        headline=headline,
        any_raw=any(r.p_value is not None and r.p_value < ALPHA for r in ratios),
        any_exploratory=exploratory,
        any_adjusted=headline or exploratory,
    )


@dataclass(frozen=True)
class Rates:
    """Counts of `Alarms` over many comparisons."""

    comparisons: int
    headline: int
    any_raw: int
    any_exploratory: int
    any_adjusted: int

    @classmethod
    def of(cls, found: Sequence[Alarms]) -> Rates:
        return cls(
            comparisons=len(found),
            headline=sum(a.headline for a in found),
            any_raw=sum(a.any_raw for a in found),
            any_exploratory=sum(a.any_exploratory for a in found),
            any_adjusted=sum(a.any_adjusted for a in found),
        )

    def lines(self, indent: str = "    ") -> list[str]:
        n = self.comparisons

        def rate(k: int) -> str:
            return f"{k / n:6.1%} ({k} of {n})" if n else "     - (none)"

        rows = [
            ("after-idle RSS (confirmatory, unadjusted)", self.headline),
            (f"any metric, raw p < {ALPHA:g} (before)", self.any_raw),
            ("any exploratory metric, Holm-adjusted", self.any_exploratory),
            ("any metric, as reported (after)", self.any_adjusted),
        ]
        return [f"{indent}{what:<42} {rate(k)}" for what, k in rows]


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
    found = []
    for k in range(blocks):
        part = slice(k * BLOCK, (k + 1) * BLOCK)
        comparison = compare.compare([*base[part], *other[part]], baseline=baseline)
        group = comparison.group(groups.label(label, {}))
        flagged = [r.metric for r in group.ratios if r.p_value is not None and r.p_value < ALPHA]
        significant = [r.metric for r in group.ratios if r.significant]
        found.append(alarms(group.ratios))
        print(
            f"  repeats {k * BLOCK + 1}-{(k + 1) * BLOCK}: after-idle "
            f"{fmt_ratio(group.ratio(HEADLINE))}; p < {ALPHA:g} on: {', '.join(flagged) or 'none'} "
            f"(of {sum(r.p_value is not None for r in group.ratios)} metrics with a test); "
            f"significant after adjustment: {', '.join(significant) or 'none'}"
        )
    rates = Rates.of(found)
    print(
        f"  claims a difference: after-idle RSS in {rates.headline} of {blocks}; any metric in "
        f"{rates.any_raw} of {blocks} by raw p, {rates.any_adjusted} of {blocks} as reported "
        "(after-idle unadjusted, the others Holm-adjusted)"
    )


def random_splits(pooled: Sequence[RunResult], splits: int, rng: random.Random) -> None:
    """(b): random 3-vs-3 splits of the pooled runs, per metric."""
    print(
        f"(b) {splits} random {BLOCK}-vs-{BLOCK} splits of the {len(pooled)} pooled runs "
        f"(labels ignored); fraction with p < {ALPHA:g}, raw and after adjustment"
    )
    print(
        "    NOTE: the splits reuse the same runs, so they are not independent trials; read the "
        "fractions as estimates without a binomial error bar"
    )
    hits = {m.key: 0 for m in metrics.METRICS}
    adjusted_hits = {m.key: 0 for m in metrics.METRICS}
    tested = {m.key: 0 for m in metrics.METRICS}
    found = []
    for _ in range(splits):
        picked = rng.sample(range(len(pooled)), 2 * BLOCK)
        left = [pooled[i] for i in picked[:BLOCK]]
        right = [pooled[i] for i in picked[BLOCK:]]
        ratios = []
        for m in metrics.METRICS:
            a = [v for v in map(m.extract, left) if v is not None and math.isfinite(v)]
            b = [v for v in map(m.extract, right) if v is not None and math.isfinite(v)]
            ratios.append(stats.log_ratio(a, b, m.key))
        ratios = list(multiplicity.adjust(ratios))
        for r in ratios:
            if r.p_value is None:
                continue
            tested[r.metric] += 1
            hits[r.metric] += r.p_value < ALPHA
            adjusted_hits[r.metric] += r.significant
        found.append(alarms(ratios))
    print(f"    {'':<24} {'raw':>6}  {'adjusted':>8}")
    for m in metrics.METRICS:
        if tested[m.key]:
            marker = "  <- headline, not adjusted" if m.key == HEADLINE else ""
            print(
                f"    {m.label:<24} {hits[m.key] / tested[m.key]:>6.1%}  "
                f"{adjusted_hits[m.key] / tested[m.key]:>8.1%} of {tested[m.key]}{marker}"
            )
        else:
            print(f"    {m.label:<24}      - (no test: no values or no spread)")
    print("\n".join(Rates.of(found).lines()))


def synthetic_run(
    template: RunResult, label: str, repeat: int, correlation: float, rng: random.Random
) -> RunResult:
    """`template` with lognormal figures: every metric LEVELS * exp(SPREAD_LOG * e), where the
    e of one run share a factor of weight sqrt(correlation)."""
    shared = rng.gauss(0.0, 1.0)

    def draw(level: float) -> float:
        e = math.sqrt(correlation) * shared + math.sqrt(1.0 - correlation) * rng.gauss(0.0, 1.0)
        return level * math.exp(SPREAD_LOG * e)

    v = {key: draw(level) for key, level in LEVELS.items()}
    mib = MIB
    summary = Summary(
        baseline_rss_bytes=int(v["baseline"] * mib),
        peak_rss_bytes=int(v["peak"] * mib),
        end_of_load_rss_bytes=int(v["end_of_load"] * mib),
        after_idle_rss_bytes=int(v["after_idle"] * mib),
        vmhwm_bytes=None,
        in_use_after_idle_bytes=int(v["in_use"] * mib),
        held_after_idle_bytes=int((v["in_use"] + v["unused"]) * mib),
        after_trim_rss_bytes=int(v["after_trim"] * mib),
    )
    batch = replace(
        template.load.stats[0], requests=1000, failures=0, rps=v["rps"], p95_ms=round(v["p95_ms"])
    )
    return replace(
        template,
        run_id=f"sim-{label}-{repeat}",
        experiment="aa-simulated",
        allocator=replace(template.allocator, name=label),
        load=replace(template.load, stats=[batch]),
        summary=summary,
        repeat=repeat,
        parameters={},
    )


def simulate(
    template: RunResult,
    comparisons: int,
    correlation: float,
    rng: random.Random,
    runs_per_side: int = BLOCK,
) -> Rates:
    """`comparisons` synthetic A/A comparisons (`runs_per_side` runs of glibc against as many
    of glibc-again, one population) through `compare()`."""
    found = []
    for _ in range(comparisons):
        runs = [
            synthetic_run(template, label, i, correlation, rng)
            for label in ("glibc", "glibc-again")
            for i in range(runs_per_side)
        ]
        group = compare.compare(runs, baseline="glibc").group("glibc-again")
        found.append(alarms(group.ratios))
    return Rates.of(found)


@dataclass(frozen=True)
class Sequenced:
    """What the rule did over many simulated experiments of one true ratio."""

    experiments: int
    claims: int
    """The rule's look found a difference (a false alarm when the true ratio is 1)."""
    equivalent: int
    capped: int
    """Stopped at the cap with the comparison undecided."""
    repeats: tuple[int, ...]
    """Repeats a side at the stop, one per experiment."""
    naive: int
    """A 95 % interval excluding 1.0 at some look (every look unadjusted)."""
    reported: int
    """The report's 95 % interval, on the runs the rule stopped at, excludes 1.0."""

    def lines(self, target_repeats: int, indent: str = "    ") -> list[str]:
        n = self.experiments

        def rate(k: int) -> str:
            return f"{k / n:6.1%} ({k} of {n})"

        reps = sorted(self.repeats)
        by = " ".join(f"{r}:{sum(x == r for x in reps) / n:.0%}" for r in sorted(set(reps)))
        within = sum(x <= target_repeats for x in reps)
        return [
            f"{indent}{'the rule claims a difference':<44} {rate(self.claims)}",
            f"{indent}{'stops on equivalence (within min effect)':<44} {rate(self.equivalent)}",
            f"{indent}{'stops at the cap, undecided':<44} {rate(self.capped)}",
            f"{indent}repeats a side at the stop: mean {statistics.fmean(reps):.2f}, median "
            f"{statistics.median(reps):g}; {by}; <= {target_repeats} in {within / n:.0%}",
            f"{indent}{'95 % at every look, unadjusted, claims':<44} {rate(self.naive)}",
            f"{indent}{'report 95 % interval at the stop excludes 1':<44} {rate(self.reported)}",
        ]


def sequence(
    a: Sequence[float], b: Sequence[float], design: sequential.Design
) -> tuple[sequential.Look, bool, bool]:
    """The rule over arms a (reference) and b in round order; whether some look's 95 %
    interval excluded 1.0; whether the 95 % interval at the stop does."""
    seen = sequential.run_sequence({"a": a, "b": b}, {"b": "a"}, design)
    naive = any(
        stats.log_ratio(b[:n], a[:n]).significant
        for n in range(design.min_repeats, design.max_repeats + 1)
    )
    at_stop = stats.log_ratio(b[: seen.rounds], a[: seen.rounds]).significant
    return seen, naive, at_stop


def simulate_sequential(
    draw: Callable[[random.Random], tuple[list[float], list[float]]],
    effect: float,
    design: sequential.Design,
    experiments: int,
    rng: random.Random,
) -> Sequenced:
    """`experiments` experiments under the rule, each arm drawn by `draw`, b times `effect`."""
    claims = equivalent = capped = naive_claims = reported = 0
    repeats = []
    for _ in range(experiments):
        a, b = draw(rng)
        seen, naive, at_stop = sequence(a, [v * effect for v in b], design)
        outcome = seen.decisions[0].outcome
        claims += outcome == "differs"
        equivalent += outcome == "equivalent"
        capped += outcome == "undecided"
        naive_claims += naive
        reported += at_stop
        repeats.append(seen.rounds)
    return Sequenced(
        experiments, claims, equivalent, capped, tuple(repeats), naive_claims, reported
    )


def lognormal(sd_log: float, n: int) -> Callable[[random.Random], tuple[list[float], list[float]]]:
    def draw(rng: random.Random) -> tuple[list[float], list[float]]:
        a = [150.0 * math.exp(sd_log * rng.gauss(0.0, 1.0)) for _ in range(n)]
        b = [150.0 * math.exp(sd_log * rng.gauss(0.0, 1.0)) for _ in range(n)]
        return a, b

    return draw


def resampled(
    pool: Sequence[float], n: int
) -> Callable[[random.Random], tuple[list[float], list[float]]]:
    """2n distinct runs of the pool, n to each arm, in a random order."""

    def draw(rng: random.Random) -> tuple[list[float], list[float]]:
        picked = rng.sample(list(pool), 2 * n)
        return picked[:n], picked[n:]

    return draw


def sequential_main(args: argparse.Namespace) -> None:
    design = sequential.Design(max_repeats=args.max_repeats, min_effect=args.min_effect)
    design = design.for_slots(args.rounds_per_slot)
    looks = range(design.min_repeats, design.max_repeats + 1, design.look_every)
    levels = ", ".join(f"{design.confidence(n):.2%}" for n in looks)
    print(
        f"stopping rule: {design.looks} looks, after {design.min_repeats}..{design.max_repeats} "
        f"repeats, at {levels} (levels adding up to alpha {design.alpha:g}), equivalence "
        f"within [{design.bounds[0]:.3f}, {design.bounds[1]:.3f}]; after-idle RSS; "
        f"{args.sequences} experiments per row, seed {args.seed}"
    )
    sources: list[tuple[str, Callable[[random.Random], tuple[list[float], list[float]]]]] = []
    if args.folder is not None:
        runs = result_files.load_all([args.folder])
        extract = metrics.METRIC_BY_KEY[HEADLINE].extract
        pool = [
            v
            for r in [*ok_runs(runs, args.baseline), *ok_runs(runs, args.other)]
            if (v := extract(r)) is not None and math.isfinite(v)
        ]
        if len(pool) < 2 * design.max_repeats:
            raise SystemExit(
                f"{args.folder}: {len(pool)} ok runs; resampling needs >= {2 * design.max_repeats}"
            )
        sd_log = statistics.stdev(math.log(v) for v in pool)
        print(
            f"{args.folder}: {len(pool)} runs pooled, after-idle RSS median "
            f"{statistics.median(pool):.1f} MiB, sd of logs {sd_log:.4f}"
        )
        sources.append(
            (f"resampled real A/A runs ({len(pool)})", resampled(pool, design.max_repeats))
        )
        sources.append(
            (
                f"lognormal, sd of logs {sd_log:.3f} (the real runs')",
                lognormal(sd_log, design.max_repeats),
            )
        )
    else:
        sources.append(
            (f"lognormal, sd of logs {args.spread:g}", lognormal(args.spread, design.max_repeats))
        )
    for name, draw in sources:
        for effect in args.effect:
            what = "A/A: claims are false alarms" if effect == 1 else "power"
            print(f"{name}, true ratio {effect:g} ({what}):")
            found = simulate_sequential(
                draw, effect, design, args.sequences, random.Random(args.seed)
            )
            print("\n".join(found.lines(args.target_repeats)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, nargs="?", help="a results folder of A/A runs")
    parser.add_argument("--baseline", default="glibc")
    parser.add_argument("--other", default="glibc-again")
    parser.add_argument("--splits", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--simulate", type=int, metavar="N", help="N synthetic comparisons")
    parser.add_argument("--correlation", type=float, nargs="*", default=[0.0, 0.5, 0.9])
    parser.add_argument("--runs", type=int, default=BLOCK, help="simulated runs a side")
    parser.add_argument("--sequential", action="store_true", help="under --until-verdict's rule")
    parser.add_argument("--sequences", type=int, default=4000)
    parser.add_argument("--max-repeats", type=int, default=sequential.MAX_REPEATS)
    parser.add_argument("--min-effect", type=float, default=sequential.MIN_EFFECT)
    parser.add_argument(
        "--rounds-per-slot",
        type=int,
        default=1,
        help="rounds run at once (side_by_side / arms): the rule looks at each slot's end",
    )
    parser.add_argument("--effect", type=float, nargs="*", default=[1.0, 0.95, 0.9, 0.81])
    parser.add_argument("--spread", type=float, default=SPREAD_LOG, help="sd of the logs")
    parser.add_argument(
        "--target-repeats", type=int, default=3, help="count stops at or below this"
    )
    args = parser.parse_args()

    if args.sequential:
        sequential_main(args)
        return

    if args.simulate:
        template = result_files.load(TEMPLATE)
        for rho in args.correlation:
            rates = simulate(template, args.simulate, rho, random.Random(args.seed), args.runs)
            print(
                f"simulated A/A, {args.runs}-vs-{args.runs}, {len(metrics.METRICS) - 1} metrics "
                f"with a test (no failures; spread {SPREAD_LOG:.0%}, correlation {rho:g}, "
                f"seed {args.seed}):"
            )
            print("\n".join(rates.lines()))
        return
    if args.folder is None:
        parser.error("give a results folder of A/A runs, or --simulate N")
    runs = result_files.load_all([args.folder])
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

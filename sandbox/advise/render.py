"""The race's note: the ranked table (each figure a ratio with its 95 % interval against the
baseline), when each arm was dropped, the verdict and the stair read per arm, and the winner's
deploy lines with caveats."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence

from sandbox.advise import deploy, rules
from sandbox.advise.budget import shown
from sandbox.advise.catalogue import Arm
from sandbox.advise.race import FIGURES, RaceOutcome, figures_of
from sandbox.advise.state import RaceState
from sandbox.allocators import host_cores
from sandbox.analysis.caveats import uneven_load_warning
from sandbox.analysis.groups import group_results
from sandbox.analysis.stair_read import group_lines
from sandbox.analysis.stats import Ratio, log_ratio
from sandbox.analysis.verdict import verdicts
from sandbox.results.model import RunResult
from sandbox.results.sampling import PeriodicTrim

HEADERS = ("rank", "arm", "runs", "after-idle MiB", "after-idle", "peak", "throughput", "p95")
"""The ratio columns are each arm's figure over the baseline's (x glibc)."""


def stair_reads(results: Sequence[RunResult]) -> list[str]:
    """Each arm's stair read (what each batch added; levels off or climbing), arm by arm."""
    out: list[str] = []
    for label, runs in group_results(results).items():
        read = group_lines(label, runs, None)
        if read is not None:
            out += list(read.lines)
    return out


Figures = Mapping[str, Mapping[str, Sequence[float]]]
"""Arm -> metric -> the values of its runs that finished ok (`race.figures_of`)."""


def ratio_to(figures: Figures, arm: str, base: str, metric: str) -> Ratio:
    """`arm`'s `metric` over `base`'s (geometric means, with the interval)."""
    own, other = figures.get(arm, {}), figures.get(base, {})
    return log_ratio(list(own.get(metric, ())), list(other.get(metric, ())))


def _section(heading: str, lines: Sequence[str]) -> list[str]:
    """A heading, its lines and a blank line; nothing without lines."""
    return [heading, *lines, ""] if lines else []


def periodic_trims(results: Sequence[RunResult]) -> list[str]:
    """For each arm whose agents trimmed periodically: how many trims, how long they took."""
    out = []
    for label, runs in group_results(results).items():
        made = [a.periodic_trim for r in runs for a in r.sampler.agents if a.periodic_trim]
        trims = PeriodicTrim.combined(made)
        if trims is not None:
            out.append(f"- {label}: {trims.describe(f' in {len(runs)} runs')}")
    return out


def winner(race: RaceState) -> str | None:
    """The last decided round's best arm."""
    decided = [r for r in race.rounds if r.decided]
    return decided[-1].best if decided else None


def ranking(race: RaceState, figures: Figures) -> list[str]:
    """The arms with runs, winner first, then by geometric mean after-idle RSS."""

    def score(arm: str) -> float:
        g = rules.geometric_mean(list(figures.get(arm, {}).get(rules.HEADLINE, ())))
        return g if g is not None else float("inf")

    best = winner(race)
    names = [a.name for a in race.settings.arms if a.name in figures]
    return sorted(names, key=lambda a: (a != best, score(a)))


def _status(race: RaceState, arm: str) -> str:
    dropped = race.dropped_at()
    marked = next((r.not_recommended for r in reversed(race.rounds) if r.decided), {})
    words = []
    if arm == winner(race):
        words.append("WINNER" if race.stopped and "separated" in race.stopped else "leading")
    if arm in marked:
        words.append("not recommended")
    if arm in dropped:
        words.append(f"dropped after round {dropped[arm][0]}")
    if arm == race.settings.baseline:
        words.append("baseline")
    return ", ".join(words) or "live"


def table(race: RaceState, figures: Figures) -> str:
    """The ranked table, as Markdown."""
    base = race.settings.baseline
    rows = []
    for i, arm in enumerate(ranking(race, figures), 1):
        own = figures.get(arm, {})
        cells = [str(i), arm, str(len(own.get(rules.HEADLINE, ())))]
        values = list(own.get(rules.HEADLINE, ()))
        median = statistics.median(values) if values else None
        cells.append(f"{median:.0f}" if median is not None else "-")
        for metric in FIGURES:
            if arm == base:
                cells.append("1")
                continue
            cells.append(rules.shown_ratio(ratio_to(figures, arm, base, metric)))
        rows.append((*cells, _status(race, arm)))
    head = (*HEADERS, "status")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _winner_arm(race: RaceState) -> Arm | None:
    best = winner(race)
    return next((a for a in race.settings.arms if a.name == best), None)


def not_ruled_out(race: RaceState, figures: Figures, arm: str) -> list[str]:
    """The costs past the tolerance that the winner's intervals still allow (the guardrail
    marks only a cost its interval shows)."""
    s = race.settings
    if arm == s.baseline:
        return []
    out = []
    for metric, words in ((rules.THROUGHPUT, "throughput"), (rules.P95, "p95 latency")):
        r = ratio_to(figures, arm, s.baseline, metric)
        if r.ratio is None:
            continue
        if metric == rules.THROUGHPUT:
            costly = (r.ratio if r.ci_low is None else r.ci_low) < 1 - s.tolerance
        else:
            costly = (r.ratio if r.ci_high is None else r.ci_high) > 1 + s.tolerance
        if costly:
            out.append(
                f"a {words} cost of more than {s.tolerance:.0%} is not ruled out "
                f"({rules.shown_ratio(r)} x {s.baseline}): run more rounds (a larger --budget, "
                "or --arms with fewer arms) before you deploy"
            )
    return out


def note(outcome: RaceOutcome) -> str:
    """The whole note: settings, table, drops, verdicts, the winner's deploy lines, caveats."""
    race = outcome.state
    s = race.settings
    figures = figures_of(outcome.results)
    cores = s.overrides.get("host_cores")
    out = [f"# sandbox advise: {s.name}", ""]
    out.append(f"workload: {s.workload}")
    if cores is not None:
        out.append(
            f"host_cores={cores}: glibc arms {host_cores.describe(None, cores)}, jemalloc arms "
            f"{host_cores.describe('libjemalloc.so.2', cores)}, where the arm sets none"
        )
    out.append(
        f"rounds: {len(race.rounds)}, {race.elapsed_s / 60:.1f} min of a {shown(s.budget_s)} "
        f"budget; stopped: {race.stopped or 'interrupted'}"
    )
    out += [f"skipped: {line}" for line in s.skipped]
    out += ["", f"Ratios against {s.baseline} (geometric means, 95 % intervals, unadjusted):", ""]
    out += [table(race, figures), ""]
    ok = [r for r in outcome.results if r.status == "ok"]
    by_arm = group_results(ok)
    base = next((lab for lab, runs in by_arm.items() if runs[0].allocator.name == s.baseline), None)
    uneven = (
        None
        if base is None
        else uneven_load_warning(by_arm, {lab: base for lab in by_arm if lab != base})
    )
    if uneven is not None:
        out += [f"Note: {uneven.message}.", ""]
    dropped = race.dropped_at()
    out += _section(
        "Dropped:", [f"- {arm}: after round {n}: {why}" for arm, (n, why) in dropped.items()]
    )
    marked = next((r.not_recommended for r in reversed(race.rounds) if r.decided), {})
    out += _section(
        "Not recommended (guardrail):", [f"- {arm}: {why}" for arm, why in marked.items()]
    )
    out += _section(
        "Periodic trims (each one blocks the allocator while it runs):", periodic_trims(ok)
    )
    out += _section("Verdict per arm:", [f"- {line}" for line in verdicts(ok)])
    out += _section("Stair read per arm:", stair_reads(ok))
    arm = _winner_arm(race)
    if arm is None:
        out.append("No winner: no arm finished a run.")
        return "\n".join(out)
    gain = ratio_to(figures, arm.name, s.baseline, rules.HEADLINE)
    if arm.name != s.baseline and not (gain.ci_high is not None and gain.ci_high < 1):
        out.append(
            f"No remedy is clearly better than {s.baseline}: the best, {arm.name}, has after-idle "
            f"RSS {rules.shown_ratio(gain)} x {s.baseline}, an interval that does not lie below "
            "1. Nothing to deploy on this evidence; the verdicts above say what the memory is "
            "(live data such as a cache or a leak is the application's, and no allocator returns "
            "it). A longer race (--budget) can still find a small gain."
        )
        return "\n".join(out)
    separated = bool(race.stopped and "separated" in race.stopped)
    if separated:
        out.append(f"Winner: {arm.name}: {arm.changes}.")
    else:
        rivals = [a for a in race.live() if a not in (arm.name, s.baseline)]
        out.append(
            f"Leading (not separated from {', '.join(rivals) or s.baseline} within the budget): "
            f"{arm.name}: {arm.changes}."
        )
    out += ["", "Deploy it:", ""]
    out += deploy.lines(arm)
    caveats = [*not_ruled_out(race, figures, arm.name), *arm.caveats]
    if cores is not None:
        caveats.append(host_cores.CANNOT_EMULATE)
    caveats.append(
        "measured on this workload on this machine: race your own service (--app / --cmd) "
        "before you deploy"
    )
    out += ["", "Caveats:"]
    out += [f"- {c}" for c in caveats]
    return "\n".join(out)

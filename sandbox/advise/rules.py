"""The race's decisions after each round, pure: the best arm, which arms are dropped, which are
not recommended, and whether the race stops. Inputs are each arm's per-run figures.

Best arm: the lowest geometric mean of after-idle RSS among the live arms that are not marked
"not recommended" (among all live arms when every one is marked).
Dropping: from round `min_rounds` on, each live arm is compared with the best by the ratio of
geometric means of after-idle RSS (Welch's t on the logs, `stats.log_ratio`); the p-values of
these comparisons are Holm-adjusted together (`multiplicity.holm`), and an arm is dropped when
its ratio is above 1 and its adjusted p-value is below ALPHA: its interval lies clearly above
the best's. An arm marked "not recommended" is dropped too (it cannot win). The baseline arm is
the reference of every ratio in the table: it keeps running when the rule drops it, and counts
as separated.
Guardrail: an arm is "not recommended" when it costs more than `tolerance` of throughput or of
p95 latency against the baseline: the ratio lies beyond 1 -/+ tolerance and its interval lies
wholly on the costly side of 1 (no interval, no mark: the winner's note still names a cost its
figures do not rule out).
Stop: when every live arm but the best is dropped (separated), when the next round would
overrun the budget (its time estimated from the rounds done: seconds per run so far x live
arms), or after `max_rounds`.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sandbox.analysis.multiplicity import holm
from sandbox.analysis.stats import ALPHA, Ratio, log_ratio

HEADLINE = "after_idle_rss_mib"
THROUGHPUT = "throughput_rps"
P95 = "p95_ms"
TOLERANCE = 0.05
MIN_ROUNDS = 2
MAX_ROUNDS = 12

Figures = Mapping[str, Mapping[str, Sequence[float]]]
"""Arm -> metric -> the values of its runs that finished ok."""


@dataclass(frozen=True)
class Decision:
    """What one round decided."""

    best: str | None
    dropped: Mapping[str, str]
    """Arm -> why, in one line (newly dropped this round)."""
    not_recommended: Mapping[str, str]
    """Arm -> which guardrail it failed (every arm marked, as of this round)."""


def _values(figures: Figures, arm: str, metric: str) -> list[float]:
    return [float(v) for v in figures.get(arm, {}).get(metric, ())]


def geometric_mean(values: Sequence[float]) -> float | None:
    positive = [v for v in values if v > 0]
    return statistics.geometric_mean(positive) if positive else None


def shown_ratio(r: Ratio) -> str:
    if r.ratio is None:
        return "n/a"
    if r.ci_low is None or r.ci_high is None:
        return f"{r.ratio:.2f}"
    return f"{r.ratio:.2f} [{r.ci_low:.2f}, {r.ci_high:.2f}]"


def _costly(r: Ratio, *, below: bool) -> bool:
    """The interval's bound nearest 1 lies on the costly side; without an interval (one run, or
    no spread on either side: Locust's p95 comes in histogram steps, 100 ms apart above 1 s, so
    two runs often agree exactly) nothing is marked."""
    bound = r.ci_high if below else r.ci_low
    if bound is None:
        return False
    return bound < 1 if below else bound > 1


def guardrail(figures: Figures, arm: str, baseline: str, tolerance: float) -> str | None:
    """Why `arm` is not recommended (its throughput or p95 cost), or None."""
    if arm == baseline:
        return None
    reasons = []
    rps = log_ratio(_values(figures, arm, THROUGHPUT), _values(figures, baseline, THROUGHPUT))
    if rps.ratio is not None and rps.ratio < 1 - tolerance and _costly(rps, below=True):
        reasons.append(f"throughput {shown_ratio(rps)} x {baseline}")
    p95 = log_ratio(_values(figures, arm, P95), _values(figures, baseline, P95))
    if p95.ratio is not None and p95.ratio > 1 + tolerance and _costly(p95, below=False):
        reasons.append(f"p95 {shown_ratio(p95)} x {baseline}")
    if not reasons:
        return None
    return f"costs more than {tolerance:.0%}: " + ", ".join(reasons)


def best_arm(
    figures: Figures, live: Sequence[str], not_recommended: Mapping[str, str]
) -> str | None:
    """The live arm with the lowest geometric mean after-idle RSS, preferring recommended ones."""
    scored = [(g, a) for a in live if (g := geometric_mean(_values(figures, a, HEADLINE)))]
    if not scored:
        return None
    recommended = [(g, a) for g, a in scored if a not in not_recommended]
    return min(recommended or scored)[1]


def decide(
    figures: Figures,
    live: Sequence[str],
    baseline: str,
    rounds_done: int,
    *,
    tolerance: float = TOLERANCE,
    min_rounds: int = MIN_ROUNDS,
) -> Decision:
    """The round's decision over the `live` arms (see the module docstring)."""
    marked = {a: why for a in live if (why := guardrail(figures, a, baseline, tolerance))}
    best = best_arm(figures, live, marked)
    if best is None or rounds_done < min_rounds:
        return Decision(best, {}, marked)
    others = [a for a in live if a != best]
    best_values = _values(figures, best, HEADLINE)
    ratios = [log_ratio(_values(figures, a, HEADLINE), best_values, HEADLINE) for a in others]
    adjusted = holm([r.p_value for r in ratios])
    dropped: dict[str, str] = {}
    for arm, r, p in zip(others, ratios, adjusted, strict=True):
        if r.ratio is not None and r.ratio > 1 and p is not None and p < ALPHA:
            dropped[arm] = f"after-idle RSS {shown_ratio(r)} x {best} (Holm p {p:.3g})"
        elif not _values(figures, arm, HEADLINE):
            dropped[arm] = f"no run finished ok in {rounds_done} rounds"
        elif arm in marked:
            dropped[arm] = f"not recommended: {marked[arm]}"
    return Decision(best, dropped, marked)


def separated(live: Sequence[str], best: str | None, dropped: Sequence[str]) -> bool:
    """Every live arm but the best has been dropped."""
    return best is not None and all(a == best or a in dropped for a in live)


def next_round_s(run_seconds: Sequence[float], arms: int) -> float | None:
    """The next round's time: the mean seconds per run so far times its arms (None: no runs)."""
    return statistics.fmean(run_seconds) * arms if run_seconds else None


def stop_reason(
    *,
    is_separated: bool,
    best: str | None,
    elapsed_s: float,
    budget_s: float,
    estimate_s: float | None,
    rounds_done: int,
    max_rounds: int = MAX_ROUNDS,
) -> str | None:
    """Why the race stops now, in one line; None to run another round."""
    if is_separated:
        return f"{best} is separated from every other arm"
    if rounds_done >= max_rounds:
        return f"{max_rounds} rounds run (--max-rounds)"
    if estimate_s is not None and elapsed_s + estimate_s > budget_s:
        return (
            f"the next round (about {estimate_s:.0f} s) would overrun the budget "
            f"({elapsed_s:.0f} of {budget_s:.0f} s used)"
        )
    return None

"""The statistics: describe a metric's values, compare two groups by the ratio of geometric
means (Welch's t-test on the log values), find outliers. Pure numbers, no runs.

Welch's test on log values is robust for few repeats with unequal variances; the t
distribution comes from `sandbox.analysis.tdist` (no scipy).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from sandbox.analysis import tdist as _tdist

CONFIDENCE = 0.95
OUTLIER_MIN_N = 4
OUTLIER_MADS = 3.0
"""A value is an outlier beyond median ± this many (normal-scaled) median absolute deviations."""
OUTLIER_MIN_REL = 0.05
"""... and at least this fraction of the median away from it (small n makes the MAD tiny)."""
MAD_SCALE = 1.4826


@dataclass(frozen=True)
class Stats:
    """Descriptive statistics of one metric within one group."""

    metric: str
    n: int
    median: float
    mean: float
    sd: float | None
    """Sample standard deviation (n-1); None with a single run."""
    min: float
    max: float
    values: tuple[float, ...]
    """The per-run values, in run order."""

    @property
    def cv(self) -> float | None:
        """sd / mean (coefficient of variation); None when undefined."""
        if self.sd is None or self.mean == 0:
            return None
        return self.sd / abs(self.mean)


@dataclass(frozen=True)
class Ratio:
    """One group against the baseline group for one metric."""

    metric: str
    ratio: float | None
    """Ratio of geometric means (group / baseline); None when undefined (zeros)."""
    ci_low: float | None
    """Lower end of the 95 % confidence interval; None when there is no interval."""
    ci_high: float | None
    p_value: float | None
    """Two-sided Welch t-test on log values; None when there is no test."""
    n: int
    n_baseline: int
    note: str = ""
    """Why the interval or ratio is missing, if it is."""

    @property
    def significant(self) -> bool:
        """True when the confidence interval excludes 1.0."""
        if self.ci_low is None or self.ci_high is None:
            return False
        return self.ci_low > 1.0 or self.ci_high < 1.0


def describe(values: Sequence[float], metric: str) -> Stats:
    """n, median, mean, sample sd, min and max of `values`."""
    sd = statistics.stdev(values) if len(values) > 1 else None
    return Stats(
        metric=metric,
        n=len(values),
        median=float(statistics.median(values)),
        mean=float(statistics.fmean(values)),
        sd=sd,
        min=float(min(values)),
        max=float(max(values)),
        values=tuple(float(v) for v in values),
    )


def log_ratio(
    values: Sequence[float],
    baseline: Sequence[float],
    metric: str = "",
    confidence: float = CONFIDENCE,
) -> Ratio:
    """Ratio of geometric means with a Welch t interval on the logs: exp(Δ ± t·se).

    Δ = mean(log values) - mean(log baseline), se = sqrt(s1²/n1 + s2²/n2), df by
    Welch-Satterthwaite. With a single run on either side there is no interval or p-value.
    """
    n, nb = len(values), len(baseline)
    if n == 0 or nb == 0:
        return Ratio(metric, None, None, None, None, n, nb, "no values")
    if min(values) <= 0 or min(baseline) <= 0:
        mean_b = statistics.fmean(baseline)
        if mean_b <= 0:
            return Ratio(metric, None, None, None, None, n, nb, "baseline is zero")
        plain = statistics.fmean(values) / mean_b
        return Ratio(metric, plain, None, None, None, n, nb, "zeros: ratio of means, no interval")
    lx = [math.log(v) for v in values]
    ly = [math.log(v) for v in baseline]
    delta = statistics.fmean(lx) - statistics.fmean(ly)
    ratio = math.exp(delta)
    if n < 2 or nb < 2:
        return Ratio(metric, ratio, None, None, None, n, nb, "no interval with one run")
    vx, vy = statistics.variance(lx) / n, statistics.variance(ly) / nb
    se = math.sqrt(vx + vy)
    if se == 0:
        p = 1.0 if delta == 0 else 0.0
        return Ratio(metric, ratio, ratio, ratio, p, n, nb, "no variation")
    df = (vx + vy) ** 2 / (vx**2 / (n - 1) + vy**2 / (nb - 1))
    t_crit = _tdist.ppf(0.5 + confidence / 2, df)
    p = _tdist.two_sided_p(delta / se, df)
    return Ratio(
        metric,
        ratio,
        math.exp(delta - t_crit * se),
        math.exp(delta + t_crit * se),
        p,
        n,
        nb,
    )


def outliers(values: Sequence[float]) -> list[int]:
    """Indexes of values beyond median ± 3 scaled MADs (and ≥ 5 % off); needs n ≥ 4."""
    if len(values) < OUTLIER_MIN_N:
        return []
    med = statistics.median(values)
    mad = MAD_SCALE * statistics.median(abs(v - med) for v in values)
    limit = max(OUTLIER_MADS * mad, OUTLIER_MIN_REL * abs(med))
    return [i for i, v in enumerate(values) if abs(v - med) > limit]

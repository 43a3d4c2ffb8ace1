"""The statistics: describe a metric's values, compare two groups by the ratio of geometric
means (Welch's t-test on the log values), find outliers. Pure numbers, no runs.

Welch's test on log values is robust for few repeats with unequal variances; the t
distribution comes from `sandbox.analysis.tdist` (no scipy). Two groups without spread get no
test: with a zero standard error any difference would give p = 0, and repeats that agree exactly
are common for whole numbers (Locust's p95 latency comes from its histogram). Adjusting the
p-values of many metrics is `sandbox.analysis.multiplicity`'s job.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from sandbox.analysis import tdist as _tdist

CONFIDENCE = 0.95
ALPHA = 0.05
"""The significance level, 1 - CONFIDENCE: an adjusted p-value below it is significant."""
NO_SPREAD_SD_LOG = 1e-9
"""A group whose log values have a sample sd below this has no spread: a relative spread of
1e-9 is far below anything measured (one 4 KiB page of 100 MiB is 4e-5) and far above float
rounding (1e-16), so equal values that went through arithmetic still count as equal."""
NO_SPREAD = "no test: no spread"
"""The note of a comparison where neither group varies."""
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
    p_adjusted: float | None = None
    """Holm-adjusted p-value among the exploratory metrics of its comparison (see
    `sandbox.analysis.multiplicity`); None when not adjusted or when there is no test."""
    exploratory: bool = False
    """True for a metric adjusted together with others: `significant` then follows
    `p_adjusted`; False for a test that stands alone (the confirmatory metric, a lone
    `log_ratio`), whose significance follows its interval."""

    @property
    def significant(self) -> bool:
        """Exploratory: the adjusted p-value is below ALPHA; else the interval excludes 1.0.
        The interval is never adjusted, so an exploratory one may exclude 1.0 and still not
        be significant."""
        if self.exploratory:
            return self.p_adjusted is not None and self.p_adjusted < ALPHA
        if self.ci_low is None or self.ci_high is None:
            return False
        return self.ci_low > 1.0 or self.ci_high < 1.0

    @property
    def role(self) -> str:
        """`exploratory` (adjusted with others) or `confirmatory` (a test that stands alone)."""
        return "exploratory" if self.exploratory else "confirmatory"


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
    Welch-Satterthwaite. With a single run on either side, or no spread on both sides
    (`NO_SPREAD_SD_LOG`), there is no interval or p-value; with no spread on one side only,
    that side's variance counts as 0 and df comes from the other side.
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
    vx, vy = _spread(lx) / n, _spread(ly) / nb
    if vx == 0 and vy == 0:
        return Ratio(metric, ratio, None, None, None, n, nb, NO_SPREAD)
    se = math.sqrt(vx + vy)
    df = _welch_df(vx, n, vy, nb)
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


def _spread(logs: Sequence[float]) -> float:
    """Sample variance of `logs`; exactly 0 below `NO_SPREAD_SD_LOG` (float noise)."""
    var = statistics.variance(logs)
    return 0.0 if var < NO_SPREAD_SD_LOG**2 else var


def _welch_df(vx: float, n: int, vy: float, nb: int) -> float:
    """Welch-Satterthwaite degrees of freedom of s1²/n1 = vx and s2²/n2 = vy (not both 0).

    A side without spread adds nothing to the standard error, so df is the other side's n - 1
    exactly (the general formula gives the same, but through 0/0-prone squares)."""
    if vx == 0:
        return float(nb - 1)
    if vy == 0:
        return float(n - 1)
    return (vx + vy) ** 2 / (vx**2 / (n - 1) + vy**2 / (nb - 1))


def outliers(values: Sequence[float]) -> list[int]:
    """Indexes of values beyond median ± 3 scaled MADs (and ≥ 5 % off); needs n ≥ 4."""
    if len(values) < OUTLIER_MIN_N:
        return []
    med = statistics.median(values)
    mad = MAD_SCALE * statistics.median(abs(v - med) for v in values)
    limit = max(OUTLIER_MADS * mad, OUTLIER_MIN_REL * abs(med))
    return [i for i, v in enumerate(values) if abs(v - med) > limit]

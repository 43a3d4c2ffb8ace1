"""stats: the t distribution, ratios with intervals and p-values, descriptive statistics and
outliers, with known answers (directly, and as `compare` reports them per group)."""

from __future__ import annotations

import math
import statistics

import pytest

from sandbox.analysis import compare, report, stats
from sandbox.analysis import tdist as _tdist
from tests.fakes import fixed_runs

T975_DF2 = math.sqrt(2 * 0.95**2 / (1 - 0.95**2))  # exact: t/sqrt(2+t^2) = 0.95 for df=2


# --- Student t ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("df", "t"),
    [(1, 12.706204736), (2, T975_DF2), (4, 2.776445105), (10, 2.228138852), (30, 2.042272456)],
)
def test_t_quantile_matches_tables(df: float, t: float) -> None:
    assert _tdist.ppf(0.975, df) == pytest.approx(t, rel=1e-8)
    assert _tdist.two_sided_p(t, df) == pytest.approx(0.05, rel=1e-7)


def test_t_p_value_closed_form_df2() -> None:
    # For df=2 the two-sided p-value is 1 - t / sqrt(2 + t^2).
    for t in (0.0, 0.5, 1.3, 3.0, 10.0):
        assert _tdist.two_sided_p(t, 2) == pytest.approx(1 - t / math.sqrt(2 + t * t), abs=1e-12)


# --- ratio, interval, p ---------------------------------------------------------------------


def test_ratio_interval_and_p_known_answer_df2() -> None:
    # jemalloc is exactly half of glibc, with the same spread of logs: df = 2 (n = 2 + 2).
    c = compare.compare(fixed_runs("glibc", [100, 120]) + fixed_runs("jemalloc", [50, 60]))
    r = c.group("jemalloc").ratio("after_idle_rss_mib")
    assert r is not None
    s2 = statistics.variance([math.log(100), math.log(120)])
    se = math.sqrt(s2 / 2 + s2 / 2)
    t = math.log(0.5) / se
    assert r.ratio == pytest.approx(0.5)
    assert r.ci_low == pytest.approx(0.5 * math.exp(-T975_DF2 * se), rel=1e-9)
    assert r.ci_high == pytest.approx(0.5 * math.exp(T975_DF2 * se), rel=1e-9)
    assert r.p_value == pytest.approx(1 - abs(t) / math.sqrt(2 + t * t), rel=1e-9)
    assert (r.n, r.n_baseline) == (2, 2)
    assert r.significant


def test_welch_unequal_variances_known_df() -> None:
    a, b = [100.0, 101.0, 102.0, 103.0], [80.0, 90.0, 100.0]
    r = stats.log_ratio(a, b, "m")
    la, lb = [math.log(v) for v in a], [math.log(v) for v in b]
    va, vb = statistics.variance(la) / 4, statistics.variance(lb) / 3
    df = (va + vb) ** 2 / (va**2 / 3 + vb**2 / 2)
    se = math.sqrt(va + vb)
    delta = statistics.fmean(la) - statistics.fmean(lb)
    t_crit = _tdist.ppf(0.975, df)
    assert r.ratio == pytest.approx(math.exp(delta))
    assert r.ci_low == pytest.approx(math.exp(delta - t_crit * se))
    assert r.ci_high == pytest.approx(math.exp(delta + t_crit * se))
    assert r.p_value == pytest.approx(_tdist.two_sided_p(delta / se, df))


def test_identical_groups_are_not_significant() -> None:
    c = compare.compare(
        fixed_runs("glibc", [100, 110, 120]) + fixed_runs("jemalloc", [100, 110, 120])
    )
    r = c.group("jemalloc").ratio("after_idle_rss_mib")
    assert r is not None
    assert r.ratio == pytest.approx(1.0)
    assert r.p_value == pytest.approx(1.0)
    assert r.ci_low is not None and r.ci_high is not None
    assert r.ci_low < 1.0 < r.ci_high
    assert not r.significant


def test_overlapping_noisy_groups_are_not_significant() -> None:
    c = compare.compare(
        fixed_runs("glibc", [100, 140, 120]) + fixed_runs("jemalloc", [110, 130, 125])
    )
    r = c.group("jemalloc").ratio("after_idle_rss_mib")
    assert r is not None and r.p_value is not None
    assert r.p_value > 0.05
    assert not r.significant


def test_clearly_separated_groups_are_significant() -> None:
    c = compare.compare(
        fixed_runs("glibc", [200, 202, 204]) + fixed_runs("jemalloc", [100, 101, 102])
    )
    r = c.group("jemalloc").ratio("after_idle_rss_mib")
    assert r is not None and r.p_value is not None and r.ci_high is not None
    assert r.p_value < 0.001
    assert r.ci_high < 1.0
    assert r.significant


def test_single_run_gives_a_ratio_but_no_interval() -> None:
    c = compare.compare(fixed_runs("glibc", [100, 110, 120]) + fixed_runs("jemalloc", [55]))
    r = c.group("jemalloc").ratio("after_idle_rss_mib")
    assert r is not None
    gm = math.exp(statistics.fmean(math.log(v) for v in (100, 110, 120)))
    assert r.ratio == pytest.approx(55 / gm)
    assert (r.ci_low, r.ci_high, r.p_value) == (None, None, None)
    assert not r.significant
    assert "no interval" in r.note
    assert "no interval" in report.render(c, "table")
    s = c.group("jemalloc").stat("after_idle_rss_mib")
    assert s is not None and s.sd is None


def test_zero_values_have_no_log_ratio() -> None:
    r = stats.log_ratio([0.0, 0.0], [0.0, 0.0], "failures")
    assert r.ratio is None and r.note == "baseline is zero"
    r = stats.log_ratio([0.0, 2.0], [1.0, 1.0], "failures")
    assert r.ratio == pytest.approx(1.0) and r.ci_low is None


# --- descriptive statistics and outliers ------------------------------------------------------


def test_describe_known_values() -> None:
    s = stats.describe([3.0, 1.0, 2.0, 10.0], "m")
    assert (s.n, s.median, s.mean, s.min, s.max) == (4, 2.5, 4.0, 1.0, 10.0)
    assert s.sd == pytest.approx(statistics.stdev([3, 1, 2, 10]))


def test_outliers_need_four_values() -> None:
    assert stats.outliers([100, 101, 99, 100, 150]) == [4]
    assert stats.outliers([100, 101, 150]) == []  # n < 4: no outlier test
    assert stats.outliers([100, 101, 99, 100, 102]) == []

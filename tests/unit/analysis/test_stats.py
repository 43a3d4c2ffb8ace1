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


def _table_row(table: str, metric_label: str, group: str) -> str:
    """The table line of `group` for `metric_label` (the label is on the group's first line)."""
    lines = table.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(metric_label))
    return next(
        line for line in lines[start:] if line.removeprefix(metric_label).split()[0] == group
    )


def test_no_spread_on_both_sides_is_no_test() -> None:
    # Equal repeats on both sides (a whole-number p95, say): no p = 0, no interval, no claim.
    c = compare.compare(fixed_runs("glibc", [100, 100, 100]) + fixed_runs("jemalloc", [120] * 3))
    r = c.group("jemalloc").ratio("after_idle_rss_mib")
    assert r is not None
    assert r.ratio == pytest.approx(1.2)
    assert (r.ci_low, r.ci_high, r.p_value, r.note) == (None, None, None, "no test: no spread")
    assert not r.significant
    table = report.render(c, "table")
    lines = table.splitlines()
    assert (
        "jemalloc  after-idle 120.0 ± 0.0 MiB   1.20 × glibc (n=3/3, no test: no spread)" in lines
    )
    row = _table_row(table, "after-idle RSS (MiB)", "jemalloc")
    assert row.endswith("  1.20 × glibc (n=3/3, no test: no spread)")
    vs = c.to_dict()["groups"][1]["vs_baseline"]["after_idle_rss_mib"]
    assert (vs["p_value"], vs["ci_low"], vs["significant"]) == (None, None, False)


def test_no_spread_with_equal_means_is_no_test_either() -> None:
    r = stats.log_ratio([60.0] * 3, [60.0] * 3, "baseline_rss_mib")
    assert (r.ratio, r.ci_low, r.ci_high, r.p_value) == (1.0, None, None, None)
    assert report.ratio_text(r, "glibc") == "1.00 \u00d7 glibc (n=3/3, no test: no spread)"


def test_float_noise_is_no_spread() -> None:
    # 0.1 + 0.2 != 0.3 in floats: a spread of 1e-16 must not make a t statistic of 1e15.
    noisy = [0.1 + 0.2, 0.3, 0.3]
    assert statistics.stdev(noisy) > 0
    r = stats.log_ratio(noisy, [0.4, 0.4, 0.4], "m")
    assert (r.ci_low, r.ci_high, r.p_value, r.note) == (None, None, None, "no test: no spread")
    assert report.ratio_text(r, "glibc") == "0.75 \u00d7 glibc (n=3/3, no test: no spread)"


def test_no_spread_on_one_side_takes_df_from_the_other() -> None:
    # Only the baseline varies: se comes from it alone and df = its n - 1 = 2 (closed form).
    c = compare.compare(fixed_runs("glibc", [90, 100, 110]) + fixed_runs("jemalloc", [120] * 3))
    r = c.group("jemalloc").ratio("after_idle_rss_mib")
    assert r is not None
    logs = [math.log(v) for v in (90, 100, 110)]
    delta = math.log(120) - statistics.fmean(logs)
    se = math.sqrt(statistics.variance(logs) / 3)
    t = delta / se
    assert r.ratio == pytest.approx(math.exp(delta))
    assert r.ci_low == pytest.approx(math.exp(delta - T975_DF2 * se), rel=1e-9)
    assert r.ci_high == pytest.approx(math.exp(delta + T975_DF2 * se), rel=1e-9)
    assert r.p_value == pytest.approx(1 - abs(t) / math.sqrt(2 + t * t), rel=1e-9)
    assert r.note == ""
    text = f"1.20 [{r.ci_low:.2f}, {r.ci_high:.2f}] \u00d7 glibc (p={r.p_value:.3f}, n=3/3)"
    assert text == "1.20 [0.94, 1.54] \u00d7 glibc (p=0.085, n=3/3)"
    table = report.render(c, "table")
    assert "jemalloc  after-idle 120.0 ±  0.0 MiB   " + text in table.splitlines()
    assert _table_row(table, "after-idle RSS (MiB)", "jemalloc").endswith("  " + text)


def test_float_noise_on_one_side_counts_as_no_spread() -> None:
    # The same as an exact zero: df from the other side, no division by a vanishing variance.
    exact = stats.log_ratio([0.3, 0.3, 0.3], [0.25, 0.3, 0.35], "m")
    noisy = stats.log_ratio([0.1 + 0.2, 0.3, 0.3], [0.25, 0.3, 0.35], "m")
    assert exact.p_value is not None and noisy.p_value is not None
    assert noisy.p_value == pytest.approx(exact.p_value, rel=1e-9)
    assert noisy.ci_low == pytest.approx(exact.ci_low, rel=1e-9)
    reverse = stats.log_ratio([0.25, 0.3, 0.35], [0.1 + 0.2, 0.3, 0.3], "m")
    assert reverse.p_value == pytest.approx(exact.p_value, rel=1e-9)


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

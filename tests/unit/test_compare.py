"""compare: statistics with known answers, every warning, every render format."""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from dataclasses import replace
from typing import Any

import pytest

from sandbox.analysis import compare, report
from sandbox.analysis import tdist as _tdist
from sandbox.errors import ConfigError, SandboxError
from sandbox.load.models import LoadModel
from sandbox.load.stats import BatchStats
from sandbox.results import RunResult
from tests.fakes import MIB, make_group, make_result, with_load, with_summary

T975_DF2 = math.sqrt(2 * 0.95**2 / (1 - 0.95**2))  # exact: t/sqrt(2+t^2) = 0.95 for df=2


def fixed(
    allocator: str, after_idle: float, repeat: int = 0, peak: float | None = None, **kw: Any
) -> RunResult:
    """A fake run whose after-idle RSS is exactly `after_idle` MiB."""
    run = make_result(allocator, repeat=repeat, **kw)
    return with_summary(
        run,
        after_idle_mib=after_idle,
        peak_mib=after_idle + 50 if peak is None else peak,
        end_of_load_mib=after_idle + 40,
    )


def runs(allocator: str, values: list[float], **kw: Any) -> list[RunResult]:
    return [fixed(allocator, v, repeat=i, **kw) for i, v in enumerate(values)]


def kinds(c: compare.Comparison) -> list[str]:
    return [w.kind for w in c.warnings]


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
    c = compare.compare(runs("glibc", [100, 120]) + runs("jemalloc", [50, 60]))
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
    r = compare.log_ratio(a, b, "m")
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
    c = compare.compare(runs("glibc", [100, 110, 120]) + runs("jemalloc", [100, 110, 120]))
    r = c.group("jemalloc").ratio("after_idle_rss_mib")
    assert r is not None
    assert r.ratio == pytest.approx(1.0)
    assert r.p_value == pytest.approx(1.0)
    assert r.ci_low is not None and r.ci_high is not None
    assert r.ci_low < 1.0 < r.ci_high
    assert not r.significant


def test_overlapping_noisy_groups_are_not_significant() -> None:
    c = compare.compare(runs("glibc", [100, 140, 120]) + runs("jemalloc", [110, 130, 125]))
    r = c.group("jemalloc").ratio("after_idle_rss_mib")
    assert r is not None and r.p_value is not None
    assert r.p_value > 0.05
    assert not r.significant


def test_clearly_separated_groups_are_significant() -> None:
    c = compare.compare(runs("glibc", [200, 202, 204]) + runs("jemalloc", [100, 101, 102]))
    r = c.group("jemalloc").ratio("after_idle_rss_mib")
    assert r is not None and r.p_value is not None and r.ci_high is not None
    assert r.p_value < 0.001
    assert r.ci_high < 1.0
    assert r.significant


def test_single_run_gives_a_ratio_but_no_interval() -> None:
    c = compare.compare(runs("glibc", [100, 110, 120]) + runs("jemalloc", [55]))
    r = c.group("jemalloc").ratio("after_idle_rss_mib")
    assert r is not None
    gm = math.exp(statistics.fmean(math.log(v) for v in (100, 110, 120)))
    assert r.ratio == pytest.approx(55 / gm)
    assert (r.ci_low, r.ci_high, r.p_value) == (None, None, None)
    assert not r.significant
    assert "no interval" in r.note
    assert "no interval" in compare.render(c, "table")
    stats = c.group("jemalloc").stat("after_idle_rss_mib")
    assert stats is not None and stats.sd is None


def test_zero_values_have_no_log_ratio() -> None:
    r = compare.log_ratio([0.0, 0.0], [0.0, 0.0], "failures")
    assert r.ratio is None and r.note == "baseline is zero"
    r = compare.log_ratio([0.0, 2.0], [1.0, 1.0], "failures")
    assert r.ratio == pytest.approx(1.0) and r.ci_low is None


# --- descriptive statistics and metrics -------------------------------------------------------


def test_describe_known_values() -> None:
    s = compare.describe([3.0, 1.0, 2.0, 10.0], "m")
    assert (s.n, s.median, s.mean, s.min, s.max) == (4, 2.5, 4.0, 1.0, 10.0)
    assert s.sd == pytest.approx(statistics.stdev([3, 1, 2, 10]))


def test_metrics_per_run() -> None:
    run = make_result("glibc")
    stats = [
        BatchStats(0, 0.0, 10.0, 1000, 2, 100.0, 10.0, 50.0, 60.0, 70.0),
        BatchStats(1, 20.0, 25.0, 2000, 3, 400.0, 10.0, 70.0, 80.0, 90.0),
        BatchStats(2, 30.0, 35.0, 600, 0, 120.0, 10.0, 30.0, 40.0, 50.0),
    ]
    run = replace(run, load=replace(run.load, stats=stats))
    run = with_summary(run, baseline_mib=50, peak_mib=300, end_of_load_mib=250, after_idle_mib=200)
    values = {m.key: m.extract(run) for m in compare.METRICS}
    assert values == {
        "baseline_rss_mib": 50.0,
        "peak_rss_mib": 300.0,
        "end_of_load_rss_mib": 250.0,
        "after_idle_rss_mib": 200.0,
        # with_summary sets no allocator counters and no trim: those metrics have no value
        "after_trim_rss_mib": None,
        "in_use_after_idle_mib": None,
        "held_after_idle_mib": None,
        "unused_after_idle_mib": None,
        "throughput_rps": pytest.approx(3600 / 20),
        "p95_ms": 50.0,
        "failures": 5.0,
    }


def test_group_stats_from_fixed_runs() -> None:
    c = compare.compare(runs("glibc", [100, 110, 120]))
    s = c.group("glibc").stat("after_idle_rss_mib")
    assert s is not None
    assert (s.n, s.median, s.mean, s.sd, s.min, s.max) == (3, 110, 110, 10, 100, 120)


# --- grouping and baseline -------------------------------------------------------------------


def test_groups_by_allocator_and_parameters() -> None:
    results = [
        make_result("glibc", parameters={"handler": "sync"}, handler="sync"),
        make_result("glibc", parameters={"handler": "async"}, handler="async"),
        make_result("jemalloc", parameters={"handler": "async"}, handler="async"),
        make_result("glibc", repeat=1, parameters={"handler": "async"}, handler="async"),
    ]
    assert [compare.group_label(r) for r in results] == [
        "glibc handler=sync",
        "glibc handler=async",
        "jemalloc handler=async",
        "glibc handler=async",
    ]
    c = compare.compare(results, baseline="glibc handler=async")
    assert [g.label for g in c.groups] == [
        "glibc handler=async",
        "glibc handler=sync",
        "jemalloc handler=async",
    ]
    assert c.group("glibc handler=async").n == 2
    assert c.group("jemalloc handler=async").parameters == {"handler": "async"}
    assert "settings-differ" not in kinds(c)  # handler is an experiment parameter


def test_default_baseline_is_glibc_else_first() -> None:
    assert compare.choose_baseline(["jemalloc", "glibc"]) == "glibc"
    assert compare.choose_baseline(["jemalloc", "glibc sleep_ms=5"]) == "glibc sleep_ms=5"
    assert compare.choose_baseline(["tcmalloc", "jemalloc"]) == "tcmalloc"
    assert compare.choose_baseline(["a x=1", "jemalloc x=1"], "jemalloc") == "jemalloc x=1"
    c = compare.compare(runs("jemalloc", [1, 2, 3]) + runs("glibc", [1, 2, 3]))
    assert c.baseline == "glibc"
    assert [g.label for g in c.groups] == ["glibc", "jemalloc"]
    assert c.group("glibc").ratios == ()


def test_unknown_baseline_names_the_choices() -> None:
    with pytest.raises(ConfigError) as info:
        compare.choose_baseline(["glibc", "jemalloc"], "mimalloc")
    assert str(info.value) == (
        "baseline 'mimalloc' is not one of the groups; use one of: 'glibc', 'jemalloc'"
    )
    with pytest.raises(ConfigError, match="matches several groups"):
        compare.choose_baseline(["glibc x=1", "glibc x=2"], "glibc")


def test_nothing_to_compare() -> None:
    with pytest.raises(SandboxError, match="no result files to compare"):
        compare.compare([])
    with pytest.raises(SandboxError, match="none of the 1 runs finished ok"):
        compare.compare([make_result(status="failed")])


# --- warnings --------------------------------------------------------------------------------


def test_no_warnings_for_a_clean_comparison() -> None:
    c = compare.compare(runs("glibc", [100, 101, 102]) + runs("jemalloc", [60, 61, 60.5]))
    assert c.warnings == ()


def test_unstable_warning() -> None:
    c = compare.compare(runs("glibc", [100, 101, 102]) + runs("jemalloc", [60, 90, 75]))
    unstable = [w for w in c.warnings if w.kind == "unstable"]
    assert [(w.group, w.metric) for w in unstable] == [
        ("jemalloc", "peak_rss_mib"),
        ("jemalloc", "end_of_load_rss_mib"),
        ("jemalloc", "after_idle_rss_mib"),
    ]
    assert "after-idle RSS varies a lot between runs (sd 20% of the mean)" in unstable[2].message
    assert "add repeats" in unstable[2].message


def test_outlier_warning_needs_four_runs() -> None:
    c = compare.compare(runs("glibc", [100, 101, 99, 100, 150]))
    out = [w for w in c.warnings if w.kind == "outlier" and w.metric == "after_idle_rss_mib"]
    assert len(out) == 1
    assert "(repeat 4) is an outlier (150.0 MiB vs median 100.0 MiB)" in out[0].message
    assert compare.outliers([100, 101, 99, 100, 150]) == [4]
    assert compare.outliers([100, 101, 150]) == []  # n < 4: no outlier test
    assert compare.outliers([100, 101, 99, 100, 102]) == []
    c = compare.compare(runs("glibc", [100, 101, 150]))
    assert "outlier" not in kinds(c)


def test_few_repeats_warning() -> None:
    c = compare.compare(runs("glibc", [100, 101, 102]) + runs("jemalloc", [60, 61]))
    few = [w for w in c.warnings if w.kind == "few-repeats"]
    assert [w.group for w in few] == ["jemalloc"]
    assert few[0].message.startswith("jemalloc: only 2 run(s); add repeats: at least 3")


def test_settings_differ_warning() -> None:
    c = compare.compare(
        runs("glibc", [100, 101, 102], sleep_ms=5) + runs("jemalloc", [60, 61, 62], sleep_ms=10)
    )
    differ = [w for w in c.warnings if w.kind == "settings-differ"]
    assert len(differ) == 1
    assert differ[0].message.startswith(
        "server.sleep_ms differs between the compared runs: 5 (glibc x3); 10 (jemalloc x3)"
    )
    c = compare.compare(runs("glibc", [1, 2, 3], cpu_count=4) + runs("jemalloc", [1, 2, 3]))
    assert [w.message.split(" ")[0] for w in c.warnings if w.kind == "settings-differ"] == [
        "host.cpu_count"
    ]


def test_settings_that_are_parameters_may_differ() -> None:
    results = runs("glibc", [100, 101, 102], sleep_ms=5, parameters={"sleep_ms": 5}) + runs(
        "glibc", [100, 101, 102], sleep_ms=10, parameters={"sleep_ms": 10}
    )
    c = compare.compare(results)
    assert [g.label for g in c.groups] == ["glibc sleep_ms=5", "glibc sleep_ms=10"]
    assert "settings-differ" not in kinds(c)


def test_skipped_runs_are_counted_and_warned() -> None:
    bad = make_result("jemalloc", repeat=7, status="server-died")
    hung = make_result("jemalloc", repeat=8, status="server-hung")
    c = compare.compare([*runs("glibc", [100, 101, 102]), bad, hung, *runs("jemalloc", [60, 61])])
    assert c.skipped == (bad.run_id, hung.run_id)
    assert c.group("jemalloc").n == 2
    (w,) = [w for w in c.warnings if w.kind == "skipped"]
    assert w.message.startswith(
        "skipped 2 run(s) that did not finish ok "
        f"(1 server-died, 1 server-hung: {bad.run_id}, {hung.run_id})"
    )
    assert "re-run" in w.message


def test_failures_warning() -> None:
    c = compare.compare(runs("glibc", [100, 101, 102]) + runs("jemalloc", [60, 61, 62], failures=4))
    (w,) = [w for w in c.warnings if w.kind == "failures"]
    assert w.group == "jemalloc"
    assert w.message.startswith("jemalloc: 12 request(s) failed in 3 run(s)")


# --- rendering -------------------------------------------------------------------------------


@pytest.fixture
def comparison() -> compare.Comparison:
    return compare.compare(
        runs("glibc", [100, 110, 120]) + runs("jemalloc", [50, 55, 60]) + runs("mimalloc", [70])
    )


def test_render_table(comparison: compare.Comparison) -> None:
    text = compare.render(comparison, "table")
    lines = text.splitlines()
    r = comparison.group("jemalloc").ratio("after_idle_rss_mib")
    assert r is not None and r.ci_low is not None and r.ci_high is not None
    expected = f"0.50 [{r.ci_low:.2f}, {r.ci_high:.2f}] \u00d7 glibc (p<0.001, n=3/3)"
    headline = next(line for line in lines if line.startswith("jemalloc  after-idle"))
    assert headline == "jemalloc  after-idle  55.0 ±  5.0 MiB   " + expected
    assert any(line.startswith("glibc     after-idle 110.0 ± 10.0 MiB") for line in lines)
    row = next(line for line in lines if line.startswith("after-idle RSS (MiB)"))
    assert row.split()[3:10] == ["glibc", "3", "110.0", "110.0", "±", "10.0", "100.0"]
    assert "0.64 \u00d7 glibc (n=1/3, no interval with one run)" in text
    assert lines[-1] == (
        "WARNING: mimalloc: only 1 run(s); add repeats: at least 3 per group (5 for a tighter "
        "interval), otherwise intervals are wide or missing"
    )


def test_render_markdown(comparison: compare.Comparison) -> None:
    text = compare.render(comparison, "markdown")
    rows = [line for line in text.splitlines() if line.startswith("| after-idle RSS")]
    assert rows == [
        "| after-idle RSS (MiB) | glibc | 3 | 110.0 | 110.0 ± 10.0 | 100.0 | 120.0 |  |"
    ]
    assert "| jemalloc | 3 | 55.0 | 55.0 ± 5.0 | 50.0 | 60.0 | 0.50 [" in text
    assert "**Warnings**" in text


def test_render_csv(comparison: compare.Comparison) -> None:
    rows = list(csv.DictReader(io.StringIO(compare.render(comparison, "csv"))))
    # one row per group and metric with data (the fixture's summaries have no allocator counters)
    assert len(rows) == sum(len(g.stats) for g in comparison.groups) == 3 * 7
    assert list(rows[0]) == list(report.CSV_COLUMNS)
    row = next(r for r in rows if r["group"] == "jemalloc" and r["metric"] == "after_idle_rss_mib")
    assert float(row["mean"]) == pytest.approx(55.0)
    assert float(row["sd"]) == pytest.approx(5.0)
    assert float(row["ratio"]) == pytest.approx(0.5)
    assert float(row["ci_low"]) < 0.5 < float(row["ci_high"])
    assert row["significant"] == "True"
    base = next(r for r in rows if r["group"] == "glibc" and r["metric"] == "after_idle_rss_mib")
    assert (base["ratio"], base["p_value"], base["baseline"]) == ("", "", "glibc")
    single = next(r for r in rows if r["group"] == "mimalloc" and r["metric"] == "peak_rss_mib")
    assert single["sd"] == "" and single["ci_low"] == ""


def test_render_json(comparison: compare.Comparison) -> None:
    data = json.loads(compare.render(comparison, "json"))
    assert data == comparison.to_dict()
    assert data["baseline"] == "glibc"
    jem = data["groups"][1]
    assert jem["label"] == "jemalloc"
    assert jem["stats"]["after_idle_rss_mib"]["values"] == [50.0, 55.0, 60.0]
    vs = jem["vs_baseline"]["after_idle_rss_mib"]
    assert vs["ratio"] == pytest.approx(0.5) and vs["significant"] is True
    assert data["groups"][2]["vs_baseline"]["after_idle_rss_mib"]["ci_low"] is None
    assert [w["kind"] for w in data["warnings"]] == ["few-repeats"]


def test_render_unknown_format(comparison: compare.Comparison) -> None:
    with pytest.raises(ConfigError, match="unknown format 'html'; use one of: table, markdown"):
        compare.render(comparison, "html")


def test_realistic_fakes_rank_allocators() -> None:
    results = make_group("glibc", 3) + make_group("jemalloc", 3)
    c = compare.compare(results)
    r = c.group("jemalloc").ratio("after_idle_rss_mib")
    assert r is not None and r.ratio is not None
    assert r.ratio < 0.7 and r.significant


def test_verdict_says_free_memory_when_live_allocations_barely_grow() -> None:
    runs = [make_result("glibc", repeat=r) for r in range(3)]
    [line] = compare.verdicts(runs)
    s = runs[0].summary
    assert s.unused_after_idle_bytes is not None and s.in_use_after_idle_bytes is not None
    assert line.startswith("glibc: RSS grew ")
    assert "live allocations grew 6 MiB" in line  # the fakes add 2 MiB of live data per batch
    assert line.endswith(
        "-> mostly free memory held by the allocator: fragmentation / unreturned pages"
    )


def test_verdict_says_leak_when_live_allocations_explain_the_growth() -> None:
    run = make_result("glibc")
    s = run.summary
    leak = replace(
        s,
        in_use_baseline_bytes=10 * MIB,
        in_use_after_idle_bytes=10 * MIB + (s.after_idle_rss_bytes - s.baseline_rss_bytes),
        held_after_idle_bytes=12 * MIB + (s.after_idle_rss_bytes - s.baseline_rss_bytes),
    )
    [line] = compare.verdicts([replace(run, summary=leak)])
    assert line.endswith("-> mostly live allocations: a leak or a cache, not the allocator")


def test_verdict_names_memory_outside_malloc() -> None:
    run = make_result("tcmalloc")
    s = run.summary
    growth = s.after_idle_rss_bytes - s.baseline_rss_bytes
    outside = replace(
        s,
        in_use_baseline_bytes=10 * MIB,
        in_use_after_idle_bytes=10 * MIB,
        held_baseline_bytes=12 * MIB,
        held_after_idle_bytes=12 * MIB + growth // 5,  # the allocator holds a fifth of it
    )
    [line] = compare.verdicts([replace(run, summary=outside)])
    assert f"{(growth - growth // 5) / MIB:.0f} MiB grew outside malloc" in line
    assert line.endswith(
        "-> mostly memory outside malloc: CPython's small-object arenas; "
        "try --pymalloc off to put it under the allocator"
    )


def test_truncated_batches_are_warned_about() -> None:
    runs = [make_result("glibc", repeat=r) for r in range(3)]
    short = with_load(runs[0], iterations=10_000)
    c = compare.compare([short, *runs[1:]])
    [warning] = [w for w in c.warnings if w.kind == "truncated"]
    assert warning.message.startswith("glibc: 1 run(s) sent fewer requests than planned")
    assert not [w for w in compare.compare(runs).warnings if w.kind == "truncated"]


def test_throughput_uses_locusts_own_rate() -> None:
    run = make_result("glibc")
    stats = [replace(b, requests=100, rps=50.0) for b in run.load.stats]
    run = replace(run, load=replace(run.load, stats=stats))
    assert compare.METRIC_BY_KEY["throughput_rps"].extract(run) == pytest.approx(50.0)


def test_a_sweep_compares_each_allocator_with_the_baseline_at_the_same_setting() -> None:
    runs = [
        make_result(a, repeat=r, parameters={"sleep_ms": s})
        for s in (0, 900)
        for a in ("glibc", "jemalloc")
        for r in range(3)
    ]
    c = compare.compare(runs, baseline="glibc sleep_ms=0")
    assert c.group("jemalloc sleep_ms=900").reference == "glibc sleep_ms=900"
    assert c.group("jemalloc sleep_ms=0").reference == "glibc sleep_ms=0"
    assert c.group("glibc sleep_ms=900").reference == "glibc sleep_ms=0"  # the sweep's own effect
    table = compare.render(c, "table")
    assert "× glibc sleep_ms=900" in table


def test_varying_concurrency_is_not_reported_as_a_settings_mismatch() -> None:
    runs = [
        with_load(
            make_result("glibc", repeat=r, parameters={"concurrency": users}),
            model=LoadModel(users=users),
        )
        for users in (8, 32)
        for r in range(3)
    ]
    kinds = {w.kind for w in compare.compare(runs).warnings}
    assert "settings-differ" not in kinds

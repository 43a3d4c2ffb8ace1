"""The plain answer: one sentence per group, in the three cases a comparison can end in."""

from __future__ import annotations

from sandbox.analysis import compare
from sandbox.analysis.answer import plain_answer
from sandbox.analysis.report import p_text, ratio_text
from tests.fakes import fixed_runs


def test_a_real_difference_says_how_much_less_or_more() -> None:
    c = compare.compare(
        fixed_runs("glibc", [100, 110, 120])
        + fixed_runs("jemalloc", [50, 55, 60])
        + fixed_runs("tcmalloc", [150, 165, 180])
    )
    jem = c.group("jemalloc").ratio("after_idle_rss_mib")
    tc = c.group("tcmalloc").ratio("after_idle_rss_mib")
    assert jem is not None and jem.ci_low is not None and jem.ci_high is not None
    assert tc is not None and tc.ci_low is not None and tc.ci_high is not None

    assert plain_answer(c) == [
        "jemalloc keeps 50 % less memory after the load than glibc: "
        f"0.50 [{jem.ci_low:.2f}, {jem.ci_high:.2f}] × glibc (p<0.001, n=3/3)",
        "tcmalloc keeps 50 % more memory after the load than glibc: "
        f"1.50 [{tc.ci_low:.2f}, {tc.ci_high:.2f}] × glibc ({p_text(tc.p_value or 0)}, n=3/3)",
    ]


def test_an_interval_containing_one_cannot_tell_them_apart() -> None:
    c = compare.compare(fixed_runs("glibc", [100, 140, 120]) + fixed_runs("mimalloc", [110, 130]))
    r = c.group("mimalloc").ratio("after_idle_rss_mib")
    assert r is not None and not r.significant
    assert plain_answer(c) == [
        f"mimalloc and glibc cannot be told apart after the load yet ({ratio_text(r, 'glibc')}): "
        "the interval contains 1.00; add repeats or make the workload longer"
    ]


def test_a_single_run_has_no_interval_and_asks_for_repeats() -> None:
    c = compare.compare(fixed_runs("glibc", [100, 110, 120]) + fixed_runs("mimalloc", [110]))
    assert plain_answer(c) == [
        "mimalloc kept about as much memory after the load as glibc, but without a confidence "
        "interval (1.00 × glibc (n=1/3, no interval with one run)); add repeats before deciding"
    ]


def test_only_a_baseline_has_nothing_to_say() -> None:
    assert plain_answer(compare.compare(fixed_runs("glibc", [100, 110]))) == []

"""compare: groups in order, statistics per group, the baseline each group is compared with."""

from __future__ import annotations

import json

import pytest

from sandbox.analysis import compare, report
from sandbox.errors import SandboxError
from tests.fakes import fixed_runs, make_group, make_result


def test_groups_by_allocator_and_parameters() -> None:
    results = [
        make_result("glibc", parameters={"handler": "sync"}, handler="sync"),
        make_result("glibc", parameters={"handler": "async"}, handler="async"),
        make_result("jemalloc", parameters={"handler": "async"}, handler="async"),
        make_result("glibc", repeat=1, parameters={"handler": "async"}, handler="async"),
    ]
    c = compare.compare(results, baseline="glibc handler=async")
    assert [g.label for g in c.groups] == [
        "glibc handler=async",
        "glibc handler=sync",
        "jemalloc handler=async",
    ]
    assert c.group("glibc handler=async").n == 2
    assert c.group("jemalloc handler=async").parameters == {"handler": "async"}
    # handler is an experiment parameter
    assert "settings-differ" not in [w.kind for w in c.warnings]


def test_default_baseline_comes_first_and_has_no_ratios() -> None:
    c = compare.compare(fixed_runs("jemalloc", [1, 2, 3]) + fixed_runs("glibc", [1, 2, 3]))
    assert c.baseline == "glibc"
    assert [g.label for g in c.groups] == ["glibc", "jemalloc"]
    assert c.group("glibc").ratios == ()


def test_nothing_to_compare() -> None:
    with pytest.raises(SandboxError, match="no result files to compare"):
        compare.compare([])
    with pytest.raises(SandboxError, match="none of the 1 runs finished ok"):
        compare.compare([make_result(status="failed")])


def test_group_stats_from_fixed_runs() -> None:
    c = compare.compare(fixed_runs("glibc", [100, 110, 120]))
    s = c.group("glibc").stat("after_idle_rss_mib")
    assert s is not None
    assert (s.n, s.median, s.mean, s.sd, s.min, s.max) == (3, 110, 110, 10, 100, 120)


def test_realistic_fakes_rank_allocators() -> None:
    results = make_group("glibc", 3) + make_group("jemalloc", 3)
    c = compare.compare(results)
    r = c.group("jemalloc").ratio("after_idle_rss_mib")
    assert r is not None and r.ratio is not None
    assert r.ratio < 0.7 and r.significant


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
    table = report.render(c, "table")
    assert "× glibc sleep_ms=900" in table


def test_compare_has_no_render() -> None:
    # rendering is report's job; compare must not reach back into report (no import cycle)
    assert not hasattr(compare, "render")


def test_each_group_has_its_stair_read() -> None:
    c = compare.compare(make_group("glibc") + make_group("jemalloc"))
    assert [s.label for s in c.stairs] == ["glibc", "jemalloc"]
    glibc = c.stairs[0].lines
    assert glibc[0] == "glibc: the stair read over 3 batches (3 runs; MiB each batch added, median)"
    assert [line.split(" (")[0] for line in glibc[1:4]] == ["  batch 1", "  batch 2", "  batch 3"]
    assert [line.split(":")[0] for line in glibc[4:]] == ["  RSS", "  live", "  kept-but-free"]
    assert not any("would reach" in line for line in glibc)  # no limit, no threshold
    assert c.to_dict()["stairs"]["jemalloc"] == list(c.stairs[1].lines)
    figures = c.to_dict()["stair_reads"]["glibc"]
    assert [f["quantity"] for f in figures] == ["RSS", "live", "kept-but-free"]
    rss = figures[0]
    assert rss["state"] == "climbing" and rss["model"] == "linear" and rss["weak"] is True
    assert rss["forecast"]["low_bytes"] <= rss["forecast"]["bytes"] <= rss["forecast"]["high_bytes"]
    json.dumps(c.to_dict())  # the figures are JSON as they are
    markdown = report.render(c, "markdown")
    assert "**The stair read**" in markdown
    assert "- RSS: still climbing, " in markdown

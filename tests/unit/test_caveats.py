"""caveats: every warning a comparison can carry, and when it stays silent."""

from __future__ import annotations

from sandbox.analysis import compare
from sandbox.load.models import LoadModel
from sandbox.results import RunResult
from tests.fakes import fixed_runs, make_result, with_load


def kinds(c: compare.Comparison) -> list[str]:
    return [w.kind for w in c.warnings]


def test_no_warnings_for_a_clean_comparison() -> None:
    c = compare.compare(
        fixed_runs("glibc", [100, 101, 102]) + fixed_runs("jemalloc", [60, 61, 60.5])
    )
    assert c.warnings == ()


def test_unstable_warning() -> None:
    c = compare.compare(fixed_runs("glibc", [100, 101, 102]) + fixed_runs("jemalloc", [60, 90, 75]))
    unstable = [w for w in c.warnings if w.kind == "unstable"]
    assert [(w.group, w.metric) for w in unstable] == [
        ("jemalloc", "peak_rss_mib"),
        ("jemalloc", "end_of_load_rss_mib"),
        ("jemalloc", "after_idle_rss_mib"),
    ]
    assert "after-idle RSS varies a lot between runs (sd 20% of the mean)" in unstable[2].message
    assert "add repeats" in unstable[2].message


def test_outlier_warning_needs_four_runs() -> None:
    c = compare.compare(fixed_runs("glibc", [100, 101, 99, 100, 150]))
    out = [w for w in c.warnings if w.kind == "outlier" and w.metric == "after_idle_rss_mib"]
    assert len(out) == 1
    assert "(repeat 4) is an outlier (150.0 MiB vs median 100.0 MiB)" in out[0].message
    c = compare.compare(fixed_runs("glibc", [100, 101, 150]))
    assert "outlier" not in kinds(c)


def test_few_repeats_warning() -> None:
    c = compare.compare(fixed_runs("glibc", [100, 101, 102]) + fixed_runs("jemalloc", [60, 61]))
    few = [w for w in c.warnings if w.kind == "few-repeats"]
    assert [w.group for w in few] == ["jemalloc"]
    assert few[0].message.startswith("jemalloc: only 2 run(s); add repeats: at least 3")


def test_settings_differ_warning() -> None:
    c = compare.compare(
        fixed_runs("glibc", [100, 101, 102], sleep_ms=5)
        + fixed_runs("jemalloc", [60, 61, 62], sleep_ms=10)
    )
    differ = [w for w in c.warnings if w.kind == "settings-differ"]
    assert len(differ) == 1
    assert differ[0].message.startswith(
        "server.sleep_ms differs between the compared runs: 5 (glibc x3); 10 (jemalloc x3)"
    )
    c = compare.compare(
        fixed_runs("glibc", [1, 2, 3], cpu_count=4) + fixed_runs("jemalloc", [1, 2, 3])
    )
    assert [w.message.split(" ")[0] for w in c.warnings if w.kind == "settings-differ"] == [
        "host.cpu_count"
    ]


def test_settings_that_are_parameters_may_differ() -> None:
    results = fixed_runs("glibc", [100, 101, 102], sleep_ms=5, parameters={"sleep_ms": 5})
    results += fixed_runs("glibc", [100, 101, 102], sleep_ms=10, parameters={"sleep_ms": 10})
    c = compare.compare(results)
    assert [g.label for g in c.groups] == ["glibc sleep_ms=5", "glibc sleep_ms=10"]
    assert "settings-differ" not in kinds(c)


def test_skipped_runs_are_counted_and_warned() -> None:
    bad = make_result("jemalloc", repeat=7, status="server-died")
    hung = make_result("jemalloc", repeat=8, status="server-hung")
    c = compare.compare(
        [*fixed_runs("glibc", [100, 101, 102]), bad, hung, *fixed_runs("jemalloc", [60, 61])]
    )
    assert c.skipped == (bad.run_id, hung.run_id)
    assert c.group("jemalloc").n == 2
    (w,) = [w for w in c.warnings if w.kind == "skipped"]
    assert w.message.startswith(
        "skipped 2 run(s) that did not finish ok "
        f"(1 server-died, 1 server-hung: {bad.run_id}, {hung.run_id})"
    )
    assert "re-run" in w.message


def test_failures_warning() -> None:
    c = compare.compare(
        fixed_runs("glibc", [100, 101, 102]) + fixed_runs("jemalloc", [60, 61, 62], failures=4)
    )
    (w,) = [w for w in c.warnings if w.kind == "failures"]
    assert w.group == "jemalloc"
    assert w.message.startswith("jemalloc: 12 request(s) failed in 3 run(s)")


def test_truncated_batches_are_warned_about() -> None:
    runs = [make_result("glibc", repeat=r) for r in range(3)]
    short = with_load(runs[0], iterations=10_000)
    c = compare.compare([short, *runs[1:]])
    [warning] = [w for w in c.warnings if w.kind == "truncated"]
    assert warning.message.startswith("glibc: 1 run(s) sent fewer requests than planned")
    assert not [w for w in compare.compare(runs).warnings if w.kind == "truncated"]


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


def _soak(runs: list[RunResult]) -> list[RunResult]:
    return [with_load(r, model=LoadModel("soak", users=8, duration_s=10.0)) for r in runs]


def test_a_time_bounded_load_that_served_uneven_requests_is_named() -> None:
    fast = [make_result("glibc", repeat=i, requests_per_batch=3000) for i in range(3)]
    slow = [make_result("jemalloc", repeat=i, requests_per_batch=1500) for i in range(3)]
    c = compare.compare(_soak(fast) + _soak(slow))
    (uneven,) = [w for w in c.warnings if w.kind == "uneven-load"]
    assert "(jemalloc: 4,4" in uneven.message and ", glibc: 8,9" in uneven.message
    assert "--load rate --rate R" in uneven.message
    # a fixed count (iterations), or groups within 10 % of each other: nothing to say
    assert "uneven-load" not in kinds(compare.compare(fast + slow))
    near = [make_result("jemalloc", repeat=i, requests_per_batch=2900) for i in range(3)]
    assert "uneven-load" not in kinds(compare.compare(_soak(fast) + _soak(near)))

"""caveats: every warning a comparison can carry, and when it stays silent."""

from __future__ import annotations

import re

from sandbox.analysis import compare
from sandbox.load.models import LoadModel
from sandbox.results.model import RunResult
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


def _timed(runs: list[RunResult], model: LoadModel | None = None) -> list[RunResult]:
    model = model or LoadModel("soak", users=8, duration_s=10.0)
    return [with_load(r, model=model) for r in runs]


def _runs(allocator: str, per_batch: int, **kw: object) -> list[RunResult]:
    return [
        make_result(allocator, repeat=i, requests_per_batch=per_batch, **kw)  # type: ignore[arg-type]
        for i in range(3)
    ]


UNEVEN = re.compile(
    r"^(?P<low>\S+) and (?P<high>\S+) served different numbers of requests under a "
    r"time-bounded load \((?P<n_low>[\d,]+) and (?P<n_high>[\d,]+) a run, medians\): memory "
    r"that follows the requests served \(live data: a cache, a leak\) is then smaller where "
    r"fewer were served, whatever the allocator; (?P<fix>.+)$"
)


def _uneven(c: compare.Comparison) -> re.Match[str]:
    (warning,) = [w for w in c.warnings if w.kind == "uneven-load"]
    match = UNEVEN.match(warning.message)
    assert match is not None, warning.message
    return match


def test_a_time_bounded_load_that_served_uneven_requests_is_named() -> None:
    fast, slow = _runs("glibc", 3000), _runs("jemalloc", 1500)
    said = _uneven(compare.compare(_timed(fast) + _timed(slow)))
    assert (said["low"], said["high"]) == ("jemalloc", "glibc")
    assert 4000 < int(said["n_low"].replace(",", "")) < 5000  # 3 batches of ~1,500
    assert said["fix"].startswith("compare at a fixed rate both keep up with (--load rate")
    # a fixed count (iterations), or groups within 10 % of each other: nothing to say
    assert "uneven-load" not in kinds(compare.compare(fast + slow))
    near = _runs("jemalloc", 2900)
    assert "uneven-load" not in kinds(compare.compare(_timed(fast) + _timed(near)))


def test_under_a_rate_the_fix_is_a_lower_rate() -> None:
    rate = LoadModel("rate", users=8, rate=100.0, duration_s=10.0)
    said = _uneven(
        compare.compare(_timed(_runs("glibc", 900), rate) + _timed(_runs("tcmalloc", 500), rate))
    )
    assert said["low"] == "tcmalloc"
    assert said["fix"].startswith("lower the rate (--rate) below the ")
    assert said["fix"].endswith(
        " req/s that tcmalloc reached: it did not keep up with the rate asked"
    )


def test_only_groups_that_are_compared_are_held_against_each_other() -> None:
    """A sweep over users: each setting serves its own number of requests, and each allocator
    is compared with glibc at the same setting, where the counts agree."""
    runs = []
    for users, per_batch in ((4, 1500), (16, 3000)):
        for allocator in ("glibc", "jemalloc"):
            runs += _timed(_runs(allocator, per_batch, parameters={"users": users}))
    assert "uneven-load" not in kinds(compare.compare(runs))

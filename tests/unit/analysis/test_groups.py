"""groups: group labels, grouping runs, choosing the baseline and the workload line."""

from __future__ import annotations

import pytest

from sandbox.analysis import groups
from sandbox.errors import ConfigError, SandboxError
from tests.fakes import make_result, with_load


def test_group_label_is_allocator_and_parameters() -> None:
    results = [
        make_result("glibc", parameters={"handler": "sync"}, handler="sync"),
        make_result("glibc", parameters={"handler": "async"}, handler="async"),
        make_result("jemalloc", parameters={"handler": "async"}, handler="async"),
        make_result("glibc", repeat=1, parameters={"handler": "async"}, handler="async"),
    ]
    assert [groups.group_label(r) for r in results] == [
        "glibc handler=sync",
        "glibc handler=async",
        "jemalloc handler=async",
        "glibc handler=async",
    ]
    by_label = groups.group_results(results)
    assert list(by_label) == ["glibc handler=sync", "glibc handler=async", "jemalloc handler=async"]
    assert by_label["glibc handler=async"] == [results[1], results[3]]


def test_label_sorts_parameters_and_joins_lists() -> None:
    assert groups.label("glibc", {}) == "glibc"
    assert groups.label("mimalloc", {"tags": ["a", "b"], "sleep_ms": 5}) == (
        "mimalloc sleep_ms=5 tags=a,b"
    )


def test_default_baseline_is_glibc_else_first() -> None:
    assert groups.choose_baseline(["jemalloc", "glibc"]) == "glibc"
    assert groups.choose_baseline(["jemalloc", "glibc sleep_ms=5"]) == "glibc sleep_ms=5"
    assert groups.choose_baseline(["tcmalloc", "jemalloc"]) == "tcmalloc"
    assert groups.choose_baseline(["a x=1", "jemalloc x=1"], "jemalloc") == "jemalloc x=1"


def test_unknown_baseline_names_the_choices() -> None:
    with pytest.raises(ConfigError) as info:
        groups.choose_baseline(["glibc", "jemalloc"], "mimalloc")
    assert str(info.value) == (
        "baseline 'mimalloc' is not one of the groups; use one of: 'glibc', 'jemalloc'"
    )
    with pytest.raises(ConfigError, match="matches several groups"):
        groups.choose_baseline(["glibc x=1", "glibc x=2"], "glibc")
    with pytest.raises(SandboxError, match="no groups to compare"):
        groups.choose_baseline([])


def test_workload_joins_the_values_that_differ() -> None:
    run = make_result("glibc", users=8, sleep_ms=5)
    more = make_result("jemalloc", users=32, sleep_ms=5)
    untagged = with_load(run, tags=())
    assert groups.workload([run]) == "tags large; 8 users; sleep 5 ms"
    assert groups.workload([run, more, untagged]) == "tags large/all; 8/32 users; sleep 5 ms"

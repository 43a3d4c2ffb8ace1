"""verdict: where the RSS growth went, in plain words, for the three kinds of growth."""

from __future__ import annotations

from dataclasses import replace

from sandbox.analysis import verdict
from sandbox.results import RunResult
from tests.fakes import MIB, make_result, with_summary


def test_verdict_says_free_memory_when_live_allocations_barely_grow() -> None:
    runs = [make_result("glibc", repeat=r) for r in range(3)]
    [line] = verdict.verdicts(runs)
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
    [line] = verdict.verdicts([replace(run, summary=leak)])
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
    [line] = verdict.verdicts([replace(run, summary=outside)])
    assert f"{(growth - growth // 5) / MIB:.0f} MiB grew outside malloc" in line
    assert line.endswith(
        "-> mostly memory outside malloc: CPython's small-object arenas; "
        "try --pymalloc off to put it under the allocator"
    )


def test_verdict_without_allocator_counters_says_so_and_skips_runs_not_ok() -> None:
    run = with_summary(make_result("glibc"), baseline_mib=60, after_idle_mib=70)
    died = make_result("jemalloc", status="server-died")
    assert verdict.verdicts([run, died]) == [
        "glibc: RSS grew 10 MiB from baseline to after idle; these runs have no allocator "
        "counters -> little growth"
    ]


def _agent(run: RunResult, injected: bool) -> RunResult:
    return replace(run, sampler=replace(run.sampler, agent_injected=injected))


def test_without_counters_the_verdict_says_why_the_agent_gave_none() -> None:
    run = with_summary(make_result("glibc"), baseline_mib=60, after_idle_mib=70)
    [none] = verdict.verdicts([_agent(run, True)])
    assert none.endswith(
        "; these runs have no allocator counters (the server's processes had no agent: "
        "not Python?) -> little growth"
    )
    [off] = verdict.verdicts([_agent(run, False)])
    assert "no allocator counters (the agent was left out) -> " in off
    assert "debug" not in none + off


def test_what_a_trim_returned_only_when_a_release_was_called() -> None:
    run = make_result("glibc")
    s = run.summary
    assert run.trim is not None and s.after_trim_rss_bytes is not None
    freed = round((s.after_idle_rss_bytes - s.after_trim_rss_bytes) / MIB)
    [asked] = verdict.verdicts([run])
    assert f"; asking for memory back returned {freed} MiB of RSS" in asked
    # A trim phase whose section says nothing was called (or no section at all): no figure.
    nothing = replace(run.trim, called=None)
    for trim in (nothing, None):
        [line] = verdict.verdicts([replace(run, trim=trim)])
        assert "asking for memory back" not in line

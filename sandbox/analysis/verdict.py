"""The verdicts: per group, in plain words, where the RSS growth went.

RSS growth (baseline to after idle) splits into what the application still has allocated
(live growth), what the allocator holds but nobody uses (free memory kept: fragmentation and
unreturned pages), and memory malloc never sees (CPython's own small-object arenas, thread
stacks), which is RSS growth minus the growth of what the allocator holds.

The counters are sums over the server's processes (an agent in each), so a user's app, a
command and prefork workers read as the stair-stepper does. A figure is only given for what was
measured: what a trim returned only from runs whose trim section says a release was called.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from sandbox.analysis.groups import group_results
from sandbox.analysis.metrics import MIB
from sandbox.results import RunResult

LITTLE_GROWTH_BYTES = 16 * MIB
"""Below this RSS growth there is nothing to explain; memory outside malloc is named only from
this size on."""
MOSTLY = 0.5
"""A share of at least this fraction of the growth is `mostly` it; else the growth is mixed."""

LITTLE_GROWTH = "little growth"
LIVE = "live allocations: a leak or a cache, not the allocator"
FREE_KEPT = "free memory held by the allocator: fragmentation / unreturned pages"
OUTSIDE_PYMALLOC = (
    "memory outside malloc: CPython's small-object arenas; "
    "try --pymalloc off to put it under the allocator"
)
"""The names of the shares of growth; `sandbox inspect` says the same words."""


def _median_of(runs: Sequence[RunResult], attr: str) -> float | None:
    values = [getattr(r.summary, attr) for r in runs if r.status == "ok"]
    present = [float(v) for v in values if v is not None]
    return statistics.median(present) if present else None


def _trimmed(runs: Sequence[RunResult]) -> float | None:
    """Median RSS given back by the trim phase, over the runs that really asked (their trim
    section names the release function called); None when none did."""
    asked = [r for r in runs if r.trim is not None and r.trim.done]
    return _diff(
        _median_of(asked, "after_idle_rss_bytes"), _median_of(asked, "after_trim_rss_bytes")
    )


def _no_counters(runs: Sequence[RunResult]) -> str:
    """Why a group has no allocator counters, as far as its results say."""
    words = "these runs have no allocator counters"
    injected = {r.sampler.agent_injected for r in runs}
    if injected == {True}:
        return f"{words} (the server's processes had no agent: not Python?)"
    if injected == {False}:
        return f"{words} (the agent was left out)"
    return words


def verdicts(results: Sequence[RunResult]) -> list[str]:
    """Per group, in plain words: where did the RSS growth go? Medians over the group's runs
    that finished ok (see the module docstring for the split)."""
    lines = []
    for label, runs in group_results([r for r in results if r.status == "ok"]).items():
        rss_growth = _diff(
            _median_of(runs, "after_idle_rss_bytes"), _median_of(runs, "baseline_rss_bytes")
        )
        if rss_growth is None:
            continue
        live_growth = _diff(
            _median_of(runs, "in_use_after_idle_bytes"), _median_of(runs, "in_use_baseline_bytes")
        )
        held_growth = _diff(
            _median_of(runs, "held_after_idle_bytes"), _median_of(runs, "held_baseline_bytes")
        )
        unused = _diff(held_growth, live_growth)  # growth of free memory the allocator keeps
        trimmed = _trimmed(runs)
        name = runs[0].allocator.name
        words = [f"{label}: RSS grew {_mib(rss_growth)} MiB from baseline to after idle"]
        if live_growth is not None:
            words.append(f"live allocations grew {_mib(live_growth)} MiB")
        if unused is not None:
            words.append(f"free memory {name} keeps grew {_mib(unused)} MiB")
        elif held_growth is not None:
            words.append(f"{name} gives no in-use count, so live and free cannot be told apart")
        else:
            words.append(_no_counters(runs))
        outside = None if held_growth is None else rss_growth - held_growth
        if outside is not None and outside >= LITTLE_GROWTH_BYTES:
            words.append(f"{_mib(outside)} MiB grew outside malloc (pymalloc arenas, stacks)")
        if trimmed is not None:
            words.append(f"asking for memory back returned {_mib(trimmed)} MiB of RSS")
        verdict = _classify(rss_growth, live_growth, unused, outside)
        lines.append("; ".join(words) + (f" -> {verdict}" if verdict else ""))
    return lines


def _mib(value: float) -> str:
    """Whole MiB, without a `-0` for a small negative change."""
    return f"{round(value / MIB):d}"  # an int: no "-0"


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _classify(
    rss_growth: float, live: float | None, unused: float | None, outside: float | None
) -> str:
    """Name the largest share of the growth, when the counters allow it."""
    if rss_growth < LITTLE_GROWTH_BYTES:
        return LITTLE_GROWTH
    if live is None or unused is None:
        return ""
    shares = {LIVE: live, FREE_KEPT: unused, OUTSIDE_PYMALLOC: outside or 0.0}
    what, largest = max(shares.items(), key=lambda kv: kv[1])
    return (
        f"mostly {what}"
        if largest >= MOSTLY * rss_growth
        else f"mixed; the largest share is {what}"
    )

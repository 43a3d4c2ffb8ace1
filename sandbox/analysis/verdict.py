"""The verdicts: per group, in plain words, where the RSS growth went and what kind it is.

RSS growth (median baseline to median after idle) splits three ways:
- live: what the application still has allocated = malloc's in-use count + pymalloc's bytes in
  objects (pymalloc maps its arenas itself, outside every malloc counter);
- kept-but-free: what the allocators hold that no object uses = malloc's held - in use +
  pymalloc's arena bytes outside objects (free blocks, empty pools);
- outside: the rest (thread stacks, the interpreter, other mappings).
With pymalloc off its part is 0: Python's objects are then malloc's, and no pymalloc figure is
shown. A file without pymalloc's columns (or a reading that failed) counts its arenas outside.

The classes (each part counts when it grew by GREW_BYTES and at least PART_SHARE of the RSS
growth):
- a leak: live grew and its stair read (`stair_read`) climbs (straight, or slowing but still
  adding over as many requests again);
- a bounded cache: live grew and its stair read levels off (from 2 batches on: weakly, said so);
- live growth that cannot be told leak or cache: 1 batch, or growth curves that predicted the
  held-out batches as well go different ways;
- fragmentation: kept-but-free grew (FREE_KEPT);
- pymalloc arena fragmentation: kept-but-free grew, at least half of it pymalloc's;
- outside: the rest grew (from LITTLE_GROWTH_BYTES on);
- mixed: several of those; little growth: RSS grew less than LITTLE_GROWTH_BYTES;
- cannot tell: the allocator gives no in-use count (mimalloc), or there are no counters.
Each line gives the numbers behind it, and the stair reads (forecast intervals) that say how
sure.

The counters are sums over the server's processes (an agent in each). A figure is only given
for what was measured: what a trim returned only from runs whose trim section says a release
was called.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from sandbox.analysis import stair_read, stairs
from sandbox.analysis.groups import group_results
from sandbox.results.model import RunResult
from sandbox.units import MIB, mib_figure

LITTLE_GROWTH_BYTES = 16 * MIB
"""Below this RSS growth there is nothing to explain; memory outside malloc is named only from
this size on."""
MOSTLY = 0.5
"""A share of at least this fraction of the growth is `mostly` it (sandbox inspect's rule)."""
GREW_BYTES = 8 * MIB
"""A part (live, kept-but-free) grew when it rose this much ..."""
PART_SHARE = 0.2
"""... and by at least this share of the RSS growth."""
MIX_SHARE = 0.5
"""A verdict is mixed when a second part grew at least this share of the largest part's
growth; a smaller part is named beside the class, not in it."""

LITTLE_GROWTH = "little growth"
LIVE = "live allocations: a leak or a cache, not the allocator"
LEAK = (
    "a leak (or a cache bigger than this run could fill): live memory grows with requests "
    "and has not levelled off"
)
CACHE = "a bounded cache: live memory grew, then levelled off"
FREE_KEPT = "free memory held by the allocator: fragmentation / unreturned pages"
PYMALLOC_FRAGMENTATION = "pymalloc arena fragmentation: its arenas are held with few blocks in use"
OUTSIDE = "memory outside malloc and pymalloc: thread stacks, the interpreter, other mappings"
OUTSIDE_PYMALLOC = (
    "memory outside malloc: CPython's small-object arenas; "
    "try --pymalloc off to put it under the allocator"
)
MIXED = "mixed"
CANNOT_TELL = "cannot tell"
"""The names of the classes; `sandbox inspect` says the same words."""
LIVE_CLASS = {"climbing": LEAK, "slowing": LEAK, "levels": CACHE}
"""The class of live growth by its stair read (`stair_read.State`); any other state: LIVE."""
CLASSES = (LITTLE_GROWTH, LEAK, CACHE, LIVE, FREE_KEPT, PYMALLOC_FRAGMENTATION, OUTSIDE, MIXED)


@dataclass(frozen=True)
class Verdict:
    """One group's verdict: its words, and the class for tables (`benchmarks/verdict_truths`)."""

    label: str
    line: str
    kind: str
    """LEAK, CACHE, LIVE, FREE_KEPT, PYMALLOC_FRAGMENTATION, OUTSIDE, LITTLE_GROWTH, MIXED, or
    CANNOT_TELL; "" when nothing could be said."""
    parts: tuple[str, ...] = ()
    """For MIXED: the classes it mixes."""
    missing: str | None = None
    """For CANNOT_TELL: what was not measured."""


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


def _growth(runs: Sequence[RunResult], end: str, base: str) -> float | None:
    return _diff(_median_of(runs, end), _median_of(runs, base))


@dataclass(frozen=True)
class _Parts:
    """A group's growth, baseline to after idle, by part (None: not measured)."""

    rss: float
    in_use: float | None
    held: float | None
    py_used: float | None
    py_free: float | None
    pymalloc_on: bool

    @property
    def live(self) -> float | None:
        return None if self.in_use is None else self.in_use + (self.py_used or 0.0)

    @property
    def malloc_free(self) -> float | None:
        return _diff(self.held, self.in_use)

    @property
    def kept(self) -> float | None:
        free = self.malloc_free
        return None if free is None else free + (self.py_free or 0.0)

    @property
    def outside(self) -> float | None:
        """RSS growth minus what malloc holds and pymalloc's arenas (when they were read)."""
        if self.held is None:
            return None
        return self.rss - self.held - (self.py_used or 0.0) - (self.py_free or 0.0)


def _parts(runs: Sequence[RunResult], rss: float) -> _Parts:
    return _Parts(
        rss=rss,
        in_use=_growth(runs, "in_use_after_idle_bytes", "in_use_baseline_bytes"),
        held=_growth(runs, "held_after_idle_bytes", "held_baseline_bytes"),
        py_used=_growth(runs, "pymalloc_used_after_idle_bytes", "pymalloc_used_baseline_bytes"),
        py_free=_growth(runs, "pymalloc_free_after_idle_bytes", "pymalloc_free_baseline_bytes"),
        pymalloc_on=all(r.server.pymalloc for r in runs),
    )


def verdict_of(label: str, runs: Sequence[RunResult]) -> Verdict | None:
    """One group's verdict (runs that finished ok); None when it has no RSS figures."""
    rss_growth = _growth(runs, "after_idle_rss_bytes", "baseline_rss_bytes")
    if rss_growth is None:
        return None
    p = _parts(runs, rss_growth)
    name = runs[0].allocator.name
    words = [f"{label}: RSS grew {mib_figure(rss_growth)} MiB from baseline to after idle"]
    words += _part_words(p, name, runs)
    group_stairs = [s for s in map(stairs.stairs, runs) if s is not None]
    reads = {q: stair_read.read(group_stairs, q) for q in ("live", "kept-but-free")}
    trimmed = _trimmed(runs)
    if trimmed is not None:
        words.append(f"asking for memory back returned {mib_figure(trimmed)} MiB of RSS")
    kind, parts, missing, sure = _classify(p, name, reads)
    words += sure
    tail = kind if kind != MIXED else f"{MIXED}: " + " + ".join(parts)
    if kind == CANNOT_TELL:
        tail = f"{CANNOT_TELL}: {missing}"
    line = "; ".join(words) + (f" -> {tail}" if tail else "")
    return Verdict(label, line, kind, parts, missing)


def _part_words(p: _Parts, name: str, runs: Sequence[RunResult]) -> list[str]:
    """What each part grew, only from what was measured."""
    words = []
    if p.live is not None:
        detail = ""
        if p.py_used is not None and p.in_use is not None:
            in_use, objects = mib_figure(p.in_use), mib_figure(p.py_used)
            detail = f" (malloc's in use {in_use}, pymalloc's objects {objects})"
        words.append(f"live grew {mib_figure(p.live)} MiB{detail}")
    elif p.py_used is not None:
        words.append(f"pymalloc's objects grew {mib_figure(p.py_used)} MiB")
    if p.kept is not None:
        detail = ""
        if p.py_free is not None and p.malloc_free is not None:
            free, py_free = mib_figure(p.malloc_free), mib_figure(p.py_free)
            detail = f" ({name}'s free {free}, pymalloc's free {py_free})"
        words.append(f"kept-but-free grew {mib_figure(p.kept)} MiB{detail}")
    elif p.held is not None:
        words.append(f"{name} gives no in-use count, so live and free cannot be told apart")
    else:
        words.append(_no_counters(runs))
    if not p.pymalloc_on:
        words.append("pymalloc is off: Python's objects are malloc's")
    elif p.py_used is None and p.held is not None:
        words.append("pymalloc's figures were not read: its arenas count as outside")
    outside = p.outside
    if outside is not None and outside >= LITTLE_GROWTH_BYTES:
        where = "pymalloc arenas, stacks" if p.pymalloc_on and p.py_used is None else "stacks"
        words.append(f"{mib_figure(outside)} MiB grew outside malloc ({where})")
    elif outside is not None and outside <= -LITTLE_GROWTH_BYTES:
        words.append(
            f"the counters grew {mib_figure(-outside)} MiB more than RSS: not all that {name} "
            "counts as held is resident (pages given back to the kernel by a trim or a decay still "
            "count)"
        )
    return words


def _grew(value: float | None, rss: float) -> bool:
    return value is not None and value >= GREW_BYTES and value >= PART_SHARE * rss


def _classify(
    p: _Parts, name: str, reads: dict[str, stair_read.StairRead | None]
) -> tuple[str, tuple[str, ...], str | None, list[str]]:
    """(class, parts when mixed, what is missing when it cannot tell, how-sure words)."""
    if p.rss < LITTLE_GROWTH_BYTES:
        return LITTLE_GROWTH, (), None, []
    if p.held is None:
        return CANNOT_TELL, (), "no allocator counters", []
    sure: list[str] = []
    if p.in_use is None:
        missing = f"{name} gives no in-use count, so a leak, a cache and fragmentation look alike"
        return CANNOT_TELL, (), missing, sure
    found: list[str] = []
    live_read = reads.get("live")
    if _grew(p.live, p.rss):
        if live_read is None or live_read.state == "few batches":
            found.append(LIVE)
            sure.append("one batch: a leak and a cache cannot be told apart")
        else:
            sure.append(live_read.answer())
            found.append(LIVE_CLASS.get(live_read.state, LIVE))
            if found[-1] == LIVE:
                sure.append("growth curves that predict the batches as well disagree")
    if _grew(p.kept, p.rss):
        pymalloc = p.py_free is not None and p.kept is not None and p.py_free >= 0.5 * p.kept
        found.append(PYMALLOC_FRAGMENTATION if pymalloc else FREE_KEPT)
        kept_read = reads.get("kept-but-free")
        if kept_read is not None and kept_read.state != "few batches":
            sure.append(kept_read.answer())
    outside = p.outside
    if outside is not None and outside >= LITTLE_GROWTH_BYTES and outside >= PART_SHARE * p.rss:
        found.append(OUTSIDE_PYMALLOC if p.pymalloc_on and p.py_used is None else OUTSIDE)
    size = {LEAK: p.live, CACHE: p.live, LIVE: p.live, FREE_KEPT: p.kept}
    size |= {PYMALLOC_FRAGMENTATION: p.kept, OUTSIDE: outside, OUTSIDE_PYMALLOC: outside}
    largest = max((size[f] or 0.0 for f in found), default=0.0)
    minor = [f for f in found if (size[f] or 0.0) < MIX_SHARE * largest]
    found = [f for f in found if f not in minor]
    sure += [f"also, smaller: {_short(f)} ({mib_figure(size[f] or 0.0)} MiB)" for f in minor]
    if not found:
        shares = {LIVE: p.live or 0.0, FREE_KEPT: p.kept or 0.0, OUTSIDE: outside or 0.0}
        what = max(shares, key=shares.__getitem__)
        return f"{MIXED}; the largest share is {what}", (), None, sure
    if len(found) == 1:
        return found[0], (), None, sure
    return MIXED, tuple(found), None, sure


def _short(kind: str) -> str:
    """A class's name without its explanation."""
    return kind.split(":")[0]


def verdicts(results: Sequence[RunResult]) -> list[str]:
    """Per group, in plain words: where did the RSS growth go, and what kind of growth is it?
    Medians over the group's runs that finished ok (see the module docstring)."""
    return [v.line for v in group_verdicts(results)]


def group_verdicts(results: Sequence[RunResult]) -> list[Verdict]:
    """`verdicts`, with each group's class."""
    out = []
    for label, runs in group_results([r for r in results if r.status == "ok"]).items():
        v = verdict_of(label, runs)
        if v is not None:
            out.append(v)
    return out


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b

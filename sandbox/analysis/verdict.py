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
Two causes then replace a live class when the evidence is there (`_cause`; in a mixed verdict,
its live part, `_mixed_cause`):
- unreachable reference cycles (a leak, a cache or live growth; only with --collect-garbage):
  the full collection before the trim freed at least CYCLES_SHARE of the live growth;
- native memory (a leak, or live growth): malloc's in use grew while Python's objects did not
  (the NATIVE_* rule below).
And each line may end with where to look next (`_next_step`): what finds a leak's Python
objects, the remedy `sandbox advise` would test first for memory the allocator holds, or a
re-run with --collect-garbage when live growth stops or falls between batches.
Each line gives the numbers behind it, and the stair reads (forecast intervals) that say how
sure.

The counters are sums over the server's processes (an agent in each). A figure is only given
for what was measured: what a trim returned only from runs whose trim section says a release
was called.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from sandbox.analysis import stair_read, stairs
from sandbox.analysis.groups import group_results
from sandbox.results.model import RunResult
from sandbox.results.summary import at_or_before
from sandbox.units import KIB, MIB, mib_figure

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
CYCLES = "unreachable reference cycles"
NATIVE = "native memory"
"""The names of the classes; `sandbox inspect` says the same words."""
LIVE_CLASS = {"climbing": LEAK, "slowing": LEAK, "levels": CACHE}
"""The class of live growth by its stair read (`stair_read.State`); any other state: LIVE."""
CLASSES = (
    LITTLE_GROWTH,
    LEAK,
    CACHE,
    LIVE,
    FREE_KEPT,
    PYMALLOC_FRAGMENTATION,
    OUTSIDE,
    MIXED,
    CYCLES,
    NATIVE,
)

CYCLES_SHARE = MOSTLY
"""Live growth is garbage in unreachable reference cycles when the full collection freed at
least this share of it: then most of what grew was reachable by nothing and freed by the
collector alone, and what is left (if anything) is the smaller part."""
NATIVE_PYTHON_SHARE = 0.10
"""malloc's in-use growth is native when pymalloc's objects grew at most this share of it: a
leak of Python objects keeps small objects too (their dicts, strings, ints, a container's
entries), a struct a C extension mallocs keeps none."""
NATIVE_BYTES_PER_BLOCK = 64 * KIB
"""...and when Python's allocated blocks (sys.getallocatedblocks(), every block pymalloc or
malloc holds for Python) outside pymalloc's share grew fewer than one per this much of the
in-use growth: a leak of Python buffers (bytes, bytearray, arrays) adds a block per buffer, and
buffers above this size are rare. pymalloc's share is its own count of blocks in use when the
probes have it (pymalloc_blocks); in older results, its byte growth over MIN_BLOCK_BYTES, the
most small blocks it can hold: a bound so generous that half a MiB of small objects excuses
30,000 buffers (a leak of ~10 KB strings was read as native by it: ujson 5.12.0, public case)."""
MIN_BLOCK_BYTES = 16
"""pymalloc's smallest block."""
STOP_SHARE = 0.10
"""A batch whose live growth is below this share of the largest batch's has stopped growing."""


@dataclass(frozen=True)
class Verdict:
    """One group's verdict: its words, and the class for tables (`benchmarks/verdict_truths`)."""

    label: str
    line: str
    kind: str
    """LEAK, CACHE, LIVE, FREE_KEPT, PYMALLOC_FRAGMENTATION, OUTSIDE, LITTLE_GROWTH, MIXED,
    CYCLES, NATIVE, or CANNOT_TELL; "" when nothing could be said."""
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
    def kept_resident(self) -> float | None:
        """kept-but-free less what the counters hold beyond RSS (-outside, when the counters
        grew at least LITTLE_GROWTH_BYTES more than RSS): pages a decay or a trim gave back to
        the kernel still count as held, and they are free pages; what RSS does not hold cannot
        be what made it grow. The part the classes weigh (jemalloc counted 91 MiB more free
        than a run's RSS grew by: ujson 5.12.0, public case)."""
        kept, outside = self.kept, self.outside
        if kept is None or outside is None or outside > -LITTLE_GROWTH_BYTES:
            return kept  # within what the sampling's timing moves (the words say nothing either)
        return kept - min(max(self.malloc_free or 0.0, 0.0), -outside)

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
    cause = _cause(kind, p, runs)
    if cause is not None:
        kind, tail = cause
    elif kind == MIXED:
        parts, tail = _mixed_cause(parts, p, runs, tail)
    hint = _next_step(kind, p, runs, reads.get("live"), group_stairs, trimmed)
    line = "; ".join(words) + (f" -> {tail}" if tail else "") + (f"; {hint}" if hint else "")
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
            "count)" + _resident_words(p)
        )
    return words


def _resident_words(p: _Parts) -> str:
    """What of the kept-but-free the verdict weighs, when the counters' excess cut it."""
    kept, resident = p.kept, p.kept_resident
    if kept is None or resident is None or resident >= kept:
        return ""
    return f"; of the kept-but-free, at most {mib_figure(resident)} MiB is resident and weighed"


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
    kept = p.kept_resident
    if _grew(kept, p.rss):
        pymalloc = p.py_free is not None and kept is not None and p.py_free >= 0.5 * kept
        found.append(PYMALLOC_FRAGMENTATION if pymalloc else FREE_KEPT)
        kept_read = reads.get("kept-but-free")
        if kept_read is not None and kept_read.state != "few batches":
            sure.append(kept_read.answer())
    outside = p.outside
    if outside is not None and outside >= LITTLE_GROWTH_BYTES and outside >= PART_SHARE * p.rss:
        found.append(OUTSIDE_PYMALLOC if p.pymalloc_on and p.py_used is None else OUTSIDE)
    size = {LEAK: p.live, CACHE: p.live, LIVE: p.live, FREE_KEPT: kept}
    size |= {PYMALLOC_FRAGMENTATION: kept, OUTSIDE: outside, OUTSIDE_PYMALLOC: outside}
    largest = max((size[f] or 0.0 for f in found), default=0.0)
    minor = [f for f in found if (size[f] or 0.0) < MIX_SHARE * largest]
    found = [f for f in found if f not in minor]
    sure += [f"also, smaller: {_short(f)} ({mib_figure(size[f] or 0.0)} MiB)" for f in minor]
    if not found:
        shares = {LIVE: p.live or 0.0, FREE_KEPT: kept or 0.0, OUTSIDE: outside or 0.0}
        what = max(shares, key=shares.__getitem__)
        return f"{MIXED}; the largest share is {what}", (), None, sure
    if len(found) == 1:
        return found[0], (), None, sure
    return MIXED, tuple(found), None, sure


def _short(kind: str) -> str:
    """A class's name without its explanation."""
    return kind.split(":")[0]


# --- the causes behind a live class, and where to look next ------------------------------------


def _cause(kind: str, p: _Parts, runs: Sequence[RunResult]) -> tuple[str, str] | None:
    """(CYCLES or NATIVE, the words after the arrow) when the evidence names the cause of a
    live class; None to keep the class. A measured collection is the stronger evidence, so it
    is asked first."""
    if kind in (LEAK, CACHE, LIVE):
        cycles = _cycles_words(p, runs)
        if cycles is not None:
            return CYCLES, cycles
    if kind in (LEAK, LIVE):
        native = _native_words(p, runs)
        if native is not None:
            return NATIVE, native
    return None


def _mixed_cause(
    parts: tuple[str, ...], p: _Parts, runs: Sequence[RunResult], tail: str
) -> tuple[tuple[str, ...], str]:
    """A mixed verdict's (parts, words after the arrow), its live part replaced by its cause
    (CYCLES or NATIVE) when the evidence names it, as `_cause` does for a live class alone: the
    evidence is about the live growth, whatever else grew beside it."""
    for i, part in enumerate(parts):
        cause = _cause(part, p, runs)
        if cause is not None:
            named = (*parts[:i], cause[0], *parts[i + 1 :])
            return named, f"{MIXED}: " + " + ".join(named) + f"; {cause[1]}"
    return parts, tail


def _collected(runs: Sequence[RunResult]) -> list[RunResult]:
    """The runs that ran a full collection and counted what it freed of malloc's in use."""
    return [
        r for r in runs if r.collection is not None and r.collection.freed_live_bytes is not None
    ]


def _cycles_words(p: _Parts, runs: Sequence[RunResult]) -> str | None:
    """CYCLES' words when the full collection freed at least CYCLES_SHARE of the live growth
    (medians over the runs that ran one); None otherwise."""
    collected = _collected(runs)
    if not collected or p.live is None or not _grew(p.live, p.rss):
        return None
    freed = statistics.median(
        r.collection.freed_live_bytes or 0 for r in collected if r.collection is not None
    )
    if freed < CYCLES_SHARE * p.live:
        return None
    found = int(statistics.median(r.collection.unreachable for r in collected if r.collection))
    counts = "/".join(str(c) for c in _median_counts(collected))
    left = p.live - freed
    rest = f"; what it left grew {mib_figure(left)} MiB" if left >= GREW_BYTES else ""
    return (
        f"{CYCLES}: a full collection frees {mib_figure(freed)} MiB of the {mib_figure(p.live)} "
        f"MiB live growth ({found:,} unreachable objects; generation counts before it "
        f"{counts}){rest} -> not a leak of reachable objects; find the cycle "
        "(gc.set_debug(gc.DEBUG_SAVEALL) and gc.garbage, or objgraph)"
    )


def _median_counts(runs: Sequence[RunResult]) -> list[int]:
    """gc.get_count() before the collection, per generation, the median over the runs."""
    counts = [r.collection.counts_before() for r in runs if r.collection is not None]
    width = min((len(c) for c in counts), default=0)
    return [int(statistics.median(c[g] for c in counts)) for g in range(width)]


def _native_words(p: _Parts, runs: Sequence[RunResult]) -> str | None:
    """NATIVE's words when malloc's in use grew (GREW_BYTES and PART_SHARE of the RSS growth),
    pymalloc's objects grew at most NATIVE_PYTHON_SHARE of that, and Python's blocks outside
    pymalloc fewer than one per NATIVE_BYTES_PER_BLOCK of it; None otherwise: with pymalloc off
    or unread (Python's objects are then malloc's too), or without the probes' block count (a
    leak of large Python buffers then looks the same)."""
    if not p.pymalloc_on or p.py_used is None or p.in_use is None or not _grew(p.in_use, p.rss):
        return None
    python = max(p.py_used, 0.0)
    if python > NATIVE_PYTHON_SHARE * p.in_use:
        return None
    blocks = _median_probe_growth(runs, "py_allocated_blocks")
    if blocks is None:
        return None
    pymalloc_blocks = _median_probe_growth(runs, "pymalloc_blocks")
    if pymalloc_blocks is None:
        pymalloc_blocks = python / MIN_BLOCK_BYTES
    if blocks - pymalloc_blocks > p.in_use / NATIVE_BYTES_PER_BLOCK:
        return None
    return (
        f"{NATIVE}: malloc's in use grew {mib_figure(p.in_use)} MiB while Python's objects grew "
        f"{mib_figure(p.py_used)} MiB (pymalloc's; Python's allocated blocks {blocks:+,.0f}): "
        "a C extension or a native library "
        "allocates it; tracemalloc and object counters will not find it: run memray with "
        "--native and its leaks reporter (memray run --native --trace-python-allocators -o "
        "out.bin ...; memray flamegraph --leaks out.bin), or under jemalloc its heap profiling "
        "(MALLOC_CONF=prof:true,prof_leak:true,prof_final:true; jeprof)"
    )


def _median_probe_growth(runs: Sequence[RunResult], column: str) -> float | None:
    """A probe column's growth (py_allocated_blocks, pymalloc_blocks), end of baseline to end
    of idle, the median over the runs that have it; None without."""
    grown = [g for g in (_probe_growth(r, column) for r in runs) if g is not None]
    return statistics.median(grown) if grown else None


def _probe_growth(run: RunResult, column: str) -> float | None:
    t, values = run.probes.get("t_s", []), run.probes.get(column)
    phases = {ph.name: ph for ph in run.phases}
    if not values or len(values) != len(t) or "baseline" not in phases or "idle" not in phases:
        return None
    start = at_or_before(t, values, phases["baseline"].end_s)
    end = at_or_before(t, values, phases["idle"].end_s)
    return None if start is None or end is None else float(end - start)


def _next_step(
    kind: str,
    p: _Parts,
    runs: Sequence[RunResult],
    live_read: stair_read.StairRead | None,
    group_stairs: Sequence[stairs.Stairs],
    trimmed: float | None,
) -> str | None:
    """Where to look next, in a few words; None when there is nothing to add."""
    live_class = kind in (LEAK, LIVE, CACHE, MIXED) and _grew(p.live, p.rss)
    if live_class and not _collected(runs) and _erratic(group_stairs, live_read):
        return (
            "live growth stops or falls between batches, as garbage in reference cycles "
            "does when the collector runs: re-run with --collect-garbage to measure what a "
            "full collection frees"
        )
    if kind == LEAK:
        return _python_objects_hint(runs)
    if kind == FREE_KEPT:
        return _free_kept_hint(p, trimmed)
    if kind == PYMALLOC_FRAGMENTATION:
        return (
            "next: sandbox advise --arms glibc,pymalloc-off tests PYTHONMALLOC=malloc first "
            "(Python's small objects in the allocator, which can return their pages)"
        )
    return None


def _erratic(group_stairs: Sequence[stairs.Stairs], live_read: stair_read.StairRead | None) -> bool:
    """Live growth is erratic when, in some run, a batch adds at least GREW_BYTES and a later
    batch adds less than STOP_SHARE of the largest batch's (it stopped), with growth resuming
    after it or a stair read that does not say it levels off, or a batch takes back at least
    GREW_BYTES (it fell): the shape of garbage that piles up until the collector runs."""
    levels = live_read is not None and live_read.state == "levels"
    for run in group_stairs:
        points = [s.live_bytes for s in (run.start, *run.steps)]
        if any(v is None for v in points):
            continue
        values = [float(v) for v in points if v is not None]
        added = [b - a for a, b in itertools.pairwise(values)]
        if _stops_or_falls(added, levels):
            return True
    return False


def _stops_or_falls(added: Sequence[float], levels: bool) -> bool:
    """See `_erratic`: `added` is what each batch added to live memory."""
    top = max(added, default=0.0)
    if top < GREW_BYTES:
        return False
    if any(a <= -GREW_BYTES for a in added):
        return True
    first_rise = next(i for i, a in enumerate(added) if a >= GREW_BYTES)
    for i in range(first_rise + 1, len(added)):
        if added[i] < STOP_SHARE * top:
            resumes = any(a >= GREW_BYTES for a in added[i + 1 :])
            if resumes or not levels:
                return True
    return False


def _python_objects_hint(runs: Sequence[RunResult]) -> str:
    """What finds a leak's Python objects: the largest types pympler saw, when --objects was on;
    else how to get them."""
    tops = [top for r in runs for top in (r.objects.get("after-idle"),) if top is not None]
    if tops:
        types = ", ".join(f"{t.type} {mib_figure(t.total_bytes)} MiB" for t in tops[0].types[:3])
        return (
            f"find the objects: pympler's largest types after idle were {types} (the result's "
            "objects section); tracemalloc snapshots compared (compare_to) name the lines that "
            "allocate them"
        )
    ours = all(r.server.app is None for r in runs)
    objects = "re-run with --objects (pympler's top types) or " if ours else ""
    return (
        f"find the objects: {objects}compare tracemalloc snapshots (take_snapshot, compare_to) "
        "to name the types and lines that grow"
    )


def _free_kept_hint(p: _Parts, trimmed: float | None) -> str:
    """The remedy `sandbox advise` would test first for memory the allocator holds: a periodic
    trim when a trim returned at least half of what was kept (MOSTLY), else fewer arenas."""
    if trimmed is not None and p.kept is not None and p.kept > 0 and trimmed >= MOSTLY * p.kept:
        return (
            f"next: a trim returned {mib_figure(trimmed)} MiB, so sandbox advise --arms "
            "glibc,glibc-trim5s tests a periodic malloc_trim first"
        )
    return (
        "next: sandbox advise tests the allocator remedies, fewer glibc arenas "
        "(MALLOC_ARENA_MAX=2) first, then jemalloc and a periodic trim"
    )


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

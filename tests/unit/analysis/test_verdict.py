"""verdict: where the RSS growth went and what kind of growth it is, on runs built batch by batch
with a known truth (live / kept-but-free / outside at each batch end)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from sandbox.analysis import verdict
from sandbox.load.stats import BatchStats
from sandbox.results.heap import ObjectType, TopObjects
from sandbox.results.model import RunResult
from sandbox.results.releases import Released, TrimInfo
from sandbox.results.sampling import Columns, Phase
from sandbox.results.summary import compute_summary
from sandbox.units import MIB
from tests.fakes import make_collection, make_result, with_summary

BASE_IN_USE, BASE_HELD, BASE_PY_USED, BASE_PY_FREE, OTHER = 10, 12, 8, 1, 30
"""MiB at the baseline; OTHER: what RSS holds besides malloc and pymalloc (the interpreter)."""
BASE_BLOCKS = 60_000
"""Python's allocated blocks at the baseline."""


def staircase(
    allocator: str,
    in_use: Sequence[float],
    malloc_free: Sequence[float],
    py_used: Sequence[float] | None = None,
    py_free: Sequence[float] | None = None,
    outside: Sequence[float] | None = None,
    pymalloc: bool = True,
    repeat: int = 0,
    blocks: Sequence[float] | None = None,
    pymalloc_blocks: Sequence[float] | None = None,
) -> RunResult:
    """A run whose figures at each batch end are the given growths (MiB over the baseline, one
    per batch); idle keeps the last batch's. RSS = all parts + OTHER. 1,000 requests a batch.
    `blocks`: Python's allocated blocks added by each batch end (none: no such column);
    `pymalloc_blocks`: pymalloc's share of them (none: no such column, as in older files)."""
    n = len(in_use)
    zero = [0.0] * n
    py_used = zero if py_used is None else py_used
    py_free = zero if py_free is None else py_free
    outside = zero if outside is None else outside
    phases = [Phase("baseline", 0.0, 2.0)]
    stats = []
    for k in range(1, n + 1):
        start = 2.0 + 3.0 * (k - 1)
        phases += [Phase(f"batch-{k}", start, start + 2), Phase(f"pause-{k}", start + 2, start + 3)]
        stats.append(BatchStats(k, start, start + 2, 1000, 0, 500.0, 5, 9, 12, 20))
    end = phases[-1].end_s
    phases.append(Phase("idle", end, end + 4))
    # One probe (and one sample) at the end of the baseline, of every batch, and of the idle.
    t = [2.0, *(p.end_s for p in phases if p.name.startswith("batch-")), end + 4]
    rows = [0, *range(n), n - 1]

    def col(base: float, growth: Sequence[float]) -> list[int]:
        """`base` at the baseline's probe, then base + each batch's growth."""
        return [int((base + (growth[i] if j else 0.0)) * MIB) for j, i in enumerate(rows)]

    u = col(BASE_IN_USE, in_use)
    held = [a + b for a, b in zip(u, col(BASE_HELD - BASE_IN_USE, malloc_free), strict=True)]
    pu, pf = col(BASE_PY_USED, py_used), col(BASE_PY_FREE, py_free)
    out = col(OTHER, outside)
    rss = [h + a + b + o for h, a, b, o in zip(held, pu, pf, out, strict=True)]
    probes: Columns = {"t_s": list(t), "alloc_in_use_bytes": [*u], "alloc_held_bytes": [*held]}
    if pymalloc:
        probes |= {"pymalloc_used_bytes": [*pu], "pymalloc_free_bytes": [*pf]}
    else:
        rss = [h + o for h, o in zip(held, out, strict=True)]
    if blocks is not None:
        added = [0.0, *(blocks[i] for i in rows[1:])]
        probes["py_allocated_blocks"] = [BASE_BLOCKS + int(b) for b in added]
    if pymalloc_blocks is not None:
        added = [0.0, *(pymalloc_blocks[i] for i in rows[1:])]
        probes["pymalloc_blocks"] = [BASE_BLOCKS // 2 + int(b) for b in added]
    samples: Columns = {"t_s": list(t), "rss_bytes": [*rss]}
    run = make_result(allocator, repeat=repeat)
    run = replace(
        run,
        phases=phases,
        samples=samples,
        probes=probes,
        load=replace(run.load, stats=stats),
        server=replace(run.server, pymalloc=pymalloc),
        trim=None,
    )
    return replace(run, summary=compute_summary(samples, phases, probes=probes))


LINEAR = [12.0, 24.0, 36.0, 48.0, 60.0]
LEVELS = [40.0, 40.2, 39.9, 40.1, 40.0]
FLAT = [0.5, 0.4, 0.6, 0.5, 0.5]


def one(runs: Sequence[RunResult]) -> verdict.Verdict:
    [v] = verdict.group_verdicts(runs)
    return v


def test_a_live_series_that_keeps_climbing_is_a_leak_with_its_slope() -> None:
    v = one([staircase("glibc", LINEAR, FLAT)])
    assert v.kind == verdict.LEAK
    assert v.line.startswith("glibc: RSS grew 60 MiB from baseline to after idle; live grew 60 MiB")
    assert "live: still climbing, 12.0 MiB per 1,000 requests: ≈ 138 [" in v.line
    assert "MiB after 10,000 requests (straight line)" in v.line
    assert f"-> {verdict.LEAK}; find the objects: " in v.line


def test_a_leak_of_small_objects_is_seen_in_pymalloc_not_in_malloc() -> None:
    v = one([staircase("glibc", FLAT, FLAT, py_used=LINEAR)])
    assert v.kind == verdict.LEAK
    assert "live grew 60 MiB (malloc's in use 0, pymalloc's objects 60)" in v.line
    assert "outside" not in v.line


def test_live_growth_that_levels_off_is_a_bounded_cache() -> None:
    v = one([staircase("jemalloc", LEVELS, FLAT)])
    assert v.kind == verdict.CACHE
    assert "live: levels off at ≈ 58 [" in v.line
    assert "MiB (saturating curve) -> " in v.line


def test_two_batches_whose_second_adds_nothing_are_a_weak_cache() -> None:
    v = one([staircase("glibc", [40.0, 40.0], [0.5, 0.5])])
    assert v.kind == verdict.CACHE
    assert "live: levels off at ≈ 58 MiB (straight line; weak: 2 batches, no interval)" in v.line


def test_two_batches_that_add_alike_are_a_weak_leak() -> None:
    v = one([staircase("glibc", [20.0, 40.0], [0.5, 0.5])])
    assert v.kind == verdict.LEAK
    assert "(straight line; weak: 2 batches, no interval)" in v.line


def test_one_batch_cannot_tell_a_leak_from_a_cache() -> None:
    v = one([staircase("glibc", [40.0], [0.5])])
    assert v.kind == verdict.LIVE
    assert "one batch: a leak and a cache cannot be told apart" in v.line


def test_free_memory_kept_with_live_flat_is_fragmentation() -> None:
    v = one([staircase("glibc", FLAT, LEVELS)])
    assert v.kind == verdict.FREE_KEPT
    assert "kept-but-free grew 40 MiB (glibc's free 40, pymalloc's free 0)" in v.line
    assert f"-> {verdict.FREE_KEPT}; next: sandbox advise" in v.line


def test_pymalloc_free_growth_is_arena_fragmentation() -> None:
    v = one([staircase("jemalloc", FLAT, FLAT, py_free=LEVELS)])
    assert v.kind == verdict.PYMALLOC_FRAGMENTATION


def test_a_leak_with_comparable_fragmentation_is_mixed_a_smaller_part_is_named_beside() -> None:
    mixed = one([staircase("glibc", LINEAR, LEVELS)])
    assert mixed.kind == verdict.MIXED
    assert mixed.parts == (verdict.LEAK, verdict.FREE_KEPT)
    assert mixed.line.endswith(f"-> mixed: {verdict.LEAK} + {verdict.FREE_KEPT}")
    small = one([staircase("glibc", LINEAR, [19.0] * 5)])  # under half of the leak's 60 MiB
    assert small.kind == verdict.LEAK
    assert "also, smaller: free memory held by the allocator (19 MiB)" in small.line


def test_growth_outside_malloc_and_pymalloc_is_named_outside() -> None:
    v = one([staircase("tcmalloc", FLAT, FLAT, outside=LEVELS)])
    assert v.kind == verdict.OUTSIDE
    assert "40 MiB grew outside malloc (stacks)" in v.line


def test_counters_above_rss_say_that_free_pages_given_back_still_count_as_held() -> None:
    """glibc after malloc_trim: mallinfo2 still counts the trimmed (madvised) pages as free
    memory it holds, so its figures grow more than RSS."""
    v = one([staircase("glibc", FLAT, [60.0] * 5, outside=[-30.0] * 5)])
    assert v.kind == verdict.FREE_KEPT
    assert (
        "the counters grew 30 MiB more than RSS: not all that glibc counts as held is "
        "resident (pages given back to the kernel by a trim or a decay still count)"
    ) in v.line
    assert "more than RSS" not in one([staircase("glibc", FLAT, LEVELS)]).line


def test_without_an_in_use_count_it_says_what_it_cannot_tell() -> None:
    run = staircase("mimalloc", LINEAR, FLAT)
    no_count = {k: v for k, v in run.probes.items() if k != "alloc_in_use_bytes"}
    run = replace(run, probes=no_count)
    run = replace(run, summary=compute_summary(run.samples, run.phases, probes=no_count))
    v = one([run])
    assert v.kind == verdict.CANNOT_TELL
    assert v.missing is not None and "mimalloc gives no in-use count" in v.missing
    assert "mimalloc gives no in-use count, so live and free cannot be told apart" in v.line
    assert "leak:" not in v.line


def test_pymalloc_off_shows_no_pymalloc_figure_and_says_so() -> None:
    v = one([staircase("glibc", LINEAR, FLAT, pymalloc=False)])
    assert v.kind == verdict.LEAK
    assert "pymalloc is off: Python's objects are malloc's" in v.line
    assert "pymalloc's objects" not in v.line and "pymalloc's free" not in v.line


def test_a_file_without_pymalloc_columns_counts_its_arenas_outside() -> None:
    runs = [make_result("glibc", repeat=r) for r in range(3)]
    line = verdict.verdicts(runs)[0]
    assert "pymalloc's figures were not read: its arenas count as outside" in line
    assert "live grew 6 MiB" in line  # the fakes add 2 MiB of live data per batch
    assert "pymalloc's objects" not in line


def test_repeats_are_pooled_into_one_read() -> None:
    runs = [staircase("glibc", [v + r * 0.2 for v in LINEAR], FLAT, repeat=r) for r in range(3)]
    v = one(runs)
    assert v.kind == verdict.LEAK
    assert "live: still climbing, 12.0 MiB per 1,000 requests: ≈ 138 [" in v.line


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
    big = with_summary(make_result("glibc"), baseline_mib=60, after_idle_mib=170)
    [cannot] = verdict.group_verdicts([big])
    assert cannot.kind == verdict.CANNOT_TELL and cannot.missing == "no allocator counters"


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


# --- the causes behind a live class, and where to look next ------------------------------------

FEW_BLOCKS = [30.0, 10.0, 50.0, 20.0, 40.0]
"""Python's allocated blocks barely move: what request handling leaves behind."""


def test_malloc_growth_without_python_objects_is_native_memory() -> None:
    v = one([staircase("glibc", LINEAR, FLAT, blocks=FEW_BLOCKS)])
    assert v.kind == verdict.NATIVE
    assert "live grew 60 MiB (malloc's in use 60, pymalloc's objects 0)" in v.line
    assert (
        "-> native memory: malloc's in use grew 60 MiB while Python's objects grew 0 MiB "
        "(pymalloc's; Python's allocated blocks +40): a C extension or a native library "
        "allocates it; tracemalloc and object counters will not find it: run memray with --native"
    ) in v.line
    assert "memray flamegraph --leaks" in v.line and "MALLOC_CONF=prof:true" in v.line


def test_a_leak_of_python_buffers_adds_blocks_and_stays_a_leak() -> None:
    """16 KiB bytes objects: malloc's, outside pymalloc, but one Python block each."""
    buffers = [mib * MIB / (16 * 1024) for mib in LINEAR]
    v = one([staircase("glibc", LINEAR, FLAT, blocks=buffers)])
    assert v.kind == verdict.LEAK, v.line


def test_python_objects_above_a_tenth_of_the_malloc_growth_are_not_native() -> None:
    tenth = [g * 0.12 for g in LINEAR]  # the dicts and strings around a leak of buffers
    v = one([staircase("glibc", LINEAR, FLAT, py_used=tenth, blocks=FEW_BLOCKS)])
    assert v.kind == verdict.LEAK, v.line
    at_most = [g * 0.08 for g in LINEAR]
    v = one([staircase("glibc", LINEAR, FLAT, py_used=at_most, blocks=FEW_BLOCKS)])
    assert v.kind == verdict.NATIVE, v.line


def test_pymalloc_s_own_block_count_keeps_a_leak_of_python_strings_a_leak() -> None:
    """ujson 5.12.0 (public case): ~10 KB str objects leaked, malloc's, one block each, beside
    half a MiB of small objects. Counted over 16-byte blocks, that half MiB excused 32,000
    blocks, so the leak read as native; pymalloc's own count excuses only its own blocks."""
    strings = [mib * MIB / 10_000 for mib in LINEAR]  # 6,291 blocks by the last batch
    own = FEW_BLOCKS
    v = one([staircase("glibc", LINEAR, FLAT, py_used=FLAT, blocks=strings, pymalloc_blocks=own)])
    assert v.kind == verdict.LEAK, v.line
    older = one([staircase("glibc", LINEAR, FLAT, py_used=FLAT, blocks=strings)])
    assert older.kind == verdict.NATIVE  # the bound older files still get
    native = one([staircase("glibc", LINEAR, FLAT, blocks=FEW_BLOCKS, pymalloc_blocks=own)])
    assert native.kind == verdict.NATIVE, native.line


def test_free_pages_the_counters_hold_beyond_rss_are_not_weighed() -> None:
    """jemalloc's stats.resident grew 91 MiB more than a run's RSS (ujson 5.12.0): free pages
    it counts but RSS does not hold cannot be what made RSS grow."""
    buffers = [mib * MIB / (16 * 1024) for mib in LINEAR]
    free = [18.0, 36.0, 54.0, 72.0, 90.0]
    v = one([staircase("jemalloc", LINEAR, free, outside=[-f + 4 for f in free], blocks=buffers)])
    assert v.kind == verdict.LEAK, v.line
    assert "kept-but-free grew 90 MiB" in v.line
    assert "of the kept-but-free, at most 4 MiB is resident and weighed" in v.line
    resident = one([staircase("jemalloc", LINEAR, free, blocks=buffers)])
    assert resident.kind == verdict.MIXED, resident.line


def test_native_needs_the_block_count_and_pymalloc() -> None:
    assert one([staircase("glibc", LINEAR, FLAT)]).kind == verdict.LEAK  # no block count
    off = one([staircase("glibc", LINEAR, FLAT, pymalloc=False, blocks=FEW_BLOCKS)])
    assert off.kind == verdict.LEAK  # Python's objects are malloc's too


def _collected(run: RunResult, freed_mib: float, py_freed_mib: float = 0.0) -> RunResult:
    return replace(run, collection=make_collection(freed_mib, py_freed_mib))


def test_a_collection_that_frees_most_of_the_live_growth_names_the_cycles() -> None:
    run = _collected(staircase("glibc", LINEAR, FLAT, py_used=LINEAR), 50.0, 40.0)
    v = one([run])
    assert v.kind == verdict.CYCLES
    assert (
        "-> unreachable reference cycles: a full collection frees 90 MiB of the 120 MiB live "
        "growth (1,234,567 unreachable objects; generation counts before it 650/4/1); what it "
        "left grew 30 MiB -> not a leak of reachable objects; find the cycle "
        "(gc.set_debug(gc.DEBUG_SAVEALL) and gc.garbage, or objgraph)"
    ) in v.line


def test_in_a_mixed_verdict_the_collection_names_the_live_part_as_cycles() -> None:
    run = _collected(staircase("glibc", LINEAR, LEVELS), 50.0)
    v = one([run])
    assert v.kind == verdict.MIXED
    assert v.parts == (verdict.CYCLES, verdict.FREE_KEPT)
    assert (
        f"-> mixed: {verdict.CYCLES} + {verdict.FREE_KEPT}; {verdict.CYCLES}: a full collection "
        "frees 50 MiB of the 60 MiB live growth ("
    ) in v.line


def test_a_mixed_verdict_keeps_its_live_part_without_the_evidence() -> None:
    v = one([_collected(staircase("glibc", LINEAR, LEVELS), 20.0)])
    assert v.kind == verdict.MIXED
    assert v.parts == (verdict.LEAK, verdict.FREE_KEPT)
    assert verdict.CYCLES not in v.line


def test_a_collection_comes_before_the_native_rule() -> None:
    v = one([_collected(staircase("glibc", LINEAR, FLAT, blocks=FEW_BLOCKS), 60.0)])
    assert v.kind == verdict.CYCLES
    assert "a full collection frees 60 MiB of the 60 MiB live growth (" in v.line
    assert "what it left" not in v.line


def test_a_collection_that_frees_less_than_half_keeps_the_class() -> None:
    v = one([_collected(staircase("glibc", LINEAR, FLAT), 29.0)])
    assert v.kind == verdict.LEAK
    assert "unreachable" not in v.line and "--collect-garbage" not in v.line


STOPS = [77.0, 154.0, 231.0, 231.0]
"""The public report's shape: +77, +77, +77, then +0 MiB a batch."""
SAWTOOTH = [40.0, 80.0, 20.0, 60.0, 100.0]
"""Garbage that piles up, and falls when the collector runs."""
RERUN = "re-run with --collect-garbage to measure what a full collection frees"


def test_live_growth_that_stops_or_falls_suggests_a_collection() -> None:
    for shape in (STOPS, SAWTOOTH):
        v = one([staircase("glibc", shape, FLAT)])
        assert v.kind in (verdict.LIVE, verdict.LEAK, verdict.CACHE), v.line
        assert (
            "live growth stops or falls between batches, as garbage in reference cycles does "
            f"when the collector runs: {RERUN}"
        ) in v.line, shape


def test_steady_or_levelled_growth_or_a_measured_collection_suggests_none() -> None:
    assert RERUN not in one([staircase("glibc", LINEAR, FLAT)]).line
    assert RERUN not in one([staircase("jemalloc", LEVELS, FLAT)]).line  # a cache: filled once
    assert RERUN not in one([_collected(staircase("glibc", STOPS, FLAT), 10.0)]).line


def test_a_leak_of_python_objects_points_at_what_finds_them() -> None:
    run = staircase("glibc", FLAT, FLAT, py_used=LINEAR)
    v = one([run])
    assert v.line.endswith(
        "find the objects: re-run with --objects (pympler's top types) or compare tracemalloc "
        "snapshots (take_snapshot, compare_to) to name the types and lines that grow"
    )
    own = one([replace(run, server=replace(run.server, app="svc:app"))])
    assert "--objects" not in own.line  # a user's app serves no /debug/objects
    top = TopObjects(3, [ObjectType("dict", 9, 40 * MIB), ObjectType("str", 5, 12 * MIB)], 9, 1)
    seen = one([replace(run, objects={"after-idle": top})])
    assert (
        "find the objects: pympler's largest types after idle were dict 40 MiB, str 12 MiB"
    ) in seen.line


def _trimmed(run: RunResult, returned_mib: float) -> RunResult:
    s = run.summary
    after = s.after_idle_rss_bytes - int(returned_mib * MIB)
    trim = TrimInfo("malloc_trim(0)", 1, {}, {}, Released(None, None), 5.0)
    return replace(run, trim=trim, summary=replace(s, after_trim_rss_bytes=after))


def test_memory_the_allocator_holds_names_the_remedy_advise_tests_first() -> None:
    run = staircase("glibc", FLAT, LEVELS)
    assert "next: sandbox advise tests the allocator remedies, fewer glibc arenas" in (
        one([run]).line
    )
    trims = one([_trimmed(run, 30.0)])
    assert trims.kind == verdict.FREE_KEPT
    assert trims.line.endswith(
        "next: a trim returned 30 MiB, so sandbox advise --arms glibc,glibc-trim5s tests a "
        "periodic malloc_trim first"
    )
    arenas = one([staircase("jemalloc", FLAT, FLAT, py_free=LEVELS)])
    assert "next: sandbox advise --arms glibc,pymalloc-off tests PYTHONMALLOC=malloc" in (
        arenas.line
    )

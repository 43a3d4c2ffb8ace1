"""Synthetic but realistic `RunResult`s for unit tests (no server, no Locust).

A fake run has a baseline phase, three load batches separated by pauses, and an idle phase.
RSS climbs during each batch (permanent growth plus a transient working set), drops part of the
working set in each pause, and ends on a plateau: the stair-steps of heap fragmentation.
"""

from __future__ import annotations

import math
import random
import zlib
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from sandbox.load.models import LoadModel
from sandbox.load.spec import LoadSpec, Schedule
from sandbox.load.stats import BatchStats
from sandbox.results.conditions import AllocatorInfo, HostInfo, LoadInfo, ServerInfo
from sandbox.results.model import RunResult, Status
from sandbox.results.releases import (
    CollectedState,
    CollectionInfo,
    Freed,
    MemoryState,
    ProcessCollection,
    ProcessTrim,
    Released,
    TrimAnswer,
    TrimInfo,
)
from sandbox.results.sampling import Columns, Phase, SamplerInfo
from sandbox.results.summary import Summary, compute_summary
from sandbox.units import MIB

# allocator -> (permanent growth over the run in MiB, fraction of the working set released idle)
PROFILES: dict[str, tuple[float, float]] = {
    "glibc": (90.0, 0.15),
    "jemalloc": (30.0, 0.85),
    "mimalloc": (35.0, 0.7),
    "tcmalloc": (45.0, 0.5),
}
LIBRARIES = {
    "jemalloc": "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
    "mimalloc": "/usr/lib/x86_64-linux-gnu/libmimalloc.so.2",
    "tcmalloc": "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4",
}
BATCHES = 3


RELEASE_CALLS = {"jemalloc": 'mallctl("arena.4096.purge")', "tcmalloc": "ReleaseFreeMemory()"}


def make_phases(
    baseline_s: float = 3.0,
    batch_s: float = 5.0,
    pause_s: float = 3.0,
    idle_s: float = 8.0,
    trim_s: float = 3.0,
) -> list[Phase]:
    """baseline, batch-1, pause-1, batch-2, pause-2, batch-3, idle, trim."""
    phases = [Phase("baseline", 0.0, baseline_s)]
    t = baseline_s
    for k in range(1, BATCHES + 1):
        phases.append(Phase(f"batch-{k}", t, t + batch_s))
        t += batch_s
        if k < BATCHES:
            phases.append(Phase(f"pause-{k}", t, t + pause_s))
            t += pause_s
    phases.append(Phase("idle", t, t + idle_s))
    if trim_s > 0:
        phases.append(Phase("trim", t + idle_s, t + idle_s + trim_s))
    return phases


def _rss_curve(
    t_s: Sequence[float],
    phases: Sequence[Phase],
    level: float,
    growth: float,
    working_set: float,
    release: float,
    noise: float,
    rng: random.Random,
) -> list[float]:
    """RSS in MiB at each time: exponential approach to each phase's target level."""
    out: list[float] = []
    value = level
    batch = 0
    targets: list[tuple[Phase, float, float]] = []
    for p in phases:
        if p.name.startswith("batch-"):
            batch += 1
            targets.append((p, level + growth * batch / BATCHES + working_set, 0.8))
        elif p.name == "baseline":
            targets.append((p, level, 0.5))
        elif p.name == "trim":  # asking for memory back returns the released share of growth
            targets.append((p, level + growth * (1.0 - release) + working_set * 0.1, 0.3))
        else:
            kept = working_set * (1.0 - release)
            targets.append((p, level + growth * batch / BATCHES + kept, 0.7))
    prev_t = t_s[0] if t_s else 0.0
    for t in t_s:
        phase, target, tau = next(
            ((p, tg, ta) for p, tg, ta in targets if p.start_s <= t < p.end_s), targets[-1]
        )
        value = target + (value - target) * math.exp(-(t - prev_t) / tau)
        prev_t = t
        sawtooth = 0.0
        if phase.name.startswith("batch-"):
            sawtooth = 0.25 * working_set * ((t * 1.7) % 1.0 - 0.5) * 0.2
        out.append(max(1.0, value + sawtooth + rng.gauss(0.0, noise)))
    return out


def make_result(
    allocator: str = "glibc",
    *,
    repeat: int = 0,
    rss_level_mib: float = 60.0,
    growth_mib: float | None = None,
    working_set_mib: float = 20.0,
    release: float | None = None,
    noise_mib: float = 0.4,
    seed: int | None = None,
    status: Status = "ok",
    parameters: dict[str, Any] | None = None,
    experiment: str | None = "fake-experiment",
    requests_per_batch: int = 3000,
    p95_ms: float = 120.0,
    failures: int = 0,
    sleep_ms: int = 5,
    handler: str = "sync",
    threads: int = 40,
    users: int = 16,
    tags: Sequence[str] = ("large",),
    cpu_count: int = 8,
    interval_s: float = 0.25,
) -> RunResult:
    """A synthetic run with stair-step RSS growth; `summary` is computed from its samples.

    Growth and release default to a per-allocator profile (glibc grows most); every repeat
    jitters the growth by a few percent so groups have a realistic spread. Runs that are not
    `ok` stop after the second batch, like a server that died.
    """
    params = dict(parameters or {})
    default_growth, default_release = PROFILES.get(allocator, (60.0, 0.5))
    growth = default_growth if growth_mib is None else growth_mib
    rel = default_release if release is None else release
    if seed is None:
        seed = zlib.crc32(f"{allocator}-{repeat}-{sorted(params.items())}".encode())
    rng = random.Random(seed)
    growth *= 1.0 + rng.gauss(0.0, 0.03)
    level = rss_level_mib * (1.0 + rng.gauss(0.0, 0.01))

    phases = make_phases()
    if status != "ok":
        phases = phases[:4]  # baseline, batch-1, pause-1, batch-2: died during batch 2
    end = phases[-1].end_s
    n = round(end / interval_s) + 1
    t_s = [round(i * interval_s, 6) for i in range(n)]
    rss_mib = _rss_curve(t_s, phases, level, growth, working_set_mib, rel, noise_mib, rng)
    samples: Columns = {
        "t_s": list(t_s),
        "rss_bytes": [int(v * MIB) for v in rss_mib],
        "threads": [threads + 2] * n,
    }

    batches = [p for p in phases if p.name.startswith("batch-")]
    stats = []
    for i, p in enumerate(batches, start=1):
        duration = p.end_s - p.start_s
        requests = int(requests_per_batch * (1.0 + rng.gauss(0.0, 0.02)))
        p95 = p95_ms * (1.0 + rng.gauss(0.0, 0.03))
        stats.append(
            BatchStats(
                index=i,
                start_s=p.start_s,
                end_s=p.end_s,
                requests=requests,
                failures=failures if i == 1 else 0,
                rps=requests / duration,
                p50_ms=p95 * 0.45,
                p95_ms=p95,
                p99_ms=p95 * 1.4,
                max_ms=p95 * 2.2,
                by_plan={tags[0] if tags else "all": requests},
                exit_code=0,
            )
        )

    probe_t = [float(s) for s in range(int(end) + 1)]
    done = []
    for t in probe_t:
        total = 0.0
        for p, b in zip(batches, stats, strict=True):
            frac = min(max((t - p.start_s) / (p.end_s - p.start_s), 0.0), 1.0)
            total += b.requests * frac
        done.append(int(total))
    probe_rss = [int(v * MIB) for v in _interp(probe_t, t_s, rss_mib)]
    # The allocator's view: live allocations grow a little per batch; what it holds follows RSS
    # (less the interpreter's own mappings).
    live_mib = [level * 0.4 + 2.0 * sum(1 for p in batches if p.start_s < t) for t in probe_t]
    probes: Columns = {
        "t_s": list(probe_t),
        "requests_done": list(done),
        "uss_bytes": [int(v * 0.92) for v in probe_rss],
        "pss_bytes": [int(v * 0.95) for v in probe_rss],
        "alloc_in_use_bytes": [int(v * MIB) for v in live_mib],
        "alloc_held_bytes": [int(v - 0.3 * level * MIB) for v in probe_rss],
    }

    stamp = f"20260101T{10 + repeat % 10:02d}{seed % 60:02d}00Z"
    trim = None
    if any(p.name == "trim" for p in phases):  # the agent of the one process was asked
        before = MemoryState(allocator, None, None, None, {}, None, int(samples["rss_bytes"][-1]))
        after = replace(before, rss_bytes=0)
        call = RELEASE_CALLS.get(allocator, "malloc_trim(0)")
        answer = TrimAnswer(4242, call, 1, before, after, Released(None, None), 2.0)
        asked = ProcessTrim("main", answer)
        trim = TrimInfo.over([asked], took_ms=2.5)
    return RunResult(
        run_id=f"{stamp}-{allocator}-{seed % 0xFFFF:04x}",
        status=status,
        status_detail="" if status == "ok" else f"server {status} during batch-2",
        experiment=experiment,
        started_at="2026-01-01T10:00:00Z",
        ended_at="2026-01-01T10:00:32Z",
        allocator=AllocatorInfo(
            name=allocator,
            library=LIBRARIES.get(allocator),
            env={},
            verified_loaded=True,
            mapped_libraries=[LIBRARIES[allocator]] if allocator in LIBRARIES else [],
        ),
        server=ServerInfo(
            handler=handler,
            sleep_ms=sleep_ms,
            threads=threads,
            max_body_bytes=8 * MIB,
            pymalloc=True,
            command=["python", "-m", "sandbox.server"],
            env={},
            pid=4242,
            exit_code=None if status == "ok" else -9,
        ),
        load=LoadInfo(
            LoadSpec(
                locustfile=Path("plans/locustfile.py"),
                tags=tuple(tags),
                spawn_rate=users,
                iterations=10,
                model=LoadModel(users=users),
            ),
            Schedule(batches=BATCHES, pause_s=3.0, baseline_s=3.0, idle_s=8.0),
            stats,
        ),
        host=HostInfo(python="3.11.7", glibc="2.36", cpu_count=cpu_count),
        sampler=SamplerInfo(interval_s=interval_s, source="psutil rss", decimation=1),
        phases=phases,
        samples=samples,
        probes=probes,
        summary=compute_summary(samples, phases, probes=probes),
        repeat=repeat,
        parameters=params,
        trim=trim,
    )


def _interp(x: Sequence[float], xp: Sequence[float], fp: Sequence[float]) -> list[float]:
    """Piecewise-linear interpolation without numpy (xp increasing)."""
    out = []
    j = 0
    for v in x:
        while j < len(xp) - 2 and xp[j + 1] < v:
            j += 1
        x0, x1 = xp[j], xp[j + 1]
        w = 0.0 if x1 == x0 else min(max((v - x0) / (x1 - x0), 0.0), 1.0)
        out.append(fp[j] + w * (fp[j + 1] - fp[j]))
    return out


def with_summary(
    result: RunResult,
    *,
    baseline_mib: float = 60.0,
    peak_mib: float = 200.0,
    end_of_load_mib: float = 190.0,
    after_idle_mib: float = 150.0,
) -> RunResult:
    """`result` with fixed summary figures (for tests that need exact values)."""
    return replace(
        result,
        summary=Summary(
            baseline_rss_bytes=int(baseline_mib * MIB),
            peak_rss_bytes=int(peak_mib * MIB),
            end_of_load_rss_bytes=int(end_of_load_mib * MIB),
            after_idle_rss_bytes=int(after_idle_mib * MIB),
            vmhwm_bytes=None,
        ),
    )


def with_load(result: RunResult, **changes: Any) -> RunResult:
    """`result` with fields of its load spec replaced (`iterations=...`, `model=...`)."""
    load = result.load
    return replace(result, load=replace(load, spec=replace(load.spec, **changes)))


def make_group(allocator: str, repeats: int = 3, **kwargs: Any) -> list[RunResult]:
    """`repeats` fake runs of one allocator (repeat = 0, 1, ...)."""
    return [make_result(allocator, repeat=i, **kwargs) for i in range(repeats)]


def fixed_run(
    allocator: str, after_idle: float, repeat: int = 0, peak: float | None = None, **kw: Any
) -> RunResult:
    """A fake run whose after-idle RSS is exactly `after_idle` MiB (peak 50 MiB above it unless
    given, end of load 40 MiB above it)."""
    run = make_result(allocator, repeat=repeat, **kw)
    return with_summary(
        run,
        after_idle_mib=after_idle,
        peak_mib=after_idle + 50 if peak is None else peak,
        end_of_load_mib=after_idle + 40,
    )


def fixed_runs(allocator: str, values: list[float], **kw: Any) -> list[RunResult]:
    """One `fixed_run` per after-idle value, repeats 0, 1, ..."""
    return [fixed_run(allocator, v, repeat=i, **kw) for i, v in enumerate(values)]


def make_collection(
    freed_in_use_mib: float,
    freed_pymalloc_mib: float | None = 0.0,
    *,
    unreachable: int = 1_234_567,
    freed_rss_mib: float = 12.0,
    counts_before: Sequence[int] = (650, 4, 1),
    collect_ms: float = 840.0,
    label: str = "main",
) -> CollectionInfo:
    """A full collection in one process that freed these (MiB; pymalloc's None: unread)."""
    py = None if freed_pymalloc_mib is None else int(freed_pymalloc_mib * MIB)
    state = CollectedState("glibc", None, 0, 0, {}, None, 0, pymalloc_used_bytes=None)
    one = ProcessCollection(
        label=label,
        pid=4242,
        unreachable=unreachable,
        counts_before=list(counts_before),
        generations=[{"collections": 9, "collected": unreachable, "uncollectable": 0}] * 3,
        garbage=0,
        before=state,
        after=state,
        freed=Freed(int(freed_in_use_mib * MIB), 0, int(freed_rss_mib * MIB), py),
        collect_ms=collect_ms,
        took_ms=collect_ms + 1.0,
    )
    return CollectionInfo.over([one], took_ms=collect_ms + 2.0)

"""What the agent's pymalloc reading costs, per call, on heaps of a given number of small objects.

In this process (no server), for each heap: `--objects` small str objects alive ("live"); the
same number made and every other one freed ("holey": as many arenas, pools half empty); and
nothing added ("empty"). Times `--calls` calls each of the report alone (ctypes into
`_PyObject_DebugMallocStats`), its parse, and a whole fresh reading by each source (ctypes, and
fd 2 captured around sys._debugmallocstats()), as wall time, median / p95 / max, and the
thread's CPU time per whole reading; then the share of one CPU the agent's renewal interval
(`every_s`, MIN_EVERY_S at least) gives.

    .venv/bin/python benchmarks/pymalloc_snapshot_cost.py [--objects 1000000] [--calls 200]
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from sandbox.agent import pymalloc


def timed(call: Callable[[], Any], calls: int) -> tuple[list[float], list[float]]:
    """Wall and thread-CPU seconds of each call."""
    walls, cpus = [], []
    for _ in range(calls):
        wall, cpu = time.perf_counter(), time.thread_time()
        call()
        cpus.append(time.thread_time() - cpu)
        walls.append(time.perf_counter() - wall)
    return walls, cpus


def ms(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"{statistics.median(ordered) * 1e3:.3f} / {p95 * 1e3:.3f} / {ordered[-1] * 1e3:.3f}"


def heap(kind: str, objects: int) -> list[str]:
    if kind == "empty":
        return []
    made = [f"object number {i:>12}" for i in range(objects)]  # ~70 bytes each, pymalloc's
    return made if kind == "live" else made[::2]


def measure(kind: str, objects: int, calls: int) -> None:
    kept = heap(kind, objects)
    gc.collect()
    report = pymalloc.report_via_ctypes()
    assert report is not None, "pymalloc is off (PYTHONMALLOC=malloc?)"
    figures = pymalloc.parse(report)
    assert figures is not None
    raw, _ = timed(pymalloc.report_via_ctypes, calls)
    parse, _ = timed(lambda: pymalloc.parse(report), calls)
    via_ctypes, cpu = timed(lambda: pymalloc.read(pymalloc.SOURCE_CTYPES), calls)
    via_stderr, _ = timed(lambda: pymalloc.read(pymalloc.SOURCE_STDERR), calls)
    cost_s = statistics.median(cpu)
    every_s = max(pymalloc.MIN_EVERY_S, cost_s / pymalloc.COST_SHARE)
    print(
        f"| {kind} | {len(kept):,} | {figures['arenas']} | {figures['used_bytes'] / 2**20:.1f} "
        f"| {figures['free_bytes'] / 2**20:.1f} | {ms(raw)} | {ms(parse)} | {ms(via_ctypes)} "
        f"| {ms(via_stderr)} | {cost_s * 1e3:.3f} | {every_s:g} s: "
        f"{100 * cost_s / every_s:.3f} % |"
    )
    del kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=1_000_000)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    print(
        f"Python {platform.python_version()}, {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.1f}; {args.calls} calls each; times in ms: median / p95 / max"
    )
    print(
        "| heap | objects alive | arenas | used MiB | free MiB | report | parse | "
        "reading (ctypes) | reading (fd 2) | CPU per reading | CPU share |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for kind in ("empty", "live", "holey"):
        measure(kind, args.objects, args.calls)
    sys.stdout.flush()


if __name__ == "__main__":
    main()

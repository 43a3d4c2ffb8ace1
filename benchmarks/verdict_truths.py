"""Does the verdict name the truth? Every case of experiments/truths.yml under every allocator.

Runs `sandbox experiment` (a subprocess) on a copy of experiments/truths.yml with the allocators
and repeats given here (default: glibc, jemalloc, mimalloc, tcmalloc; 2 repeats: 40 runs of
about 25 s), then reads the results and prints the confusion table: truth x verdict class,
each run judged on its own (its own stair read), then each group (its runs pooled).

A verdict is right when it names the truth:
- fragmentation: fragmentation or pymalloc arena fragmentation;
- a leak (small objects or large buffers): a leak;
- a bounded cache: a bounded cache;
- a leak and fragmentation: mixed, with a leak and a fragmentation among its parts;
- any truth under an allocator that gives no in-use count (mimalloc): "cannot tell", naming
  the missing in-use count (it must say what it cannot tell instead of guessing).

    .venv/bin/python benchmarks/verdict_truths.py [--repeats 2] [--allocators glibc,jemalloc]
        [--results-dir /tmp/verdict-truths]
    .venv/bin/python benchmarks/verdict_truths.py --read FOLDER     # tally runs made before
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from sandbox.analysis import verdict
from sandbox.analysis.groups import group_results
from sandbox.analysis.verdict import Verdict
from sandbox.results import files as result_files
from sandbox.results.model import RunResult

ROOT = Path(__file__).resolve().parents[1]
TRUTHS = ROOT / "experiments" / "truths.yml"
ALLOCATORS = ("glibc", "jemalloc", "mimalloc", "tcmalloc")
FRAGMENTATION, LEAK_SMALL, LEAK_LARGE, CACHE, LEAK_FRAG = (
    "fragmentation",
    "leak of small objects",
    "leak of large buffers",
    "bounded cache",
    "leak + fragmentation",
)
TRUTH_NAMES = (FRAGMENTATION, LEAK_SMALL, LEAK_LARGE, CACHE, LEAK_FRAG)
FRAGMENTS = (verdict.FREE_KEPT, verdict.PYMALLOC_FRAGMENTATION)
SHORT = {
    verdict.LEAK: "leak",
    verdict.CACHE: "cache",
    verdict.LIVE: "leak or cache",
    verdict.FREE_KEPT: "fragmentation",
    verdict.PYMALLOC_FRAGMENTATION: "pymalloc frag.",
    verdict.OUTSIDE: "outside",
    verdict.OUTSIDE_PYMALLOC: "outside",
    verdict.LITTLE_GROWTH: "little growth",
    verdict.CANNOT_TELL: "cannot tell",
}


def truth_of(parameters: Mapping[str, Any]) -> str:
    """Which case of truths.yml a run's parameters are."""
    leak = int(parameters.get("leak_bytes", 0) or 0)
    if leak and tuple(parameters.get("tags", ())) == ("medium",):
        return LEAK_FRAG
    if leak:
        return LEAK_SMALL if parameters.get("leak_kind", "small") == "small" else LEAK_LARGE
    if parameters.get("cache_docs"):
        return CACHE
    return FRAGMENTATION


def name_of(v: Verdict) -> str:
    """The verdict's class in a table cell."""
    if v.kind == verdict.MIXED:
        return "mixed: " + " + ".join(sorted({SHORT.get(p, p) for p in v.parts}))
    return SHORT.get(v.kind, v.kind or "(none)")


def right(truth: str, v: Verdict) -> bool:
    """Whether `v` names `truth` (see the module docstring)."""
    if v.kind == verdict.CANNOT_TELL:
        return v.missing is not None and "in-use count" in v.missing
    if truth == FRAGMENTATION:
        return v.kind in FRAGMENTS
    if truth in (LEAK_SMALL, LEAK_LARGE):
        return v.kind == verdict.LEAK
    if truth == CACHE:
        return v.kind == verdict.CACHE
    return (
        v.kind == verdict.MIXED and verdict.LEAK in v.parts and any(p in FRAGMENTS for p in v.parts)
    )


def judged(runs: Sequence[RunResult], pooled: bool) -> list[tuple[str, str, Verdict]]:
    """(allocator, truth, verdict) per run, or per group when `pooled`."""
    out = []
    ok = [r for r in runs if r.status == "ok"]
    sets = list(group_results(ok).items()) if pooled else [(r.run_id, [r]) for r in ok]
    for label, group in sets:
        v = verdict.verdict_of(label, group)
        if v is not None:
            out.append((group[0].allocator.name, truth_of(group[0].parameters), v))
    return out


def table(rows: Sequence[tuple[str, str, Verdict]]) -> str:
    """The confusion table: one row per truth, one column per verdict class seen."""
    cells = Counter((truth, name_of(v)) for _, truth, v in rows)
    columns = sorted({name for _, name in cells})
    scored = Counter((truth, right(truth, v)) for _, truth, v in rows)
    head = ["truth \\ verdict", *columns, "right"]
    body = []
    for truth in TRUTH_NAMES:
        n = scored[truth, True] + scored[truth, False]
        if n:
            counts = [str(cells[truth, c] or "") for c in columns]
            body.append([truth, *counts, f"{scored[truth, True]}/{n}"])
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
        for r in [head, *body]
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    total = sum(1 for _, t, v in rows if right(t, v))
    lines.append(f"\nright: {total}/{len(rows)} ({100 * total / max(1, len(rows)):.0f} %)")
    return "\n".join(lines)


def by_allocator(rows: Sequence[tuple[str, str, Verdict]]) -> str:
    counts = Counter((a, right(t, v)) for a, t, v in rows)
    names = sorted({a for a, _, _ in rows})
    return ", ".join(f"{a} {counts[a, True]}/{counts[a, True] + counts[a, False]}" for a in names)


def run_experiment(allocators: Sequence[str], repeats: int, results_dir: Path) -> None:
    spec = yaml.safe_load(TRUTHS.read_text())
    spec.update(name="verdict-truths", allocators=list(allocators), repeats=repeats)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "verdict-truths.yml"
        path.write_text(yaml.safe_dump(spec, sort_keys=False))
        command = [sys.executable, "-m", "sandbox", "experiment", str(path)]
        command += ["--results-dir", str(results_dir)]
        subprocess.run(command, check=True, cwd=ROOT, env=dict(os.environ))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--allocators", default=",".join(ALLOCATORS))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--results-dir", type=Path, default=Path("/tmp/verdict-truths"))
    parser.add_argument("--read", type=Path, help="tally the results in this folder; run nothing")
    parser.add_argument("--lines", action="store_true", help="print every verdict line too")
    args = parser.parse_args(argv)
    folder = args.read
    if folder is None:
        run_experiment(args.allocators.split(","), args.repeats, args.results_dir)
        folder = args.results_dir
    runs = result_files.load_all([folder])
    print(
        f"{len(runs)} runs read from {folder}, "
        f"{sum(r.status == 'ok' for r in runs)} ok; load average {os.getloadavg()[0]:.2f}"
    )
    for title, pooled in (("each run on its own", False), ("each group, runs pooled", True)):
        rows = judged(runs, pooled)
        print(f"\n## {title}\n\n{table(rows)}\nby allocator: {by_allocator(rows)}")
        if args.lines:
            for _, truth, v in rows:
                mark = "ok " if right(truth, v) else "BAD"
                print(f"{mark} [{truth}] {v.line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Does the growth forecast hold? Long runs of each truth the stair-stepper can make, forecast from
their first k batches, checked against their last.

Each case below runs under glibc and jemalloc, RUNS times, through the real CLI (`sandbox run
... --results-dir DIR/<case>/<allocator>` as a subprocess: Locust never runs in this process).
Then, for k = 3, 4, 6, each run's first k batch ends are fitted (`sandbox.analysis.growth`, the
run alone) and the fit forecasts RSS, live and kept-but-free at the last batch's request count.
Printed per truth x allocator x k, and in all:
- the median absolute percentage error of the forecast (of the last batch's value);
- how often the 90 % interval held the last batch's value, and its median width (percent of
  that value);
- how often the class (levels off vs climbing) was right, for the quantities whose truth is
  stated (TRUTHS); "cannot tell" counts as not right.

Every bound (cache, pins) fills within the first two batches, so that from k = 3 on the bound is
in what the fit sees; a bound that fills later would be a leak to any k batches before it.

    .venv/bin/python benchmarks/forecast_backtest.py [--runs 2] [--results-dir DIR]
    .venv/bin/python benchmarks/forecast_backtest.py --from DIR      # re-read runs made before
    .venv/bin/python benchmarks/forecast_backtest.py --runs-only     # make the runs, no reading
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from sandbox.analysis import stair_read, stairs
from sandbox.analysis.stairs import QUANTITIES, Stairs
from sandbox.results import files as result_files
from sandbox.results.model import RunResult

ROOT = Path(__file__).resolve().parents[1]
ALLOCATORS = ("glibc", "jemalloc")
BATCHES = 14
KS = (3, 4, 6)
COMMON = [
    "--batches", str(BATCHES), "--pause", "0.3", "--baseline", "1", "--idle", "1",
    "--trim", "0", "--sleep-ms", "2", "--users", "8",
]  # fmt: skip
FOREIGN_VARS = ("LD_PRELOAD", "MALLOC_CONF", "MALLOC_ARENA_MAX", "PYTHONMALLOC")

LEVELS, CLIMBS = "levels off", "climbing"


@dataclass(frozen=True)
class Case:
    """One truth: the flags that make it, and what each quantity does in the long run."""

    name: str
    args: tuple[str, ...]
    truth: dict[str, str]
    """Quantity -> LEVELS or CLIMBS; a quantity left out has no truth stated (not judged)."""
    why: str


CASES = (
    Case(
        "fragmentation",
        ("--tags", "medium", "--iterations", "60"),
        {"RSS": LEVELS, "live": LEVELS, "kept-but-free": LEVELS},
        "nothing is kept: live returns to its level after each batch, and the allocator reuses "
        "the free memory it kept, so held memory stops growing once the peak working set of one "
        "batch has been met",
    ),
    Case(
        "leak of small objects",
        ("--tags", "tiny", "--iterations", "300", "--leak", "30KiB", "--leak-kind", "small"),
        {"RSS": CLIMBS, "live": CLIMBS},
        "30 KiB a request kept for good: live and RSS grow by the same amount each batch; "
        "kept-but-free has no stated truth (it depends on how the leak interleaves with garbage)",
    ),
    Case(
        "leak of large buffers",
        ("--tags", "tiny", "--iterations", "300", "--leak", "30KiB", "--leak-kind", "large"),
        {"RSS": CLIMBS, "live": CLIMBS},
        "as the small leak, in 16 KiB malloc buffers",
    ),
    Case(
        "bounded cache",
        ("--tags", "tiny", "--iterations", "300", "--cache-docs", "450"),
        {"RSS": LEVELS, "live": LEVELS, "kept-but-free": LEVELS},
        "the last 450 bodies, full within the second batch of 300: nothing grows after that",
    ),
    Case(
        "leak + fragmentation",
        ("--tags", "medium", "--iterations", "100", "--leak", "80KiB", "--leak-kind", "small"),
        {"RSS": CLIMBS, "live": CLIMBS},
        "80 KiB a request kept for good on top of the default workload",
    ),
    Case(
        "pinning",
        ("--tags", "medium", "--iterations", "60", "--pin-objects", "480"),
        {"RSS": LEVELS, "live": LEVELS, "kept-but-free": LEVELS},
        "4 objects a request, the last 480 kept: full within the second batch of 60 (240 a "
        "batch); what they pin is bounded by them",
    ),
)


def harness_env() -> dict[str, str]:
    """Ours, minus allocator settings that would change what the server runs under."""
    env = {k: v for k, v in os.environ.items() if k not in FOREIGN_VARS}
    return {k: v for k, v in env.items() if not k.startswith("LOCUST_")}


def folder_of(root: Path, case: Case, allocator: str) -> Path:
    return root / case.name.replace(" ", "-").replace("+", "and") / allocator


def make_runs(root: Path, runs: int) -> None:
    """Every case under every allocator, `runs` times, interleaved (repeat by repeat)."""
    for repeat in range(runs):
        for case in CASES:
            for allocator in ALLOCATORS:
                folder = folder_of(root, case, allocator)
                started = time.monotonic()
                done = subprocess.run(
                    [sys.executable, "-m", "sandbox", "run", "--allocator", allocator,
                     *COMMON, *case.args, "--results-dir", str(folder)],
                    cwd=ROOT, env=harness_env(), stdin=subprocess.DEVNULL,
                    capture_output=True, text=True, timeout=600,
                )  # fmt: skip
                took = time.monotonic() - started
                state = "ok" if done.returncode == 0 else f"failed ({done.returncode})"
                print(f"run {repeat + 1}: {case.name}, {allocator}: {state} in {took:.0f} s")
                if done.returncode != 0:
                    print(done.stderr[-2000:], file=sys.stderr)
                sys.stdout.flush()


@dataclass(frozen=True)
class Outcome:
    """One forecast: a run's quantity, from its first k batch ends, of its last."""

    case: str
    allocator: str
    k: int
    quantity: str
    error: float
    """|forecast - last| / |last|."""
    held: bool | None
    """The 90 % interval held the last value; None without an interval."""
    width: float | None
    """The interval's width / |last|; None without an interval."""
    right: bool | None
    """The class was right; None when the quantity has no stated truth."""


def _cut(s: Stairs, k: int) -> Stairs:
    return replace(s, steps=s.steps[:k])


def outcomes_of(case: Case, allocator: str, result: RunResult) -> list[Outcome]:
    """Every k and quantity's forecast of the run's last batch end."""
    whole = stairs.stairs(result)
    if whole is None or len(whole.steps) < max(KS) + 1:
        return []
    last = whole.steps[-1]
    out = []
    for k in KS:
        for quantity in QUANTITIES:
            r = stair_read.read([_cut(whole, k)], quantity)
            truth_value = last.value(quantity)
            if r is None or r.forecaster is None or truth_value is None:
                continue
            band = r.forecaster.band(float(last.requests))
            error = abs(band.mid - truth_value) / max(abs(truth_value), 1.0)
            held = band.low <= truth_value <= band.high if r.has_interval else None
            width = (band.high - band.low) / max(abs(truth_value), 1.0) if r.has_interval else None
            said = {"levels": LEVELS, "climbing": CLIMBS, "slowing": CLIMBS}.get(r.state)
            stated = case.truth.get(quantity)
            right = None if stated is None else said == stated
            out.append(Outcome(case.name, allocator, k, quantity, error, held, width, right))
    return out


def _share(flags: Sequence[bool | None]) -> tuple[int, int]:
    judged = [f for f in flags if f is not None]
    return sum(judged), len(judged)


def _pct(values: Sequence[float]) -> str:
    return f"{100 * statistics.median(values):.1f} %" if values else "-"


def _row(label: str, outs: Sequence[Outcome]) -> str:
    errors = [_pct([o.error for o in outs if o.quantity == q]) for q in QUANTITIES]
    held, judged = _share([o.held for o in outs])
    right, stated = _share([o.right for o in outs])
    return (
        f"{label:<44} {errors[0]:>8} {errors[1]:>8} {errors[2]:>8} "
        f"{held:>3}/{judged:<3} {right:>3}/{stated:<3}"
    )


def report(root: Path) -> list[str]:
    """The tables: per truth x allocator x k, then per k over every case, against the targets."""
    outs: list[Outcome] = []
    runs = 0
    for case in CASES:
        for allocator in ALLOCATORS:
            folder = folder_of(root, case, allocator)
            found = result_files.load_all([folder]) if folder.exists() else []
            for result in found:
                if result.status == "ok":
                    runs += 1
                    outs += outcomes_of(case, allocator, result)
    head = f"{'truth, allocator, k':<44} {'RSS err':>8} {'live err':>8} {'kept err':>8} "
    lines = [
        f"forecast backtest: {runs} runs of {BATCHES} batches read from {root}",
        "each run alone: its first k batch ends forecast its last (median abs. % error per "
        "quantity; 90 % interval held; class levels off / climbing right, stated truths only)",
        "",
        head + "held    class",
    ]
    for case in CASES:
        for allocator in ALLOCATORS:
            for k in KS:
                mine = [o for o in outs if (o.case, o.allocator, o.k) == (case.name, allocator, k)]
                if mine:
                    lines.append(_row(f"{case.name}, {allocator}, k={k}", mine))
    lines += ["", "all truths:"]
    for k in KS:
        lines.append(_row(f"k={k}", [o for o in outs if o.k == k]))
    lines += ["", "against the targets (all quantities pooled):"]
    for k in KS:
        mine = [o for o in outs if o.k == k]
        error = statistics.median([o.error for o in mine]) if mine else float("nan")
        held, judged = _share([o.held for o in mine])
        right, stated = _share([o.right for o in mine])
        width = _pct([o.width for o in mine if o.width is not None])
        target = 0.20 if k == 3 else 0.10 if k >= 6 else None
        lines.append(
            f"k={k}: median error {100 * error:.1f} %"
            + (f" (target <= {100 * target:.0f} %)" if target is not None else "")
            + f"; interval held {held}/{judged} = {_ratio(held, judged)} (target >= 85 %)"
            + f", median width {width}"
            + f"; class right {right}/{stated} = {_ratio(right, stated)}"
            + (" (target >= 95 %)" if k >= 4 else "")
        )
    lines += ["", "truths (stated before the runs):"]
    lines += [f"- {c.name}: {c.why}" for c in CASES]
    return lines


def _ratio(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f} %" if whole else "-"


def _load() -> str:
    """The host's load averages (1, 5, 15 min): the machine is shared with other work."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f}"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2, help="runs of each case per allocator")
    parser.add_argument("--results-dir", type=Path, help="where the runs go (default: a temp dir)")
    parser.add_argument("--from", dest="source", type=Path, help="read runs made before")
    parser.add_argument("--runs-only", action="store_true", help="make the runs, do not read")
    args = parser.parse_args(argv)
    root = args.source
    if root is None:
        root = args.results_dir or Path(tempfile.mkdtemp(prefix="forecast-backtest-"))
        print(f"results: {root}")
        started = time.monotonic()
        print(f"host: {os.cpu_count()} cores, shared; {_load()} before the runs")
        make_runs(root, args.runs)
        took = (time.monotonic() - started) / 60
        print(f"runs made in {took:.1f} min; {_load()} after them")
    if not args.runs_only:
        print("\n".join(report(root)))


if __name__ == "__main__":
    main()

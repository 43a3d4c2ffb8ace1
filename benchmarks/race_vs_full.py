"""The race against running every arm to full repeats: the wall time the race saves, and whether
it names the same winner.

Step 1 (`run`) runs every arm `--repeats` times, interleaved, as one experiment on the race's
default workload (experiments/quick.yml's settings, with --host-cores), through
`sandbox experiment`; its folder holds every run. Step 2 (`replay FOLDER`) replays the race on
those runs: round k is each live arm's repeat k; after each round `sandbox.advise.rules.decide`
drops arms exactly as `sandbox advise` does, until the best is separated or the repeats run out.
It prints the runs and the wall time (the runs' own durations) the race used against the full
experiment's, and the winner of each: the race's last best, and the full data's best arm
(lowest geometric mean after-idle RSS among those the guardrail does not mark). Writes nothing
but the experiment.

    .venv/bin/python benchmarks/race_vs_full.py run --arms glibc,glibc-arena2,jemalloc,mimalloc \\
        --repeats 4 --host-cores 8 --results-dir results/
    .venv/bin/python benchmarks/race_vs_full.py replay results/race-vs-full-YYYYMMDDTHHMMSSZ/
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import yaml

from sandbox.advise import catalogue, plan, rules
from sandbox.advise.race import figures_of
from sandbox.allocators.registry import BUILTIN
from sandbox.results import files as result_files
from sandbox.results.model import RunResult


def experiment_text(arms: Sequence[str], repeats: int, host_cores: int | None) -> str:
    """An experiment file: the arms as allocators, the race's default workload."""
    quick = yaml.safe_load(plan.QUICK.read_text())
    data = {k: v for k, v in quick.items() if k not in ("name", "description", "allocators")}
    data |= {"name": "race-vs-full", "allocators": list(arms), "repeats": repeats}
    data["baseline"] = "glibc"
    custom = {}
    for name in arms:
        arm = catalogue.BY_NAME[name]
        if name in BUILTIN and dict(BUILTIN[name].env) == dict(arm.env):
            continue
        custom[name] = {"library": arm.library, "env": dict(arm.env), "package": arm.package}
    if custom:
        data["custom_allocators"] = custom
    if host_cores is not None:
        data.setdefault("server", {})["host_cores"] = host_cores
    return yaml.safe_dump(data, sort_keys=False)


def run(args: argparse.Namespace) -> None:
    arms = [a.strip() for a in args.arms.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "race-vs-full.yml"
        path.write_text(experiment_text(arms, args.repeats, args.host_cores))
        cmd = [sys.executable, "-m", "sandbox", "experiment", str(path)]
        if args.results_dir:
            cmd += ["--results-dir", args.results_dir]
        sys.exit(subprocess.call(cmd))


def _seconds(r: RunResult) -> float:
    start = datetime.fromisoformat(r.started_at.replace("Z", "+00:00"))
    end = datetime.fromisoformat(r.ended_at.replace("Z", "+00:00"))
    return (end - start).total_seconds()


def replay(folder: Path, tolerance: float, min_rounds: int) -> None:
    runs = result_files.load_all([folder])
    runs = [r for r in runs if r.status == "ok"]
    arms = list(dict.fromkeys(r.allocator.name for r in sorted(runs, key=lambda r: r.started_at)))
    repeats = max(r.repeat for r in runs) + 1
    live, best = list(arms), None
    dropped: dict[str, tuple[int, str]] = {}
    used: list[RunResult] = []
    stopped = f"the repeats ran out ({repeats})"
    for k in range(repeats):
        used += [r for r in runs if r.repeat == k and r.allocator.name in live]
        decision = rules.decide(
            figures_of(used), live, "glibc", k + 1, tolerance=tolerance, min_rounds=min_rounds
        )
        best = decision.best
        for arm, why in decision.dropped.items():
            dropped.setdefault(arm, (k + 1, why))
        live = [a for a in arms if a not in dropped or a == "glibc"]
        if rules.separated(live, best, list(dropped)):
            stopped = f"{best} separated after round {k + 1}"
            break
    full = figures_of(runs)
    marked = {a: w for a in arms if (w := rules.guardrail(full, a, "glibc", tolerance))}
    full_best = rules.best_arm(full, arms, marked)
    race_s, full_s = sum(map(_seconds, used)), sum(map(_seconds, runs))
    print(f"{folder}: {len(arms)} arms x {repeats} repeats")
    print(f"race: {len(used)} runs, {race_s / 60:.1f} min of runs; stopped: {stopped}")
    for arm, (k, why) in dropped.items():
        print(f"  dropped {arm} after round {k}: {why}")
    print(f"full: {len(runs)} runs, {full_s / 60:.1f} min of runs")
    print(f"saved: {(full_s - race_s) / 60:.1f} min ({1 - race_s / full_s:.0%} of the wall time)")
    print(f"winner: race {best}, full {full_best}: {'same' if best == full_best else 'DIFFERENT'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="step", required=True)
    r = sub.add_parser("run")
    r.add_argument("--arms", default="glibc,glibc-arena2,jemalloc,mimalloc")
    r.add_argument("--repeats", type=int, default=4)
    r.add_argument("--host-cores", type=int, default=8)
    r.add_argument("--results-dir")
    p = sub.add_parser("replay")
    p.add_argument("folder", type=Path)
    p.add_argument("--tolerance", type=float, default=rules.TOLERANCE)
    p.add_argument("--min-rounds", type=int, default=rules.MIN_ROUNDS)
    args = parser.parse_args()
    if args.step == "run":
        run(args)
    else:
        replay(args.folder, args.tolerance, args.min_rounds)


if __name__ == "__main__":
    main()

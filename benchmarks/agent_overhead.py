"""The agent's overhead on a user's service under load: examples/cache_service with and without
the agent, the same load, interleaved, `--repeats` times each.

Every run is a real `sandbox run` of the service (through `--app`, one process, and through
gunicorn's UvicornWorker -w 2, three), under glibc: a soak of `--users` closed-loop users for
`--duration` s, the probe reading each process's agent once a second as in any run. Without the
agent the harness is started with SANDBOX_NO_AGENT=1 (meant only for this measurement). The
order alternates (with, without, without, with, ...) so that drift on a shared machine falls
on both sides. From the results: throughput (the batch's req/s) and p95 latency, with/without as
a ratio of geometric means with a 95 % Welch interval (`sandbox.analysis.stats.log_ratio`), and
per process the RSS the agent adds at the end of the 3 s baseline, once the probe has asked it
for counters (median with minus median without; not after the load, where RSS follows how many
items the load stored). Targets: throughput within 1 %, under 3 MiB per process.

    .venv/bin/python benchmarks/agent_overhead.py [--repeats 4] [--duration 20] [--users 4]
        [--target app --target gunicorn] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sandbox import results
from sandbox.analysis.stats import Ratio, log_ratio
from sandbox.measure.agents import NO_AGENT_ENV
from sandbox.results import RunResult

MIB = 2**20
REPO = Path(__file__).resolve().parents[1]
APP = "examples.cache_service.app:app"
READY = ["--ready-url", "http://{host}:{port}/health"]
TARGETS = {
    "app": ["--app", APP],
    "gunicorn": [
        "--cmd",
        f"{sys.executable} -m gunicorn -k uvicorn.workers.UvicornWorker -w 2 "
        f"--bind {{host}}:{{port}} {APP}",
        *READY,
    ],
}
FOREIGN = ("LD_PRELOAD", "MALLOC_CONF", "MALLOC_ARENA_MAX", "PYTHONMALLOC", NO_AGENT_ENV)


def sandbox_run(target: str, agent: bool, args: argparse.Namespace, folder: Path) -> RunResult:
    env = {k: v for k, v in os.environ.items() if k not in FOREIGN and not k.startswith("LOCUST_")}
    if not agent:
        env[NO_AGENT_ENV] = "1"
    load = [
        *["--locustfile", "examples/cache_service/locustfile.py", "--tags", "put,get"],
        *["--load", "soak", "--duration", f"{args.duration:g}", "--users", str(args.users)],
        *["--batches", "1", "--baseline", "3", "--idle", "1", "--trim", "0"],
    ]
    cmd = [sys.executable, "-m", "sandbox", "run", *TARGETS[target], *load]
    cmd += ["--allocator", "glibc", "--results-dir", str(folder)]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"sandbox run failed ({done.returncode}): {done.stderr[-2000:]}")
    (path,) = sorted((folder / "runs").glob("*.json"))
    result = results.load(path)
    if result.status != "ok":
        raise SystemExit(f"{path}: {result.status}: {result.status_detail}")
    return result


def rss_by_process(result: RunResult, phase: str) -> dict[str, float]:
    """Each process's RSS at the end of `phase` (baseline, or the batch): the median of the
    probes in its last half; with one process, the sampler's RSS."""
    span = next(p for p in result.phases if p.name == phase)
    start = span.end_s - (span.end_s - span.start_s) / 2
    labels = [n.removeprefix("rss_bytes_") for n in result.probes if n.startswith("rss_bytes_")]
    columns = (
        {label: (result.probes["t_s"], result.probes[f"rss_bytes_{label}"]) for label in labels}
        if labels
        else {"main": (result.samples["t_s"], result.samples["rss_bytes"])}
    )
    out = {}
    for label, (t, rss) in columns.items():
        values = [v for ts, v in zip(t, rss, strict=True) if start <= ts <= span.end_s]
        out[label] = float(statistics.median(values))
    return out


def ratio_text(r: Ratio) -> str:
    if r.ratio is None:
        return f"- ({r.note})"
    interval = "" if r.ci_low is None else f" [{r.ci_low:.3f}, {r.ci_high:.3f}]"
    return f"{r.ratio:.3f}{interval}"


def report(target: str, runs: dict[bool, list[RunResult]]) -> None:
    def batch(metric: str, agent: bool) -> list[float]:
        return [float(getattr(r.load.stats[0], metric)) for r in runs[agent]]

    n = len(runs[True])
    rps = log_ratio(batch("rps", True), batch("rps", False), "throughput")
    p95 = log_ratio(batch("p95_ms", True), batch("p95_ms", False), "p95")
    print(f"\n{target}: with / without the agent, n={n} each (95 % interval)")
    rps_with, rps_without = (
        statistics.median(batch("rps", True)),
        statistics.median(batch("rps", False)),
    )
    p95_with, p95_without = (
        statistics.median(batch("p95_ms", True)),
        statistics.median(batch("p95_ms", False)),
    )
    print(
        f"  throughput {ratio_text(rps)}   (median {rps_with:.1f} req/s with, "
        f"{rps_without:.1f} without)"
    )
    print(
        f"  p95        {ratio_text(p95)}   (median {p95_with:.1f} ms with, "
        f"{p95_without:.1f} ms without)"
    )
    # At rest, after the probe's first memory ops (the agent has loaded ctypes and found the
    # allocator): not after the load, where RSS follows how many items the load stored.
    per = {agent: [rss_by_process(r, "baseline") for r in runs[agent]] for agent in (True, False)}
    labels = sorted(set.intersection(*(set(p) for p in per[True] + per[False])))
    words = []
    for label in labels:
        with_agent = statistics.median(p[label] for p in per[True])
        without = statistics.median(p[label] for p in per[False])
        words.append(f"{label} {(with_agent - without) / MIB:+.2f} MiB (of {without / MIB:.1f})")
    print(f"  RSS added per process at the end of the baseline: {', '.join(words)}")
    missed = sum(p.failed for r in runs[True] for p in r.sampler.agents)
    asked = sum(p.answered + p.failed for r in runs[True] for p in r.sampler.agents)
    print(f"  agent probes missed: {missed} of {asked}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--users", type=int, default=4)
    parser.add_argument("--target", action="append", choices=sorted(TARGETS))
    parser.add_argument("--keep", type=Path, help="keep the result files under this folder")
    args = parser.parse_args()
    targets = args.target or ["app", "gunicorn"]
    folder = args.keep or Path(tempfile.mkdtemp(prefix="agent-overhead-"))
    started = time.monotonic()
    try:
        for target in targets:
            runs: dict[bool, list[RunResult]] = {True: [], False: []}
            for i in range(args.repeats):
                order = (True, False) if i % 2 == 0 else (False, True)
                for agent in order:
                    where = folder / f"{target}-{'with' if agent else 'without'}-{i}"
                    runs[agent].append(sandbox_run(target, agent, args, where))
            report(target, runs)
        print(f"\n{time.monotonic() - started:.0f} s in all; load average {os.getloadavg()}")
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()

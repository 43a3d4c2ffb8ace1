"""Harness footprint: does the `sandbox run` process itself stay small and flat over a long run?

Starts `sandbox run` (the console script beside this Python, a subprocess) on the quick.yml
fragmenting load (all four bodies, 32 users, 30 iterations per plan per batch, 2 s pauses,
SLEEP_MS 450, threadpool handler) with enough batches to last about `--minutes`, and samples the
RSS of the harness process itself (psutil, the `sandbox` process only: not the server, not
Locust) every `--every` seconds until it exits. Prints the RSS at launch, at the start (10 s:
imports done, server up, first batch running), after one minute, the maximum and at the end,
the slope over the second half (least squares, MiB per 10 min), the harness's thread and
file-descriptor counts, what the run's result file says, and whether the RSS stays below
150 MB (10^6 bytes; the sampled maximum, or the result's own figures, taken while the result
is built after the last sample, if higher) and flat (second-half slope below 1 MiB per 10 min).
The result file goes to a temporary folder and is deleted.

    .venv/bin/python benchmarks/harness_footprint.py [--minutes 30] [--allocator glibc]
        [--batch-seconds 8.5] [--every 1]

`--batch-seconds` is one batch plus its pause on this load, measured on a 2-core machine
(experiments/quick.yml: about 6.5 s a batch, 2 s pause); the run's real length is printed.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

from sandbox.results import files as result_files
from sandbox.units import MIB

LIMIT_BYTES = 150_000_000
FLAT_MIB_PER_10MIN = 1.0
FIXED_S = 2 + 6 + 3 + 5  # baseline, idle, trim, start-up and writing the result (about)


@dataclass(frozen=True)
class Sample:
    t_s: float
    rss_bytes: int
    threads: int
    fds: int


def command(allocator: str, batches: int, results_dir: Path) -> list[str]:
    """`sandbox run` with quick.yml's settings and `batches` batches."""
    sandbox = Path(sys.executable).parent / "sandbox"
    return [
        str(sandbox),
        "run",
        "--allocator",
        allocator,
        "--tags",
        "tiny,small,medium,large",
        "--users",
        "32",
        "--iterations",
        "30",
        "--batches",
        str(batches),
        "--pause",
        "2",
        "--baseline",
        "2",
        "--idle",
        "6",
        "--sleep-ms",
        "450",
        "--handler",
        "sync",
        "--results-dir",
        str(results_dir),
    ]


@contextmanager
def running(cmd: Sequence[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The harness as a child; on any exception, SIGTERM (it writes a partial result), then kill."""
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def sample_until_exit(proc: subprocess.Popen[bytes], every_s: float) -> list[Sample]:
    """One sample of the harness process every `every_s` seconds while it lives."""
    harness = psutil.Process(proc.pid)
    start = time.monotonic()
    samples: list[Sample] = []
    next_at = start
    while proc.poll() is None:
        try:
            with harness.oneshot():
                samples.append(
                    Sample(
                        time.monotonic() - start,
                        harness.memory_info().rss,
                        harness.num_threads(),
                        harness.num_fds(),
                    )
                )
        except psutil.NoSuchProcess:
            break
        next_at += every_s
        time.sleep(max(0.0, next_at - time.monotonic()))
    return samples


def slope_mib_per_10min(samples: Sequence[Sample]) -> float:
    """Least-squares slope of RSS against time, in MiB per 600 s."""
    if len(samples) < 2:
        return math.nan
    ts = [s.t_s for s in samples]
    ys = [s.rss_bytes / MIB for s in samples]
    mt, my = sum(ts) / len(ts), sum(ys) / len(ys)
    sxx = sum((t - mt) ** 2 for t in ts)
    sxy = sum((t - mt) * (y - my) for t, y in zip(ts, ys, strict=True))
    return 600.0 * sxy / sxx if sxx else math.nan


def at(samples: Sequence[Sample], t_s: float) -> Sample:
    """The first sample at or after `t_s` (the last one if none)."""
    return next((s for s in samples if s.t_s >= t_s), samples[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--allocator", default="glibc")
    parser.add_argument("--batch-seconds", type=float, default=8.5, help="one batch + pause")
    parser.add_argument("--every", type=float, default=1.0, help="seconds between samples")
    args = parser.parse_args()

    batches = max(1, round((args.minutes * 60 - FIXED_S) / args.batch_seconds))
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        cmd = command(args.allocator, batches, tmp / "results")
        print("harness: " + " ".join(cmd[1:]))
        print(f"{batches} batches, aiming at {args.minutes:g} min; sampling every {args.every:g} s")
        with running(cmd, tmp / "run.log") as proc:
            samples = sample_until_exit(proc, args.every)
            code = proc.wait()
        log_tail = (tmp / "run.log").read_text(errors="replace").splitlines()[-12:]
        found = result_files.load_all([tmp / "results"]) if (tmp / "results").exists() else []
    if not samples:
        raise SystemExit("the harness exited before the first sample")
    rss = [s.rss_bytes for s in samples]
    peak = max(samples, key=lambda s: s.rss_bytes)
    half = [s for s in samples if s.t_s >= samples[-1].t_s / 2]
    slope = slope_mib_per_10min(half)
    last = samples[-1]
    print(f"exit code {code}; {len(samples)} samples over {last.t_s / 60:.1f} min")
    rows = (
        ("launch", samples[0]),
        ("start (10 s)", at(samples, 10.0)),
        ("after 1 min", at(samples, 60.0)),
        ("max", peak),
        ("end", last),
    )
    for name, s in rows:
        print(
            f"  {name:<12} {s.rss_bytes / MIB:7.1f} MiB at {s.t_s:7.1f} s "
            f"({s.threads} threads, {s.fds} fds)"
        )
    print(
        f"  second half ({len(half)} samples from {half[0].t_s:.0f} s): slope "
        f"{slope:+.3f} MiB per 10 min; range {min(s.rss_bytes for s in half) / MIB:.1f}-"
        f"{max(s.rss_bytes for s in half) / MIB:.1f} MiB"
    )
    for r in found:
        requests = sum(b.requests for b in r.load.stats)
        print(
            f"  result: status {r.status}, {len(r.load.stats)} batches, {requests} requests, "
            f"harness RSS at the end {(r.sampler.harness_rss_bytes or 0) / MIB:.1f} MiB, "
            f"ru_maxrss {(r.sampler.harness_peak_rss_bytes or 0) / MIB:.1f} MiB, "
            f"{len(r.samples['t_s'])} samples stored (decimation {r.sampler.decimation})"
        )
    if not found:
        print("  no result file; the harness's last lines:\n    " + "\n    ".join(log_tail))
    # The harness builds and writes its result after the last 1 s sample: the result's own
    # figures (RSS and ru_maxrss, read while building it) can be the true peak.
    written = [
        int(v or 0)
        for r in found
        for v in (r.sampler.harness_rss_bytes, r.sampler.harness_peak_rss_bytes)
    ]
    top = max([*rss, *written])
    below = top < LIMIT_BYTES
    flat = abs(slope) < FLAT_MIB_PER_10MIN
    print(
        f"below 150 MB: {'yes' if below else 'NO'} (max {top / 1e6:.1f} MB, sampled or in the "
        "result); "
        f"flat (|slope| < {FLAT_MIB_PER_10MIN:g} MiB per 10 min): {'yes' if flat else 'NO'}"
    )


if __name__ == "__main__":
    main()

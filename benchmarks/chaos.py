"""Chaos: does an experiment survive its processes being killed at random, and a full disk?

Runs a small experiment (2 allocators × 2 repeats, the tiny body, two short batches, Locust as a
master with one worker) with `sandbox experiment` (the console script beside this Python), its
results on a small tmpfs when this process may mount one (else in a temporary folder, and the
disk-full fault is skipped, saying so). While it runs, at a random moment of each attempt, it
injects the next fault of a shuffled list: SIGKILL of the harness, of the server, of Locust's
master or of its worker, or filling the disk (once). Whenever the harness exits with runs left
to do (killed, or having finished with some runs incomplete) it is started again with
`--resume DIR`, until every planned run is done, or `--max-attempts`.

After every attempt it checks:
- orphans: every process the harness started (its descendants, recorded every 20 ms, and any
  process carrying its SANDBOX_HARNESS token) must be gone 2 s after the harness exits;
- corrupt files: every result file under the results folder and the fallback folder, and the
  manifest, must load.

It prints each attempt (fault, moment, exit code, orphans, corrupt files), then runs completed,
orphan processes seen and corrupt files over the whole experiment. Target: every run done,
0 orphans, 0 corrupt files.

    .venv/bin/python benchmarks/chaos.py [--seed 1] [--max-attempts 14] [--keep DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from sandbox.allocators import registry as allocators
from sandbox.errors import SandboxError
from sandbox.experiment import manifest
from sandbox.results import files as result_files
from sandbox.system import lifeline, liveness

REPO = Path(__file__).resolve().parents[1]
FAULTS = ("harness", "server", "locust", "worker", "disk-full", "harness")
"""Injected in a shuffled order, one per attempt; the harness twice (the fault that matters)."""
MARKERS = {"server": "sandbox.server", "locust": "--master", "worker": "--worker"}
"""How each killable child is told from the others: a word of its command line."""
ATTEMPT_TIMEOUT_S = 300.0
TMPFS_BYTES = 64 * 2**20


def experiment_text(second: str) -> str:
    return f"""\
name: chaos
description: a small experiment killed at random (benchmarks/chaos.py)
allocators: [glibc, {second}]
repeats: 2
baseline: glibc
iterations: 150
run:
  tags: [tiny]
  batches: 2
  pause_s: 0.5
  baseline_s: 0.5
  idle_s: 1
  trim_s: 0
  load_workers: 1
server:
  sleep_ms: 50
"""


@dataclass
class Watcher:
    """Records every descendant of the harness while it runs (pid -> process, command line)."""

    harness: subprocess.Popen[bytes]
    seen: dict[int, psutil.Process] = field(default_factory=dict)
    cmdlines: dict[int, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._record, daemon=True)
        self.thread.start()

    def _record(self) -> None:
        while self.harness.poll() is None:
            with contextlib.suppress(psutil.Error):
                for p in psutil.Process(self.harness.pid).children(recursive=True):
                    with self.lock:
                        self.seen.setdefault(p.pid, p)
                        with contextlib.suppress(psutil.Error):
                            self.cmdlines[p.pid] = p.cmdline()  # the last one: after exec
            time.sleep(0.02)

    def forget(self, pid: int) -> None:
        with self.lock:
            self.cmdlines.pop(pid, None)

    def find(self, marker: str) -> psutil.Process | None:
        """A running descendant with `marker` as one word of its command line."""
        with self.lock:
            found = [(pid, self.seen[pid]) for pid, line in self.cmdlines.items() if marker in line]
        return next((p for _, p in found if _running(p)), None)


def _running(p: psutil.Process) -> bool:
    with contextlib.suppress(psutil.Error):
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    return False


@dataclass
class Attempt:
    number: int
    faults: list[tuple[str, float, str]] = field(default_factory=list)
    """(fault, seconds into the attempt, what was done)."""
    exit_code: int | None = None
    orphans: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    took_s: float = 0.0
    hung: bool = False


@contextlib.contextmanager
def results_folder(work: Path) -> Iterator[tuple[Path, bool]]:
    """A folder for the results: a small tmpfs if we may mount one (True), else a plain one."""
    folder = work / "results"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_BYTES}", "tmpfs", str(folder)],
        capture_output=True,
        check=False,
    )
    try:
        yield folder, mounted.returncode == 0
    finally:
        if mounted.returncode == 0:
            subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path) -> Path:
    """Fill the file system of `folder` to the last byte; the filler, to remove later."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as fh, contextlib.suppress(OSError):
        while True:
            fh.write(b"\0" * 65536)
    with open(filler, "ab", buffering=0) as fh, contextlib.suppress(OSError):
        while True:
            fh.write(b"\0" * 512)
    return filler


def check_files(results_dir: Path, fallback: Path) -> list[str]:
    """Every result file and manifest that does not load, with why."""
    bad = []
    for root in (results_dir, fallback):
        if not root.exists():
            continue
        for path in sorted(root.rglob("*.json*")):
            if path.name.startswith(".") or path.name == "filler":
                continue
            try:
                if path.name == manifest.NAME:
                    manifest.load(path.parent)
                elif path.name.startswith("comparison"):
                    continue  # written by the report, not a run
                else:
                    result_files.load(path)
            except SandboxError as exc:
                bad.append(str(exc))
    return bad


def orphans(watcher: Watcher, token: str) -> list[str]:
    """Descendants (or token carriers) still running 2 s after the harness exited; killed."""
    time.sleep(2.0)
    with watcher.lock:
        seen = dict(watcher.seen)
        lines = dict(watcher.cmdlines)
    left = {pid: p for pid, p in seen.items() if _running(p)}
    for pid in lifeline.tagged(token):
        with contextlib.suppress(psutil.Error):
            left.setdefault(pid, psutil.Process(pid))
    out = []
    for pid, p in left.items():
        out.append(f"{pid} {' '.join(lines.get(pid, []))[:100]}")
        with contextlib.suppress(psutil.Error):
            p.kill()
    return out


def inject(
    fault: str, harness: subprocess.Popen[bytes], watcher: Watcher, rng: random.Random, disk: Path
) -> tuple[float | None, str, Path | None]:
    """Wait for a random moment of this attempt and inject `fault`: (seconds waited, what was
    done, the filler file); (None, ...) when the harness ended first."""
    t0 = time.monotonic()
    if fault in ("harness", "disk-full"):
        moment = rng.uniform(2.0, 15.0)
        while time.monotonic() - t0 < moment:
            if harness.poll() is not None:
                return None, "the harness exited first", None
            time.sleep(0.05)
        if fault == "harness":
            harness.send_signal(signal.SIGKILL)
            return time.monotonic() - t0, f"SIGKILL harness (pid {harness.pid})", None
        return time.monotonic() - t0, f"filled {disk}", fill(disk)
    marker = MARKERS[fault]
    while harness.poll() is None:  # the next such process, a random moment into its life
        target = watcher.find(marker)
        if target is None:
            time.sleep(0.05)
            continue
        time.sleep(rng.uniform(0.1, 1.5))
        with contextlib.suppress(psutil.Error):
            if _running(target):
                target.send_signal(signal.SIGKILL)
                return time.monotonic() - t0, f"SIGKILL {fault} (pid {target.pid})", None
        watcher.forget(target.pid)  # it ended before its moment: wait for the next one
    return None, "the harness exited first", None


def attempt(
    number: int,
    command: list[str],
    faults: list[str],
    rng: random.Random,
    work: Path,
    disk: Path,
) -> Attempt:
    """One harness, from start to exit: the faults of `faults` injected one after another
    while it runs (those injected are taken off the list)."""
    record = Attempt(number)
    started = time.monotonic()
    with open(work / f"attempt-{number}.log", "wb") as log:
        harness = subprocess.Popen(
            command,
            cwd=REPO,
            env={**os.environ, "TMPDIR": str(work / "tmp")},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    ticks = None
    while ticks is None and harness.poll() is None:
        ticks = liveness.start_ticks(harness.pid)
    token = f"{harness.pid}:{ticks}"
    watcher = Watcher(harness)
    fillers: list[Path] = []
    while faults and harness.poll() is None:
        at, note, filler = inject(faults[0], harness, watcher, rng, disk)
        if at is None:
            break  # the harness ended first: the fault waits for the next attempt
        record.faults.append((faults.pop(0), time.monotonic() - started, note))
        fillers += [filler] if filler else []
    try:
        record.exit_code = harness.wait(timeout=ATTEMPT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        record.hung = True
        harness.kill()
        record.exit_code = harness.wait()
    watcher.thread.join(timeout=5)
    for filler in fillers:
        filler.unlink()
    record.orphans = orphans(watcher, token)
    record.corrupt = check_files(disk, work / "tmp" / "sandbox-results")
    record.took_s = time.monotonic() - started
    return record


def experiment_folder(results_dir: Path) -> Path | None:
    found = sorted(p for p in results_dir.glob("chaos-*") if (p / manifest.NAME).exists())
    return found[-1] if found else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-attempts", type=int, default=14)
    parser.add_argument("--keep", type=Path, help="Copy the experiment's folder here at the end.")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    jemalloc = allocators.BUILTIN["jemalloc"]
    second = "jemalloc" if allocators.find_library(jemalloc.library or "") else "glibc-arena2"
    sandbox = str(Path(sys.executable).parent / "sandbox")
    faults = list(FAULTS)
    rng.shuffle(faults)
    with tempfile.TemporaryDirectory(prefix="sandbox-chaos-") as tmp:
        work = Path(tmp)
        (work / "tmp").mkdir()
        spec = work / "chaos.yml"
        spec.write_text(experiment_text(second))
        with results_folder(work) as (disk, tmpfs):
            if not tmpfs:
                faults.remove("disk-full")
                print("disk-full fault skipped: cannot mount a tmpfs here (not root?)")
            else:
                print(f"results on a {TMPFS_BYTES // 2**20} MiB tmpfs at {disk}")
            print(f"experiment: glibc, {second} × 2 repeats; faults in order: {', '.join(faults)}")
            attempts: list[Attempt] = []
            folder: Path | None = None
            t0 = time.monotonic()
            for number in range(1, args.max_attempts + 1):
                folder = experiment_folder(disk)
                if folder is None:
                    command = [sandbox, "experiment", str(spec), "--results-dir", str(disk)]
                else:
                    command = [sandbox, "experiment", "--resume", str(folder)]
                a = attempt(number, command, faults, rng, work, disk)
                attempts.append(a)
                said = "; ".join(f"{note} at {at:.1f} s" for _, at, note in a.faults)
                print(
                    f"attempt {number:2d} {'resume' if folder else 'start '}  "
                    f"exit {a.exit_code}{' (hung)' if a.hung else ''}  {a.took_s:5.1f} s  "
                    f"orphans {len(a.orphans)}  corrupt {len(a.corrupt)}  "
                    f"faults: {said or 'none'}"
                )
                for line in a.orphans + a.corrupt:
                    print(f"    {line}")
                folder = experiment_folder(disk)
                if (
                    a.exit_code == 0
                    and folder is not None
                    and all(e.done for e in manifest.load(folder).runs)
                ):
                    break
            total_s = time.monotonic() - t0
            report(folder, attempts, total_s, faults)
            if args.keep and folder is not None:
                subprocess.run(["cp", "-r", str(folder), str(args.keep)], check=False)


def report(folder: Path | None, attempts: list[Attempt], total_s: float, left: list[str]) -> None:
    m = manifest.load(folder) if folder is not None else None
    runs = list(m.runs) if m else []
    done = [e for e in runs if e.done]
    statuses = Counter(e.status for e in runs)
    earlier = Counter(a.status for e in runs for a in e.superseded)
    injected = Counter(fault for a in attempts for fault, _, _ in a.faults)
    print()
    print(f"runs completed:         {len(done)} of {len(runs)} {dict(statuses)}")
    print(f"earlier attempts:       {sum(earlier.values())} {dict(earlier)}")
    print(f"faults injected:        {sum(injected.values())} {dict(injected)}")
    if left:
        print(f"faults not injected:    {', '.join(left)} (the experiment finished first)")
    print(f"harness attempts:       {len(attempts)} in {total_s:.0f} s")
    print(f"orphan processes seen:  {sum(len(a.orphans) for a in attempts)}")
    print(f"corrupt files:          {sum(len(a.corrupt) for a in attempts)}")


if __name__ == "__main__":
    main()

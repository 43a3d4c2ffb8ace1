"""Does `sandbox inspect` harm what it looks at? Targets looked at again and again, then counted.

Three targets, each under every allocator given:

- sleep    asleep in system calls (the preflight's sleep canary, `sandbox/inspector/canary.py`):
           a restart code a debugger leaks into it surfaces as an OSError it reports
- busy     floating-point, vector and SHA-256 work that checks every result against one computed
           before any look (the busy canary): wrong results are counted
- service  the stair-stepper (`python -m sandbox.server`, SLEEP_MS 20) under Locust load
           (`plans/locustfile.py --tags tiny,small`, 8 users): failed requests are counted

Each is looked at until `--looks` looks were taken, cycling through a plain look, `--trim` and a
`--watch` (three looks 0.2 s apart): `inspection.take` and `watch.watch`, the code behind
`sandbox inspect`. With the guard (default) every look goes through the debugger's checks and
the preflight, as `sandbox inspect` does; `--unguarded` calls gdb directly, the procedure before
the preflight existed (for the "before" figures with `--gdb /usr/bin/gdb`). A target that dies is
counted and started again.

Prints per target and allocator: looks taken, looks refused, targets killed, wrong results,
unexpected system call errors, failed requests (of how many), the stop time (median, max) and
the time a plain or `--trim` look takes (median, from the call to its answer). `--via agent`
starts every target with the sandbox's agent and looks through its socket: no debugger, nothing
stopped.

    .venv/bin/python benchmarks/inspect_harm.py [--looks 100] [--allocator glibc --allocator
        jemalloc] [--target sleep --target busy --target service] [--gdb PATH] [--unguarded]
        [--via agent]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.allocators import registry as allocators
from sandbox.config.server_settings import ServerSettings
from sandbox.errors import InspectError, TargetExitedError
from sandbox.inspector import canary, gdb_session, inspection, preflight
from sandbox.inspector import watch as watching
from sandbox.inspector.snapshot import Snapshot
from sandbox.measure.inject import agent_environ, agent_folder
from sandbox.measure.launch import build_environ, launch

REPO = Path(__file__).resolve().parents[1]
MODES = ("plain", "trim", "watch")
WATCH_S, WATCH_INTERVAL_S = 0.4, 0.2
PAUSE_S = 0.1


@dataclass
class Tally:
    target: str
    allocator: str
    looks: int = 0
    refused: int = 0
    failed_looks: int = 0
    killed: int = 0
    wrong: int = 0
    syscall_errors: int = 0
    requests: int = 0
    failed_requests: int = 0
    iterations: int = 0
    stops_ms: list[float] = field(default_factory=list)
    looks_ms: list[float] = field(default_factory=list)
    first_problem: str | None = None

    def note(self, problem: str) -> None:
        if self.first_problem is None:
            self.first_problem = problem[:300]

    def row(self) -> str:
        stop = (
            f"{statistics.median(self.stops_ms):6.1f} {max(self.stops_ms):6.1f}"
            if self.stops_ms
            else f"{'-':>6} {'-':>6}"
        )
        requests = f"{self.failed_requests}/{self.requests}" if self.target == "service" else "-"
        look = f"{statistics.median(self.looks_ms):7.1f}" if self.looks_ms else f"{'-':>7}"
        return (
            f"{self.target:<8} {self.allocator:<9} {self.looks:>5} {self.refused:>7} "
            f"{self.failed_looks:>6} {self.killed:>6} {self.wrong:>5} {self.syscall_errors:>7} "
            f"{requests:>11} {stop} {look}"
        )


HEADER = (
    f"{'target':<8} {'allocator':<9} {'looks':>5} {'refused':>7} {'failed':>6} {'killed':>6} "
    f"{'wrong':>5} {'syscall':>7} {'failed req':>11} {'stop ms':>6} {'max':>6} {'look ms':>7}"
)


class Canary:
    """A canary target under an allocator; restarted when it dies, its reports summed."""

    def __init__(self, kind: str, env: dict[str, str]) -> None:
        self.kind = kind
        self.env = env
        self.proc = self._start()

    def _start(self) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, canary.__file__, self.kind],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.env,
            text=True,
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        return proc

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def restart(self, tally: Tally) -> None:
        _, err = self.proc.communicate(timeout=30)
        tally.killed += 1
        tally.note(f"{self.kind} target died ({self.proc.returncode}): {err.strip()[-200:]}")
        self.proc = self._start()

    def finish(self, tally: Tally) -> None:
        out, err = self.proc.communicate("", timeout=30)
        if self.proc.returncode != 0:
            tally.killed += 1
            tally.note(f"{self.kind} target ended {self.proc.returncode}: {err.strip()[-200:]}")
            return
        report = json.loads(out.strip().splitlines()[-1])
        tally.wrong += int(report["wrong"])
        tally.iterations += int(report["iterations"])
        errors = [e for e in report["errors"] if not e.startswith("wrong result")]
        tally.syscall_errors += len(errors)
        for problem in report["errors"]:
            tally.note(problem)


class Service:
    """The stair-stepper under an allocator with Locust driving it."""

    def __init__(self, env: dict[str, str], folder: Path) -> None:
        self.env = env
        self.folder = folder
        self.runs = 0
        self._stack: list[Callable[[], None]] = []
        self._start()

    def _start(self) -> None:
        settings = ServerSettings(sleep_ms=20, threads=8).to_environ()
        context = launch(build_environ(settings, self.env))
        self.server = context.__enter__()
        self._close_server = functools.partial(context.__exit__, None, None, None)
        self.runs += 1
        self.json_prefix = self.folder / f"locust-{self.runs}"
        self.locust = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "locust",
                "-f",
                str(REPO / "plans" / "locustfile.py"),
                "--headless",
                "--host",
                self.server.url,
                "--tags",
                "tiny",
                "small",
                "--users",
                "8",
                "--spawn-rate",
                "8",
                "--run-time",
                "3600s",
                "--json-file",
                str(self.json_prefix),
                "--only-summary",
                "--loglevel",
                "WARNING",
                "--exit-code-on-error",
                "0",
            ],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "MALLOC_CONF")},
        )
        time.sleep(3.0)  # users spawned, requests flowing

    @property
    def pid(self) -> int:
        return self.server.proc.pid

    def alive(self) -> bool:
        return self.server.proc.poll() is None

    def _stop(self, tally: Tally) -> None:
        self.locust.send_signal(signal.SIGTERM)
        self.locust.wait(timeout=60)
        data = json.loads(Path(f"{self.json_prefix}.json").read_text())
        tally.requests += sum(int(e["num_requests"]) for e in data)
        tally.failed_requests += sum(int(e["num_failures"]) for e in data)
        self._close_server()

    def restart(self, tally: Tally) -> None:
        tally.killed += 1
        tally.note(f"the service died ({self.server.proc.returncode})")
        self._stop(tally)
        self._start()

    def finish(self, tally: Tally) -> None:
        if not self.alive():
            tally.killed += 1
        self._stop(tally)


Target = Canary | Service


def looker(gdb: str | None, unguarded: bool, via: str) -> Callable[..., Snapshot]:
    """What takes one look: `sandbox inspect`'s own code, or (unguarded) gdb called directly."""
    if via == "agent":
        return functools.partial(inspection.take, via="agent")
    if unguarded:
        assert gdb is not None, "--unguarded needs --gdb"
        session = functools.partial(gdb_session.run, gdb=gdb)
        return functools.partial(inspection.take, session=session, via="gdb")
    return functools.partial(inspection.take, via="gdb")


def one_round(mode: str, pid: int, take: Callable[..., Snapshot]) -> list[Snapshot]:
    if mode == "watch":
        found = watching.watch(pid, WATCH_S, WATCH_INTERVAL_S, take=take)
        return [s.snapshot for s in found.samples]
    return [take(pid, trim=mode == "trim")]


def measure(target: Target, tally: Tally, looks: int, take: Callable[..., Snapshot]) -> None:
    round_number = 0
    while tally.looks + tally.refused + tally.failed_looks < looks:
        mode = MODES[round_number % len(MODES)]
        round_number += 1
        started = time.perf_counter()
        try:
            snapshots = one_round(mode, target.pid, take)
        except TargetExitedError as exc:
            tally.failed_looks += 1
            tally.note(str(exc))
        except InspectError as exc:
            text = str(exc)
            if "not attaching" in text or "cannot restore" in text:
                tally.refused += 1
            else:
                tally.failed_looks += 1
            tally.note(text)
        else:
            tally.looks += len(snapshots)
            if mode != "watch":  # a watch's time is mostly its interval
                tally.looks_ms.append((time.perf_counter() - started) * 1000)
            tally.stops_ms += [s.stopped_ms for s in snapshots if s.stopped_ms is not None]
        time.sleep(PAUSE_S)
        if not target.alive():
            target.restart(tally)


@contextmanager
def target_of(kind: str, env: dict[str, str], folder: Path) -> Iterator[Target]:
    made: Target = Service(env, folder) if kind == "service" else Canary(kind, env)
    try:
        yield made
    finally:
        if isinstance(made, Canary) and made.alive():
            made.proc.kill()
            made.proc.wait()
        if isinstance(made, Service) and made.alive():
            made.server.proc.kill()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--looks", type=int, default=100)
    parser.add_argument("--allocator", action="append")
    parser.add_argument("--target", action="append", choices=["sleep", "busy", "service"])
    parser.add_argument("--gdb", help="the gdb to use (default: as sandbox inspect chooses)")
    parser.add_argument("--unguarded", action="store_true")
    parser.add_argument(
        "--via",
        choices=["gdb", "agent"],
        default="gdb",
        help="agent: every target started with the sandbox's agent, looked at through its socket",
    )
    args = parser.parse_args(argv)
    if args.gdb:
        os.environ["SANDBOX_GDB"] = args.gdb
    take = looker(args.gdb, args.unguarded, args.via)
    if args.via == "agent":
        print("route: the agent's socket (no debugger)")
    else:
        print(f"gdb: {args.gdb or 'chosen by sandbox inspect'}; guard: {not args.unguarded}")
    print(f"preflight cache: {preflight.cache_path()}")
    print(HEADER, flush=True)
    tallies = []
    with tempfile.TemporaryDirectory(prefix="inspect-harm-") as tmp, agent_folder() as agents:
        for name in args.allocator or ["glibc", "jemalloc"]:
            resolved = allocators.resolve(name)
            base = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "MALLOC_CONF")}
            env = {**base, **resolved.environ()}
            if args.via == "agent":
                env = agent_environ(agents, env)
            for kind in args.target or ["sleep", "busy", "service"]:
                tally = Tally(kind, name)
                with target_of(kind, env, Path(tmp)) as made:
                    measure(made, tally, args.looks, take)
                    made.finish(tally)
                tallies.append(tally)
                print(tally.row(), flush=True)
    print()
    for tally in tallies:
        if tally.first_problem:
            print(f"{tally.target}/{tally.allocator}: first problem: {tally.first_problem}")
    all_stops = [ms for t in tallies for ms in t.stops_ms]
    totals = (
        sum(t.killed for t in tallies),
        sum(t.wrong for t in tallies),
        sum(t.failed_requests for t in tallies),
        sum(t.syscall_errors for t in tallies),
    )
    print(
        f"in all: {sum(t.looks for t in tallies)} looks, {sum(t.refused for t in tallies)} "
        f"refused; killed {totals[0]}, wrong results {totals[1]}, failed requests {totals[2]}, "
        f"unexpected system call errors {totals[3]}; stop "
        + (
            f"median {statistics.median(all_stops):.1f} ms, max {max(all_stops):.1f} ms"
            if all_stops
            else "none (no look attached)"
        )
    )


if __name__ == "__main__":
    main()

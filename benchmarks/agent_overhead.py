"""The agent's overhead on a user's service under load: examples/cache_service with and without
the agent, the same load, interleaved.

Two designs. `paired` (the default, the tighter one): two copies of the service run side by
side under glibc, one with the agent, one without, and a closed-loop client (`--users` threads,
one keep-alive connection each, the locustfile's mix of PUT and GET over 2000 keys) loads one
copy at a time in `--slot` second slots, in the order A B B A, `--pairs` times; meanwhile the
agent copy's agents are asked for a memory snapshot once a second, as a run's probe asks them.
Slots close in time share the machine's state, so slow drift on a shared machine cancels. Per
slot: throughput, p95 latency and the server's CPU time per request (all its processes), each
with / without as a ratio of geometric means with a 95 % Welch interval over the slots
(`sandbox.analysis.stats.log_ratio`). Then the agents' own CPU time, read from /proc for their
threads, against the server's CPU time under load: the most throughput a CPU-bound server can
lose to them. And the RSS of each process of both copies at the start (after the first
snapshot) and at the end (the items the copies hold then differ in size: a few MiB either way).
Services: uvicorn (one process) and gunicorn's UvicornWorker -w 2 (an arbiter and two forked
workers). `--control` runs the same with no agent in either copy: the design's resolution.

`runs`: every run is a real `sandbox run` of the service (through `--app`, and through gunicorn
-w 2), under glibc: a soak of `--users` closed-loop users for `--duration` s, the probe reading
each process's agent once a second as in any run. Without the agent the harness is started with
SANDBOX_NO_AGENT=1 (meant only for this measurement). The order alternates (with, without,
without, with, ...). From the results: throughput (the batch's req/s) and p95 latency, with /
without as above, and per process the RSS the agent adds at the end of the 3 s baseline. This
one includes the whole harness, but run-to-run spread on a shared 2-core machine (±15 %) is far
above the 1 % to be resolved. Targets: throughput within 1 %, under 3 MiB per process.

    .venv/bin/python benchmarks/agent_overhead.py [--design paired] [--pairs 40] [--slot 2]
        [--users 4] [--target app --target gunicorn] [--control]
    .venv/bin/python benchmarks/agent_overhead.py --design runs [--repeats 4] [--duration 20]
        [--keep DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import random
import shutil
import statistics
import string
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

from sandbox.analysis.stats import Ratio, log_ratio
from sandbox.config.run_spec import Target
from sandbox.measure import inject
from sandbox.measure.agent_client import AgentClient, AgentError
from sandbox.measure.agents import NO_AGENT_ENV
from sandbox.measure.launch import ServerProcess, build_environ, launch
from sandbox.measure.sampler import ProcessTree
from sandbox.results import files as result_files
from sandbox.results.model import RunResult
from sandbox.units import MIB

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
COMMANDS = {
    "app": f"{sys.executable} -m uvicorn {APP} --host {{host}} --port {{port}}",
    "gunicorn": TARGETS["gunicorn"][1],
}
KEYS = 2000
"""A small key space: both copies soon hold every key, so their RSS at the end compares."""
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
    result = result_files.load(path)
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


@contextlib.contextmanager
def copy_of_service(target: str, agent_dir: Path | None) -> Iterator[ServerProcess]:
    """The service under glibc, with the agent when `agent_dir` is given."""
    env = build_environ({}, {})
    if agent_dir is not None:
        env = inject.agent_environ(agent_dir, env)
    served = Target(cmd=COMMANDS[target], ready_url="http://{host}:{port}/health", cwd=REPO)
    with launch(env, target=served, ready_timeout_s=60) as server:
        yield server


def processes(server: ServerProcess) -> dict[str, psutil.Process]:
    tree = ProcessTree(server.pid, refresh_s=0.0)
    return {tree.label(p): p for p in tree.processes()}


def settle(server: ServerProcess, count: int, timeout_s: float = 30.0) -> None:
    """Wait until the server has `count` processes, each past its start-up."""
    deadline = time.monotonic() + timeout_s
    while len(processes(server)) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"{server.command}: not {count} processes in {timeout_s:g} s")
        time.sleep(0.1)
    time.sleep(1.0)


class Prober(threading.Thread):
    """A memory snapshot of each agent once a second, as a run's probe takes them."""

    def __init__(self, folder: Path, server: ServerProcess) -> None:
        super().__init__(daemon=True)
        self.client = AgentClient(folder, timeout_s=0.25)
        self.pids = [p.pid for p in processes(server).values()]
        self.stop = threading.Event()
        self.answered = 0
        self.missed = 0

    def snapshot_all(self) -> None:
        for pid in self.pids:
            try:
                answered = self.client.snapshot(pid) is not None
            except AgentError:
                answered = False
            self.answered += answered
            self.missed += not answered

    def run(self) -> None:
        while not self.stop.wait(1.0):
            self.snapshot_all()


BODIES = [
    json.dumps(
        {
            "name": "".join(random.choices(string.ascii_letters, k=12)),
            "values": [random.uniform(-1e6, 1e6) for _ in range(random.randint(200, 2000))],
        }
    ).encode()
    for _ in range(64)
]


def cpu_s(server: ServerProcess) -> float:
    """CPU seconds (user + system) used so far by every process of the server."""
    total = 0.0
    for p in processes(server).values():
        with contextlib.suppress(psutil.Error):
            times = p.cpu_times()
            total += times.user + times.system
    return total


@dataclass(frozen=True)
class Slot:
    rps: float
    p95_ms: float
    cpu_ms_per_request: float
    """The server's CPU time (all its processes) per request answered."""


def load_slot(server: ServerProcess, users: int, slot_s: float) -> Slot:
    """`users` closed-loop clients for `slot_s` seconds (half PUT, half GET, random keys, as the
    locustfile): requests per second, p95 latency, the server's CPU time per request."""
    latencies: list[list[float]] = [[] for _ in range(users)]
    failures = [0]
    end = time.monotonic() + slot_s

    def user(mine: list[float]) -> None:
        conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
        rng = random.Random()
        try:
            while time.monotonic() < end:
                key = f"/items/k{rng.randrange(KEYS)}"
                started = time.perf_counter()
                if rng.random() < 0.5:
                    body = BODIES[rng.randrange(len(BODIES))]
                    conn.request("POST", key, body, {"Content-Type": "application/json"})
                else:
                    conn.request("GET", key)
                response = conn.getresponse()
                response.read()
                mine.append((time.perf_counter() - started) * 1000)
                if response.status not in (200, 201, 404):
                    failures[0] += 1
        finally:
            conn.close()

    threads = [threading.Thread(target=user, args=(mine,)) for mine in latencies]
    cpu_before, started = cpu_s(server), time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took, cpu = time.monotonic() - started, cpu_s(server) - cpu_before
    if failures[0]:
        raise SystemExit(f"{failures[0]} failed requests to {server.url}")
    every = [v for mine in latencies for v in mine]
    return Slot(len(every) / took, p95(every), cpu * 1000 / len(every))


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[18]


def thread_cpu_s(pid: int) -> dict[int, float]:
    """CPU seconds of each thread of `pid`, by thread id."""
    return {t.id: t.user_time + t.system_time for t in psutil.Process(pid).threads()}


def find_agent_threads(
    client: AgentClient, server: ServerProcess, calls: int = 500
) -> dict[int, int]:
    """pid -> the thread id of its agent: the thread whose CPU time grows while the agent is
    asked `calls` snapshots in a row and nothing else happens."""
    found = {}
    for pid in (p.pid for p in processes(server).values()):
        before = thread_cpu_s(pid)
        for _ in range(calls):
            client.snapshot(pid)
        after = thread_cpu_s(pid)
        found[pid] = max(after, key=lambda tid: after[tid] - before.get(tid, 0.0))
    return found


def agent_cpu_s(threads: dict[int, int]) -> float:
    """CPU seconds used so far by the agents' threads together."""
    return sum(thread_cpu_s(pid).get(tid, 0.0) for pid, tid in threads.items())


def rss_mib(server: ServerProcess) -> dict[str, float]:
    return {label: p.memory_info().rss / MIB for label, p in sorted(processes(server).items())}


def paired(target: str, args: argparse.Namespace) -> None:
    """With `args.control`, the first copy has no agent either (an A/A comparison): how far
    apart two identical copies read under this design, on this machine, now."""
    count = 3 if target == "gunicorn" else 1
    with (
        inject.agent_folder() as folder,
        copy_of_service(target, None if args.control else folder) as with_agent,
        copy_of_service(target, None) as without,
    ):
        settle(with_agent, count)
        settle(without, count)
        prober = Prober(folder, with_agent)
        threads: dict[int, int] = {}
        if not args.control:
            prober.snapshot_all()  # the agent has loaded ctypes and found the allocator
            time.sleep(0.5)
        rss_start = {True: rss_mib(with_agent), False: rss_mib(without)}
        if not args.control:
            threads = find_agent_threads(prober.client, with_agent)
            prober.start()
        agent_cpu_before, run_started = agent_cpu_s(threads), time.monotonic()
        for server in (with_agent, without):  # warm up: connections, first items
            load_slot(server, args.users, 1.0)
        slots: dict[bool, list[Slot]] = {True: [], False: []}
        for i in range(args.pairs):
            for agent in (True, False) if i % 2 == 0 else (False, True):
                slots[agent].append(
                    load_slot(with_agent if agent else without, args.users, args.slot)
                )
        prober.stop.set()
        if prober.is_alive():
            prober.join()
        agent_cpu, run_s = agent_cpu_s(threads) - agent_cpu_before, time.monotonic() - run_started
        rss_end = {True: rss_mib(with_agent), False: rss_mib(without)}
    what = "A/A control: neither copy has the agent" if args.control else "glibc"
    print(f"\n{target} (paired slots of {args.slot:g} s, n={args.pairs} each, {what})")
    for name, unit in (("rps", "req/s"), ("p95_ms", "ms"), ("cpu_ms_per_request", "ms")):
        values = {agent: [getattr(s, name) for s in slots[agent]] for agent in (True, False)}
        r = log_ratio(values[True], values[False], name)
        print(
            f"  {name:<18} with / without {ratio_text(r)}   (median "
            f"{statistics.median(values[True]):.3f} {unit} with, "
            f"{statistics.median(values[False]):.3f} without)"
        )
    for moment, rss in (("start", rss_start), ("end", rss_end)):
        words = [
            f"{label} {rss[True][label] - rss[False][label]:+.2f} MiB (of {rss[False][label]:.1f})"
            for label in rss[False]
            if label in rss[True]
        ]
        print(f"  RSS added per process at the {moment}: {', '.join(words)}")
    if args.control:
        return
    print(f"  agent snapshots: {prober.answered} answered, {prober.missed} missed")
    # The agent's own cost, directly: its threads' CPU time, against the server's CPU time
    # under load (a CPU-bound server loses at most that share of its throughput).
    loaded_s = args.slot * len(slots[True])
    server_cpu_per_s = statistics.fmean(s.cpu_ms_per_request * s.rps / 1000 for s in slots[True])
    agent_per_s = agent_cpu / run_s
    print(
        f"  agent threads: {agent_cpu * 1000:.0f} ms of CPU in {run_s:.0f} s "
        f"({agent_cpu * 1000 / max(1, prober.answered):.2f} ms per snapshot), "
        f"{agent_per_s * 100:.3f} % of a core; the server used {server_cpu_per_s * 100:.0f} % "
        f"of a core under load: the agent's share {agent_per_s / server_cpu_per_s * 100:.3f} % "
        f"({loaded_s:.0f} s loaded)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--design", choices=["paired", "runs"], default="paired")
    parser.add_argument("--pairs", type=int, default=40)
    parser.add_argument("--slot", type=float, default=2.0)
    parser.add_argument(
        "--control", action="store_true", help="paired: neither copy has the agent (A/A)"
    )
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--users", type=int, default=4)
    parser.add_argument("--target", action="append", choices=sorted(TARGETS))
    parser.add_argument("--keep", type=Path, help="keep the result files under this folder")
    args = parser.parse_args()
    targets = args.target or ["app", "gunicorn"]
    started = time.monotonic()
    if args.design == "paired":
        for target in targets:
            paired(target, args)
        print(f"\n{time.monotonic() - started:.0f} s in all; load average {os.getloadavg()}")
        return
    folder = args.keep or Path(tempfile.mkdtemp(prefix="agent-overhead-"))
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

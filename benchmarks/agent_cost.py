"""Agent cost, roughly: what the injected agent adds to a process, and what one `memory` op takes.

For a bare `python -c` (waiting on stdin) and for examples/cache_service under uvicorn, started
`--repeats` times each without and with the agent (interleaved), prints the median RSS after
start-up, with the agent also after its first `memory` op (which loads ctypes and detects the
allocator), and the median start-up time of `python -c pass`. Then `--calls` `memory` ops on
the cache service's agent, after filling its cache: the median and 95th percentile of the
round trip (client side) and of the agent's own `took_ms`. Not the formal overhead benchmark
(throughput, p95 and CPU under load, with intervals): that is `benchmarks/agent_overhead.py`.

    .venv/bin/python benchmarks/agent_cost.py [--repeats 5] [--calls 200]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil

from sandbox.config.run_spec import Target
from sandbox.measure import inject
from sandbox.measure.agent_client import AgentClient
from sandbox.measure.launch import ServerProcess, build_environ, launch
from sandbox.system.loopback import OPENER
from sandbox.units import MIB

REPO = Path(__file__).resolve().parents[1]
WAIT = "import sys; print('ready', flush=True); sys.stdin.read()"
APP = "examples.cache_service.app:app"
APP_CMD = f"{sys.executable} -m uvicorn {APP} --host {{host}} --port {{port}}"


def environ(folder: Path | None) -> dict[str, str]:
    env = build_environ({}, {})
    return env if folder is None else inject.agent_environ(folder, env)


def wait_for_agent(client: AgentClient, pid: int) -> None:
    deadline = time.monotonic() + 10
    while client.hello(pid) is None:
        if time.monotonic() > deadline:
            raise SystemExit(f"no agent for pid {pid}")
        time.sleep(0.02)


def bare_rss(folder: Path | None) -> tuple[int, int | None]:
    """RSS of a waiting `python -c` after start-up; with the agent, also after one memory op."""
    proc = subprocess.Popen(
        [sys.executable, "-c", WAIT],
        env=environ(folder),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        proc.stdout.readline()
        time.sleep(0.3)
        started = psutil.Process(proc.pid).memory_info().rss
        after_op = None
        if folder is not None:
            client = AgentClient(folder)
            client.snapshot(proc.pid)
            time.sleep(0.1)
            after_op = psutil.Process(proc.pid).memory_info().rss
        return started, after_op
    finally:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def app(folder: Path | None) -> Iterator[ServerProcess]:
    target = Target(cmd=APP_CMD, ready_url="http://{host}:{port}/health", cwd=REPO)
    with launch(environ(folder), target=target) as server:
        yield server


def app_rss(folder: Path | None) -> tuple[int, int | None]:
    with app(folder) as server:
        time.sleep(0.5)
        started = psutil.Process(server.pid).memory_info().rss
        after_op = None
        if folder is not None:
            client = AgentClient(folder)
            wait_for_agent(client, server.pid)
            client.snapshot(server.pid)
            time.sleep(0.1)
            after_op = psutil.Process(server.pid).memory_info().rss
        return started, after_op


def startup_s(folder: Path | None) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], env=environ(folder), check=True)
    return time.perf_counter() - started


def fill(server: ServerProcess, items: int) -> None:
    body = b'{"name": "x", "values": [' + b", ".join(b"%d" % i for i in range(200)) + b"]}"
    for i in range(items):
        request = urllib.request.Request(
            f"{server.url}/items/k{i}",
            data=body,
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with OPENER.open(request, timeout=10):
            pass


def mib(value: float) -> str:
    return f"{value / MIB:.2f} MiB"


def median_pair(rows: list[tuple[int, int | None]]) -> tuple[float, float | None]:
    first = statistics.median(r[0] for r in rows)
    seconds = [r[1] for r in rows if r[1] is not None]
    return first, statistics.median(seconds) if seconds else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()

    with inject.agent_folder() as folder:
        for name, measure in (("python -c", bare_rss), ("cache_service", app_rss)):
            plain: list[tuple[int, int | None]] = []
            agent: list[tuple[int, int | None]] = []
            for _ in range(args.repeats):
                plain.append(measure(None))
                agent.append(measure(folder))
            p, _ = median_pair(plain)
            a, a_op = median_pair(agent)
            assert a_op is not None
            print(
                f"{name}: RSS without the agent {mib(p)}, with it {mib(a)} (+{mib(a - p)}), "
                f"after one memory op {mib(a_op)} (+{mib(a_op - p)}); n={args.repeats} each"
            )
        times: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(20):
            times[False].append(startup_s(None))
            times[True].append(startup_s(folder))
        plain_s, agent_s = statistics.median(times[False]), statistics.median(times[True])
        print(
            f"python -c pass: {plain_s * 1000:.1f} ms without, {agent_s * 1000:.1f} ms with "
            f"(+{(agent_s - plain_s) * 1000:.1f} ms); median of 20"
        )

        with app(folder) as server:
            client = AgentClient(folder)
            wait_for_agent(client, server.pid)
            fill(server, 2000)
            round_trips: list[float] = []
            took: list[float] = []
            for _ in range(args.calls):
                started = time.perf_counter()
                snap = client.snapshot(server.pid)
                round_trips.append((time.perf_counter() - started) * 1000)
                assert snap is not None
                took.append(snap.took_ms)
            last = client.snapshot(server.pid)
            assert last is not None
            blocks = last.python.allocated_blocks
            q = statistics.quantiles(round_trips, n=20)
            t = statistics.quantiles(took, n=20)
            print(
                f"memory op on cache_service ({blocks} Python blocks, "
                f"in use {mib(last.in_use_bytes or 0)}): round trip median "
                f"{statistics.median(round_trips):.3f} ms, p95 {q[18]:.3f} ms; inside the agent "
                f"median {statistics.median(took):.3f} ms, p95 {t[18]:.3f} ms; n={args.calls}"
            )


if __name__ == "__main__":
    main()

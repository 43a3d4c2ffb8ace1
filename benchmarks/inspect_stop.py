"""How long `sandbox inspect` stops a running service, per look.

Starts the stair-stepper (`python -m sandbox.server`, SLEEP_MS 0, threadpool handler, 4 threads)
under each allocator given, lets a client thread send GET /stats back to back (one request at a
time, timing each), and takes `--looks` snapshots through the real gdb session (`inspection.take`,
as `sandbox inspect PID` does), `--pause` seconds apart. A snapshot's `stopped_ms` is timed
inside gdb from just before `attach` to just after `detach`: an upper bound on how long the
service's threads were held. Prints per allocator the median and maximum of stopped_ms and of
its attach part, the median of each step (phases_ms), and the client's request latencies
(median, p99, max) with no look under way and overlapping a look.

    .venv/bin/python benchmarks/inspect_stop.py [--looks 20] [--pause 0.5] [--allocator glibc
        --allocator jemalloc]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections.abc import Sequence

from sandbox.allocators import registry as allocators
from sandbox.config.server_settings import ServerSettings
from sandbox.inspector import inspection
from sandbox.measure.launch import ServerProcess, build_environ, launch
from sandbox.system.loopback import OPENER


class Client(threading.Thread):
    """GET /stats back to back; each request's (start, end) in time.monotonic()."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = f"{url}/stats"
        self.spans: list[tuple[float, float]] = []
        self.failures = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            start = time.monotonic()
            try:
                with OPENER.open(self.url, timeout=10) as response:
                    response.read()
            except OSError:
                self.failures += 1
                continue
            self.spans.append((start, time.monotonic()))


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(server: ServerProcess, looks: int, pause_s: float) -> None:
    client = Client(server.url)
    client.start()
    time.sleep(1.0)
    stopped: list[float] = []
    attach: list[float] = []
    windows: list[tuple[float, float]] = []
    phases: dict[str, list[float]] = {}
    for _ in range(looks):
        begin = time.monotonic()
        snapshot = inspection.take(server.proc.pid)
        windows.append((begin, time.monotonic()))
        assert snapshot.stopped_ms is not None and snapshot.attach_ms is not None
        stopped.append(snapshot.stopped_ms)
        attach.append(snapshot.attach_ms)
        for phase, ms in snapshot.phases_ms.items():
            phases.setdefault(phase, []).append(ms)
        time.sleep(pause_s)
    client.stop.set()
    client.join()
    overlapping: list[float] = []
    clear: list[float] = []
    for start, end in client.spans:
        hit = any(start < w_end and end > w_start for w_start, w_end in windows)
        (overlapping if hit else clear).append((end - start) * 1000)
    print(
        f"  stopped_ms: median {statistics.median(stopped):.0f}, max {max(stopped):.0f} "
        f"(n {len(stopped)}); of which attach: median {statistics.median(attach):.0f}, "
        f"max {max(attach):.0f}"
    )
    steps = ", ".join(f"{k} {statistics.median(v):.1f}" for k, v in phases.items())
    print(f"  median ms per step: {steps}")
    for label, values in (("no look under way", clear), ("overlapping a look", overlapping)):
        if values:
            print(
                f"  GET /stats {label}: n {len(values)}, median {statistics.median(values):.1f} "
                f"ms, p99 {percentile(values, 0.99):.1f} ms, max {max(values):.1f} ms"
            )
    print(f"  failed requests: {client.failures}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--looks", type=int, default=20)
    parser.add_argument("--pause", type=float, default=0.5)
    parser.add_argument("--allocator", action="append", dest="names")
    args = parser.parse_args()
    settings = ServerSettings(sleep_ms=0, threads=4).to_environ()
    for name in args.names or ["glibc", "jemalloc"]:
        resolved = allocators.resolve(name)
        with launch(build_environ(settings, resolved.environ())) as server:
            print(f"{name} (pid {server.proc.pid}):")
            measure(server, args.looks, args.pause)


if __name__ == "__main__":
    main()

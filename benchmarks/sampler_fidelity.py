"""Sampler fidelity: does the sampled peak RSS catch the kernel's own peak (VmHWM), and what does
sampling cost, at several rates?

For each rate, a fresh stair-stepper (glibc) takes one batch of the fragmenting load (all four
bodies, 32 users, SLEEP_MS 450) while an RssSampler polls it; afterwards the script reads VmHWM
and the sampler thread's own CPU time (psutil, per thread). Prints a table; writes nothing.

    .venv/bin/python benchmarks/sampler_fidelity.py [--rates 5 10 20 50] [--iterations 20]

Targets (issue 7): sampled peak >= 98 % of VmHWM at the default 10 Hz; sampler CPU < 2 %.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import psutil

from sandbox.allocators import registry as allocators
from sandbox.config.server_settings import ServerSettings
from sandbox.config.settings import REPO_ROOT
from sandbox.load import driver
from sandbox.load.models import LoadModel
from sandbox.load.spec import LoadSpec
from sandbox.measure.launch import build_environ, launch
from sandbox.measure.sampler import RssSampler, read_vmhwm
from sandbox.units import MIB


def thread_cpu_s(native_id: int | None) -> float:
    """User + system CPU seconds of one thread of this process."""
    for t in psutil.Process().threads():
        if t.id == native_id:
            return float(t.user_time + t.system_time)
    return 0.0


def measure(rate_hz: float, iterations: int) -> tuple[float, float, float, int]:
    """One fresh server, one batch: (sampled peak MiB, VmHWM MiB, sampler CPU %, samples)."""
    settings = ServerSettings(handler="sync", sleep_ms=450)
    env = build_environ(settings.to_environ(), allocators.resolve("glibc").environ())
    with launch(env) as server, tempfile.TemporaryDirectory() as tmp:
        sampler = RssSampler(server.pid, 1.0 / rate_hz, time.monotonic())
        sampler.start()
        started = time.monotonic()
        load = LoadSpec(
            locustfile=REPO_ROOT / "plans" / "locustfile.py",
            tags=("tiny", "small", "medium", "large"),
            spawn_rate=32,
            iterations=iterations,
            timeout_s=600,
            model=LoadModel(users=32),
        )
        with driver.start(load, server.url, Path(tmp)) as locust:
            locust.proc.wait()
        time.sleep(1.0)
        cpu = thread_cpu_s(sampler.native_id)
        wall = time.monotonic() - started
        vmhwm = read_vmhwm(server.pid) or 0
        columns = sampler.stop()
    return sampler.peak_rss_bytes / MIB, vmhwm / MIB, 100.0 * cpu / wall, len(columns["t_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[5, 10, 20, 50])
    parser.add_argument("--iterations", type=int, default=20, help="per plan, one batch")
    args = parser.parse_args()
    print(
        f"{'rate':>6}  {'samples':>7}  {'sampled peak':>12}  {'VmHWM':>9}  {'peak/VmHWM':>10}  "
        f"{'sampler CPU':>11}"
    )
    for rate in args.rates:
        peak, hwm, cpu, n = measure(rate, args.iterations)
        print(
            f"{rate:>4g} Hz  {n:>7}  {peak:>8.1f} MiB  {hwm:>5.1f} MiB  {peak / hwm:>10.1%}  "
            f"{cpu:>10.2f}%"
        )


if __name__ == "__main__":
    main()

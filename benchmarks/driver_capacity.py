"""Driver capacity: how many requests a second can the load generator make, and is it or the
server the bottleneck?

One stair-stepper (glibc, tiny body, SLEEP_MS=0) takes the same closed-loop load from three
drivers in turn, each for `--seconds`:

- Locust, one process (`locust --headless -u USERS`);
- Locust's distributed mode, a master and two workers (`--master` / `--worker`);
- wrk (Debian's `wrk` package), 2 threads, USERS connections, a Lua script POSTing the body.

For each, it prints the request rate (the driver's own count), the failures, and the CPU the
server and the driver used (psutil, whole process trees): a server near 100 % of one core with
a driver well below its cores means the server is the bottleneck; a driver at its limit while
the server idles means the driver is.

    .venv/bin/python benchmarks/driver_capacity.py [--seconds 20] [--users 32] [--handler sync]
"""

from __future__ import annotations

import argparse
import csv
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from sandbox.allocators import registry as allocators
from sandbox.config.run_spec import Target
from sandbox.config.server_settings import ServerSettings
from sandbox.config.settings import REPO_ROOT
from sandbox.load.driver import locust_environ
from sandbox.measure.launch import ServerProcess, build_environ, launch
from sandbox.system.processes import free_port, stop_process

LOCUSTFILE = REPO_ROOT / "plans" / "locustfile.py"
BODY = REPO_ROOT / "plans" / "tiny.json"


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its live children."""
    total = 0.0
    try:
        root = psutil.Process(pid)
        for p in (root, *root.children(recursive=True)):
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
    except psutil.NoSuchProcess:
        pass
    return total


def locust_base(url: str, users: int, seconds: int, prefix: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--tags",
        "tiny",
        "--host",
        url,
        "--headless",
        "-u",
        str(users),
        "-r",
        str(users),
        "-t",
        f"{seconds}s",
        "--csv",
        str(prefix),
        "--only-summary",
        "--loglevel",
        "WARNING",
    ]


def read_locust(prefix: Path) -> tuple[int, int, float]:
    with open(f"{prefix}_stats.csv", newline="") as fh:
        row = next(r for r in csv.DictReader(fh) if r["Name"] == "Aggregated")
    return int(row["Request Count"]), int(row["Failure Count"]), float(row["Requests/s"])


Measured = tuple[int, int, float, float]  # requests, failures, req/s, driver CPU s


def run_locust(url: str, users: int, seconds: int, workers: int, tmp: Path) -> Measured:
    prefix = tmp / f"locust-{workers}"
    cmd = locust_base(url, users, seconds, prefix)
    procs: list[subprocess.Popen[bytes]] = []
    env = locust_environ()
    if workers:
        port = free_port()
        cmd += [
            "--master",
            "--master-bind-host",
            "127.0.0.1",
            "--master-bind-port",
            str(port),
            "--expect-workers",
            str(workers),
        ]
        worker_cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--worker"]
        worker_cmd += ["--master-host", "127.0.0.1", "--master-port", str(port)]
        worker_cmd += ["--loglevel", "WARNING"]
    master = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    procs.append(master)
    for _ in range(workers):
        procs.append(
            subprocess.Popen(
                worker_cmd,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
    try:
        cpu = _cpu_while(lambda: master.poll() is not None, [p.pid for p in procs])
    finally:
        for p in procs:
            stop_process(p, 15.0)
    requests, failures, rps = read_locust(prefix)
    return requests, failures, rps, cpu


def run_wrk(url: str, users: int, seconds: int, tmp: Path) -> Measured:
    script = tmp / "post.lua"
    body = BODY.read_text().replace("\\", "\\\\").replace("]]", "] ]")
    script.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = [[{body}]]\n"
    )
    out = tmp / "wrk.txt"
    with open(out, "wb") as fh:
        proc = subprocess.Popen(
            ["wrk", "-t2", f"-c{users}", f"-d{seconds}s", "-s", str(script), f"{url}/widgets"],
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            cpu = _cpu_while(lambda: proc.poll() is not None, [proc.pid])
        finally:
            stop_process(proc)
    text = out.read_text()
    m = re.search(r"(\d+) requests in", text)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    failures = int(errors.group(1)) if errors else 0
    if sock:
        failures += sum(int(g) for g in sock.groups())
    if not m or not rps:
        raise SystemExit(f"could not read wrk's output: {text[-400:]}")
    return int(m.group(1)), failures, float(rps.group(1)), cpu


def _cpu_while(done: Callable[[], bool], pids: list[int]) -> float:
    """CPU seconds the given process trees use until done() (sampled so children count)."""
    last = dict.fromkeys(pids, 0.0)
    while not done():
        for pid in pids:
            last[pid] = max(last[pid], tree_cpu_s(pid))
        time.sleep(0.25)
    return sum(last.values())


def measure(
    server: ServerProcess, name: str, go: Callable[[], Measured]
) -> tuple[str, Measured, float, float]:
    cpu0 = tree_cpu_s(server.pid)
    t0 = time.monotonic()
    measured = go()
    wall = time.monotonic() - t0
    return name, measured, (tree_cpu_s(server.pid) - cpu0) / wall, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--users", type=int, default=32)
    parser.add_argument("--handler", choices=("sync", "async"), default="sync")
    parser.add_argument("--server-workers", type=int, default=1, help="uvicorn processes")
    args = parser.parse_args()
    settings = ServerSettings(handler=args.handler, sleep_ms=0)
    env = build_environ(settings.to_environ(), allocators.resolve("glibc").environ())
    rows = []
    target = Target(workers=args.server_workers)
    with launch(env, target=target) as server, tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        url, users, secs = server.url, args.users, args.seconds
        rows.append(
            measure(server, "locust, 1 process", lambda: run_locust(url, users, secs, 0, tmp))
        )
        rows.append(
            measure(
                server, "locust, master + 2 workers", lambda: run_locust(url, users, secs, 2, tmp)
            )
        )
        rows.append(measure(server, "wrk -t2", lambda: run_wrk(url, users, secs, tmp)))
    print(
        f"server: glibc, handler {args.handler}, {args.server_workers} process(es), SLEEP_MS 0, "
        "tiny body; "
        f"{users} connections, {secs} s each; {psutil.cpu_count()} CPUs"
    )
    head = ("driver", "requests", "failures", "req/s", "server CPU", "driver CPU")
    print(f"{head[0]:<28} {head[1]:>9} {head[2]:>8} {head[3]:>8} {head[4]:>10} {head[5]:>10}")
    for name, (requests, failures, rps, driver_cpu), server_cpu, wall in rows:
        print(
            f"{name:<28} {requests:>9} {failures:>8} {rps:>8.1f} {server_cpu:>9.0%} "
            f"{driver_cpu / wall:>9.0%}"
        )


if __name__ == "__main__":
    main()

"""Load from other hosts, for real: `sandbox run` (its server and Locust master) in one network
namespace, a Locust worker in each of two more, joined by veth pairs to a bridge in the first.

Each namespace has addresses of its own (10.213.<n>.0/24, inside the namespaces only: nothing is
added to this machine's own network), so the workers are other hosts as far as the server, the
master and the kernel can tell. The workers run the command `sandbox run` prints for worker
machines. What proves every worker's requests arrived and were counted:

- the server's own count (its /stats, sampled into the result) equals the master's total (its
  --json-file, in the result), which equals what was asked, with no failure;
- each worker's link into the server's namespace carried at least the request bodies of its
  share (the drill shares the iterations out, 20 each), counted by the kernel on the server's
  side of that link.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

from sandbox.results import files as result_files
from tests.integration.harness import REPO, harness_env

pytestmark = pytest.mark.e2e

WORKERS = 2
ITERATIONS = 40  # of the tiny plan: 20 a worker
SERVER_PORT = 8080  # free for sure: the namespace is ours alone
MASTER_PORT = 5557
TINY_BODY_BYTES = (REPO / "plans" / "tiny.json").stat().st_size
LINK_OVERHEAD_BYTES = 200_000
"""More than a worker sends besides its bodies in a batch of a few seconds: HTTP and TCP headers,
acknowledgements, its statistics reports and heartbeats to the master."""
RUN_TIMEOUT_S = 90.0
_SERIAL = itertools.count()


@dataclass(frozen=True)
class Lab:
    """The namespaces: the server's host, and one per worker host, with their addresses."""

    server_ns: str
    server_ip: str
    worker_ns: tuple[str, ...]
    worker_links: tuple[str, ...]
    """Each worker's link, by the name of its end in the server's namespace."""

    def rx_bytes(self, link: str) -> int:
        """Bytes the server's namespace received on `link` (from that worker), as the kernel
        counts them."""
        shown = ip("-n", self.server_ns, "-s", "-j", "link", "show", "dev", link)
        return int(json.loads(shown)[0]["stats64"]["rx"]["bytes"])


def ip(*args: str) -> str:
    """`ip ARGS`; its output, or the test fails with what ip said."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    if done.returncode != 0:
        pytest.fail(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def add_namespace(name: str) -> None:
    """`ip netns add`; skipped (one line) where namespaces cannot be made, failed otherwise."""
    done = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if done.returncode == 0:
        return
    if "permission" in done.stderr.lower() or "not permitted" in done.stderr.lower():
        pytest.skip(f"network namespaces cannot be made here: {done.stderr.strip()}")
    pytest.fail(f"ip netns add {name}: {done.stderr.strip()}")


def delete_namespaces(names: list[str]) -> None:
    """Delete them (and with them their links); a leftover would name this run."""
    for name in names:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)


@pytest.fixture
def lab() -> Iterator[Lab]:
    """The server's namespace with a bridge, and one namespace per worker linked to it; every
    namespace is deleted on every exit path."""
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    if shutil.which("ip") is None:
        pytest.skip("no `ip` (iproute2) to make network namespaces")
    tag = f"{os.getpid()}-{next(_SERIAL)}"
    subnet = f"10.213.{os.getpid() % 250}"
    server_ns = f"sbx-srv-{tag}"
    worker_ns = tuple(f"sbx-w{i}-{tag}" for i in range(1, WORKERS + 1))
    made: list[str] = []
    try:
        for name in (server_ns, *worker_ns):
            add_namespace(name)
            made.append(name)
            ip("-n", name, "link", "set", "lo", "up")
        ip("-n", server_ns, "link", "add", "br0", "type", "bridge")
        ip("-n", server_ns, "addr", "add", f"{subnet}.1/24", "dev", "br0")
        ip("-n", server_ns, "link", "set", "br0", "up")
        links = []
        for i, name in enumerate(worker_ns, 1):
            link = f"vw{i}"
            ip(
                "-n",
                server_ns,
                "link",
                "add",
                link,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                name,
            )
            ip("-n", server_ns, "link", "set", link, "master", "br0", "up")
            ip("-n", name, "addr", "add", f"{subnet}.{10 + i}/24", "dev", "eth0")
            ip("-n", name, "link", "set", "eth0", "up")
            links.append(link)
        yield Lab(server_ns, f"{subnet}.1", worker_ns, tuple(links))
    finally:
        delete_namespaces(made)


class Processes:
    """Commands run in namespaces, each in a process group of its own, with its output in a
    file; every group still running is killed at the end."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.started: list[tuple[subprocess.Popen[bytes], IO[bytes]]] = []

    def start(self, namespace: str, command: list[str], log_name: str) -> subprocess.Popen[bytes]:
        log = open(self.folder / log_name, "wb")  # noqa: SIM115 (closed in stop_all)
        proc = subprocess.Popen(
            ["ip", "netns", "exec", namespace, *command],
            cwd=REPO,
            env=harness_env(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.started.append((proc, log))
        return proc

    def log(self, log_name: str) -> str:
        return (self.folder / log_name).read_text(errors="replace")

    def stop_all(self) -> None:
        for proc, log in self.started:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                if proc.poll() is not None:
                    break
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=10)
            log.close()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    started = Processes(tmp_path)
    try:
        yield started
    finally:
        started.stop_all()


def wait_for_worker_command(processes: Processes, run: subprocess.Popen[bytes]) -> list[str]:
    """The worker command `sandbox run` prints (its loop's body), as words to run here."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for line in processes.log("run.log").splitlines():
            if line.startswith("  while :; do "):
                body = line.removeprefix("  while :; do ").removesuffix("; sleep 1; done")
                words = shlex.split(body)
                assert words[0] == "locust", line
                return [sys.executable, "-m", "locust", *words[1:]]
        if run.poll() is not None:
            break
        time.sleep(0.1)
    pytest.fail(f"sandbox run printed no worker command: {processes.log('run.log')}")


def test_workers_in_other_namespaces_send_every_request_and_each_arrives(
    lab: Lab, processes: Processes, tmp_path: Path
) -> None:
    results = tmp_path / "results"
    run_args = [
        *["run", "--tags", "tiny", "--iterations", str(ITERATIONS), "--users", "4"],
        *["--sleep-ms", "20", "--batches", "1", "--baseline", "0.5", "--idle", "2"],
        *["--trim", "0", "--threads", "4", "--results-dir", str(results)],
        *["--server-host", lab.server_ip, "--port", str(SERVER_PORT), "--expose"],
        *["--master-bind", f"{lab.server_ip}:{MASTER_PORT}"],
        *["--expect-remote-workers", str(WORKERS)],
    ]
    before = {link: lab.rx_bytes(link) for link in lab.worker_links}
    started = time.monotonic()
    run = processes.start(lab.server_ns, [sys.executable, "-m", "sandbox", *run_args], "run.log")
    worker_command = wait_for_worker_command(processes, run)
    assert worker_command[-4:] == [
        "--master-host",
        lab.server_ip,
        "--master-port",
        str(MASTER_PORT),
    ]
    workers = [
        processes.start(ns, worker_command, f"worker-{i}.log")
        for i, ns in enumerate(lab.worker_ns, 1)
    ]
    try:
        code = run.wait(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(
            f"sandbox run still running after {RUN_TIMEOUT_S:g} s: {processes.log('run.log')}"
        )
    elapsed = time.monotonic() - started
    assert code == 0, processes.log("run.log")
    for i, worker in enumerate(workers, 1):  # each quits with its master
        assert worker.wait(timeout=15) == 0, processes.log(f"worker-{i}.log")

    (path,) = sorted((results / "runs").glob("*.json"))
    result = result_files.load(path)
    batch = result.load.stats[0]
    server_counted = int(result.probes["requests_done"][-1])
    assert (batch.requests, batch.failures) == (ITERATIONS, 0)  # the master's totals
    assert server_counted == batch.requests  # the server's own count
    share = ITERATIONS // WORKERS
    for link in lab.worker_links:
        received = lab.rx_bytes(link) - before[link]
        assert share * TINY_BODY_BYTES <= received, (link, received)
        assert received < share * TINY_BODY_BYTES + LINK_OVERHEAD_BYTES, (link, received)
    assert elapsed < 60, f"took {elapsed:.1f} s"

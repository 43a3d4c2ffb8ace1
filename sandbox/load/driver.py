"""Run one Locust batch as subprocesses: headless, tagged, one process or a master and workers.

Locust is never imported here (it monkey-patches the whole process with gevent). Statistics
come from Locust's `--json-file`, which it writes once, at exit, from its final totals (in
distributed mode, after the workers' last reports). Its `--csv` files, rewritten every second,
give the running count for the progress line (`sandbox.load.live_count`).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from sandbox.load.models import LoadModel
from sandbox.load.spec import LoadSpec
from sandbox.system import lifeline
from sandbox.system.processes import free_port, stop_process, tail_of

# Never forwarded to Locust: the allocator under test is the server's, not the load generator's.
_DROP = ("LD_PRELOAD", "MALLOC_CONF", "MALLOC_ARENA_MAX", "PYTHONMALLOC", "LOCUST_ITERATIONS")
SHAPES = Path(__file__).resolve().parents[2] / "plans" / "shapes.py"
LOCAL_WORKERS_WAIT_S = 60.0
REMOTE_WORKERS_WAIT_S = 300.0
"""As long as a worker started before its master keeps trying to connect (Locust's 60 tries
5 s apart): workers started in a loop on other machines find each batch's master."""


def locust_files(spec: LoadSpec) -> str:
    """`-f`'s value: the Locust file, plus the load shape for every model but iterations."""
    if spec.model.name == "iterations":
        return str(spec.locustfile)
    return f"{spec.locustfile},{SHAPES}"


def model_options(model: LoadModel) -> list[str]:
    if model.name == "iterations":
        return []
    return [
        "--load-model",
        model.name,
        "--rate",
        f"{model.rate:g}",
        "--to-rate",
        f"{model.to_rate:g}",
        "--duration",
        f"{model.duration_s:g}",
        "--spike-x",
        f"{model.spike_x:g}",
        "--spike-at",
        f"{model.spike_at_s:g}",
        "--spike-for",
        f"{model.spike_s:g}",
        "--pace",
        f"{model.pace():.6g}",
    ]


def locust_command(
    spec: LoadSpec, host_url: str, json_prefix: Path, master_port: int | None = None
) -> list[str]:
    """The (master's, or only process's) command line, sending load to `host_url`."""
    cmd = [sys.executable, "-m", "locust", "-f", locust_files(spec), "--headless"]
    cmd += ["--host", host_url, "--tags", *spec.tags]
    cmd += ["--users", str(spec.users), "--spawn-rate", f"{spec.spawn_rate:g}"]
    if spec.model.name == "iterations" and spec.drill:
        cmd += ["--iterations", str(spec.iterations)]
        if not spec.workers:
            # The final figures come from --json-file: no waiting for one more CSV write. (A
            # master waits: its workers' last statistics reports may still be on their way.)
            cmd.append("--no-final-csv")
    cmd += model_options(spec.model)
    cmd += ["--run-time", f"{max(1, int(spec.timeout_s))}s", "--stop-timeout", "10"]
    cmd += ["--json-file", str(json_prefix), "--only-summary", "--loglevel", "WARNING"]
    cmd += ["--csv", str(json_prefix)]  # running totals, read by live_count while it runs
    cmd += ["--exit-code-on-error", "0"]
    if master_port is not None:
        cmd += ["--master", "--master-bind-host", spec.master_host]
        cmd += ["--master-bind-port", str(master_port)]
        cmd += ["--expect-workers", str(spec.expected_workers)]
        cmd += ["--expect-workers-max-wait", f"{workers_wait_s(spec):g}"]
    return cmd


def workers_wait_s(spec: LoadSpec) -> float:
    """How long the master waits for its workers before it gives up (and the batch fails):
    a person starting workers on other machines needs longer than a local process."""
    return REMOTE_WORKERS_WAIT_S if spec.remote_workers else LOCAL_WORKERS_WAIT_S


def local_master_host(bind_host: str) -> str:
    """The address a worker on this machine reaches a master bound to `bind_host` at."""
    if bind_host in ("0.0.0.0", ""):
        return "127.0.0.1"
    return "::1" if bind_host == "::" else bind_host


def worker_command(spec: LoadSpec, master_port: int) -> list[str]:
    """A worker on this machine (`remote_worker_command`: one on another machine)."""
    return [
        sys.executable,
        "-m",
        "locust",
        "-f",
        locust_files(spec),
        "--worker",
        "--master-host",
        local_master_host(spec.master_host),
        "--master-port",
        str(master_port),
        "--loglevel",
        "WARNING",
    ]


def remote_worker_command(spec: LoadSpec, master_host: str, master_port: int) -> list[str]:
    """What to start on another machine, in a copy of this repository (or of the user's
    Locust file's folder): Locust's file names relative to where ours runs (`locust_cwd`),
    the master's address as the workers reach it."""
    cwd = locust_cwd(spec)
    files = ",".join(_relative(Path(f), cwd) for f in locust_files(spec).split(","))
    return [
        "locust",
        "-f",
        files,
        "--worker",
        "--master-host",
        master_host,
        "--master-port",
        str(master_port),
    ]


def _relative(path: Path, folder: Path) -> str:
    try:
        return str(path.relative_to(folder))
    except ValueError:
        return str(path)


def locust_cwd(spec: LoadSpec) -> Path:
    """Where Locust runs: ours from the repository root (pyproject's [tool.locust]); a user's
    beside itself."""
    return spec.locustfile.parent.parent if spec.drill else spec.locustfile.parent


def locust_environ() -> dict[str, str]:
    """Ours, less the allocator's variables and any LOCUST_* setting that could change a batch."""
    env = {k: v for k, v in os.environ.items() if k not in _DROP and not k.startswith("LOCUST_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def stats_csv(prefix: Path) -> Path:
    """The file Locust started with `--csv prefix` rewrites every second with its running totals."""
    return Path(f"{prefix}_stats.csv")


def prefix_in(workdir: Path) -> Path:
    """The prefix of Locust's statistics files for a batch run in `workdir`."""
    return workdir / "locust"


@dataclass
class LocustProcess:
    proc: subprocess.Popen[bytes]
    """The master (or the only process): its exit ends the batch."""
    json_prefix: Path
    log: IO[bytes]
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def stats_json(self) -> Path:
        return Path(f"{self.json_prefix}.json")

    @property
    def stats_csv(self) -> Path:
        return stats_csv(self.json_prefix)

    def log_tail(self, lines: int = 6) -> str:
        return tail_of(self.log, lines)


def master_port(spec: LoadSpec) -> int | None:
    """The master's port: the one asked for, else a free one; None without workers."""
    if not spec.expected_workers:
        return None
    return spec.master_port or free_port(local_master_host(spec.master_host))


@contextlib.contextmanager
def start(spec: LoadSpec, host_url: str, workdir: Path) -> Iterator[LocustProcess]:
    """Start Locust (and its workers) sending load to `host_url`; on any exit path, stop them
    all (SIGTERM, then SIGKILL)."""
    prefix = prefix_in(workdir)
    port = master_port(spec)
    env = locust_environ()
    cwd = locust_cwd(spec)
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryFile(prefix="sandbox-locust-") as log:

        def spawn(cmd: list[str]) -> subprocess.Popen[bytes]:
            # A group of its own, killed by the lifeline's reaper if the harness dies.
            proc = lifeline.spawn(
                cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
            procs.append(proc)
            return proc

        try:
            master = spawn(locust_command(spec, host_url, prefix, port))
            workers = [spawn(worker_command(spec, port)) for _ in range(spec.workers) if port]
            yield LocustProcess(master, prefix, log, workers)
        finally:
            for proc in procs:  # the master first: it tells its workers to quit
                stop_process(proc, timeout_s=15.0)

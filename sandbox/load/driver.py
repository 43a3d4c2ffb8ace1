"""Run one Locust batch as a subprocess: headless, tagged, bounded by iterations and time."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from sandbox.server.launch import stop_process, tail_of

# Never forwarded to Locust: the allocator under test is the server's, not the load generator's.
_DROP = ("LD_PRELOAD", "MALLOC_CONF", "MALLOC_ARENA_MAX", "PYTHONMALLOC", "LOCUST_ITERATIONS")


@dataclass(frozen=True)
class LoadSpec:
    """One batch of load."""

    locustfile: Path
    host_url: str
    tags: Sequence[str]
    users: int
    spawn_rate: float
    iterations: int
    """Each selected plan is sent this many times; Locust stops by itself afterwards."""
    timeout_s: float
    """Locust's --run-time: a safety net if the iterations take too long."""


def locust_command(spec: LoadSpec, csv_prefix: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(spec.locustfile),
        "--headless",
        "--host",
        spec.host_url,
        "--tags",
        *spec.tags,
        "--users",
        str(spec.users),
        "--spawn-rate",
        f"{spec.spawn_rate:g}",
        "--iterations",
        str(spec.iterations),
        "--run-time",
        f"{max(1, int(spec.timeout_s))}s",
        "--stop-timeout",
        "10",
        "--csv",
        str(csv_prefix),
        "--only-summary",
        "--loglevel",
        "WARNING",
        "--exit-code-on-error",
        "0",
    ]


def locust_environ() -> dict[str, str]:
    """Ours, less the allocator's variables and any LOCUST_* setting that could change a batch."""
    env = {k: v for k, v in os.environ.items() if k not in _DROP and not k.startswith("LOCUST_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class LocustProcess:
    proc: subprocess.Popen[bytes]
    csv_prefix: Path
    log: IO[bytes]

    @property
    def stats_csv(self) -> Path:
        return Path(f"{self.csv_prefix}_stats.csv")

    def log_tail(self, lines: int = 6) -> str:
        return tail_of(self.log, lines)


@contextlib.contextmanager
def start(spec: LoadSpec, workdir: Path) -> Iterator[LocustProcess]:
    """Start Locust; on any exit path, stop it (SIGTERM, then SIGKILL)."""
    prefix = workdir / "locust"
    with tempfile.TemporaryFile(prefix="sandbox-locust-") as log:
        proc = subprocess.Popen(
            locust_command(spec, prefix),
            env=locust_environ(),
            cwd=spec.locustfile.parent.parent,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        try:
            yield LocustProcess(proc, prefix, log)
        finally:
            stop_process(proc, timeout_s=15.0)

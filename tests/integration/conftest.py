from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

READY_TIMEOUT_S = 20.0
SETTINGS_VARS = ("HANDLER", "SLEEP_MS", "THREADS", "MAX_BODY_BYTES", "LD_PRELOAD")


@dataclass(frozen=True)
class LiveServer:
    """A real `python -m sandbox.server` child, answering on `url`."""

    url: str
    proc: subprocess.Popen[bytes]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# Variables that would change what the harness, the server or Locust do.
FOREIGN_VARS = ("LD_PRELOAD", "MALLOC_CONF", "MALLOC_ARENA_MAX", "PYTHONMALLOC")


def harness_env() -> dict[str, str]:
    """The environment for a `sandbox` subprocess: ours, minus allocator and Locust settings."""
    return {
        k: v for k, v in os.environ.items() if k not in FOREIGN_VARS and not k.startswith("LOCUST_")
    }


REPO = Path(__file__).resolve().parents[2]


def run_sandbox(*args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    """The real `sandbox` CLI as a subprocess, from the repository root, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "sandbox", *args],
        cwd=REPO,
        env=harness_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def server_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS_VARS}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(settings)
    return env


def _stop(proc: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None:
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            pytest.fail(f"the server exited with {proc.returncode}: {log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1) as response:
                json.load(response)
                return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"no answer from {url}/health in {READY_TIMEOUT_S:g} s: {log.read_text()}")
        time.sleep(0.05)


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sandbox.server", "--port", str(port)],
            env=server_env(SLEEP_MS="0"),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_ready(url, proc, log)
        yield LiveServer(url, proc)
    finally:
        _stop(proc)

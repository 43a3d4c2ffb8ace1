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

from sandbox.allocators import registry as allocators
from sandbox.config.server_settings import ServerSettings
from sandbox.errors import AllocatorError
from sandbox.measure.launch import ServerProcess, build_environ, launch
from tests.integration.harness import REPO, Harness, HarnessFactory, harness_env

READY_TIMEOUT_S = 20.0
SETTINGS_VARS = (*ServerSettings().to_environ(), "LD_PRELOAD")


def resolve_or_skip(name: str) -> allocators.ResolvedAllocator:
    """Allocator `name`, or the test is skipped saying why (its library is not installed)."""
    try:
        return allocators.resolve(name)
    except AllocatorError as exc:
        pytest.skip(str(exc))


@contextlib.contextmanager
def stair_stepper(allocator: str) -> Iterator[ServerProcess]:
    """The stair-stepper under `allocator` (skipped if it is not installed): no sleep, 4
    threads, started by the sandbox's own launcher."""
    resolved = resolve_or_skip(allocator)
    settings = ServerSettings(sleep_ms=0, threads=4).to_environ()
    with launch(build_environ(settings, resolved.environ())) as live:
        yield live


def post_json(url: str, body: bytes) -> int:
    """POST `body` as JSON to `url` (no proxy: loopback); the answer's status."""
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()
        status: int = response.status
        return status


@dataclass(frozen=True)
class LiveServer:
    """A real `python -m sandbox.server` child, answering on `url`."""

    url: str
    proc: subprocess.Popen[bytes]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[HarnessFactory]:
    """Start `sandbox run` in the background; whatever the test left running is stopped."""
    started: list[Harness] = []

    def start(args: list[str]) -> Harness:
        started.append(Harness(args, tmp_path))
        return started[-1]

    yield start
    for h in started:
        h.close()

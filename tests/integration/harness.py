"""`sandbox run` in the background, for fault tests: its output in files, its processes visible."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import httpx
import psutil
import pytest

REPO = Path(__file__).resolve().parents[2]
SANDBOX = [sys.executable, "-m", "sandbox"]
# Variables that would change what the harness, the server or Locust do.
FOREIGN_VARS = ("LD_PRELOAD", "MALLOC_CONF", "MALLOC_ARENA_MAX", "PYTHONMALLOC")


def harness_env() -> dict[str, str]:
    """The environment for a `sandbox` subprocess: ours, minus allocator and Locust settings."""
    return {
        k: v for k, v in os.environ.items() if k not in FOREIGN_VARS and not k.startswith("LOCUST_")
    }


class Harness:
    """`sandbox run ARGS --results-dir FOLDER/results`, with TMPDIR set to FOLDER/tmp."""

    def __init__(self, args: list[str], folder: Path) -> None:
        self.folder = folder
        self.results_dir = folder / "results"
        self.tmpdir = folder / "tmp"
        self.tmpdir.mkdir(exist_ok=True)
        self._out: IO[bytes] = open(folder / "stdout.txt", "wb")  # noqa: SIM115
        self._err: IO[bytes] = open(folder / "stderr.txt", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [*SANDBOX, "run", *args, "--results-dir", str(self.results_dir)],
            cwd=REPO,
            env={**harness_env(), "TMPDIR": str(self.tmpdir)},
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=self._err,
        )
        self.seen: dict[int, psutil.Process] = {}
        """Every descendant seen so far, by pid (to check for orphans, and to clean up)."""
        self.cmdlines: dict[int, list[str]] = {}
        """The command line of every descendant seen, read while it ran."""
        self._lock = threading.Lock()
        # Record descendants every 20 ms while the harness runs, so that a child that lives for
        # a moment (a server refused right after it started) is still checked for survival.
        self._recorder = threading.Thread(target=self._record, name="descendants", daemon=True)
        self._recorder.start()

    def _record(self) -> None:
        while self.proc.poll() is None:
            self.descendants()
            time.sleep(0.02)

    @property
    def stderr(self) -> str:
        return (self.folder / "stderr.txt").read_text()

    def descendants(self) -> list[psutil.Process]:
        try:
            found = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        with self._lock:
            for p in found:
                if p.pid not in self.seen:
                    self.seen[p.pid] = p
                    with contextlib.suppress(psutil.Error):
                        self.cmdlines[p.pid] = p.cmdline()
        return found

    def seen_running(self, word: str) -> bool:
        """Whether a descendant whose command line has `word` in one of its words was seen."""
        with self._lock:
            lines = list(self.cmdlines.values())
        return any(word in part for line in lines for part in line)

    def child(self, marker: str) -> psutil.Process | None:
        """The descendant whose command line has `marker` as one of its words."""
        for p in self.descendants():
            with contextlib.suppress(psutil.Error):
                if marker in p.cmdline():
                    return p
        return None

    def wait_for(self, what: str, check: Callable[[], object], timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not check():
            if self.proc.poll() is not None:
                code = self.proc.returncode
                pytest.fail(f"sandbox run exited ({code}) before {what}: {self.stderr}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} within {timeout_s:g} s: {self.stderr}")
            time.sleep(0.05)

    def server(self) -> tuple[psutil.Process, int]:
        """Wait until the server process exists; return it and its port."""
        self.wait_for("server", lambda: self.child("sandbox.server"))
        server = self.child("sandbox.server")
        assert server is not None
        cmdline = server.cmdline()
        return server, int(cmdline[cmdline.index("--port") + 1])

    def server_under_load(self, batch: int = 1, batches: int = 1) -> tuple[psutil.Process, int]:
        """Wait until the server has answered requests of `batch`; return it and its port."""
        server, port = self.server()
        self.wait_for(f"batch {batch}", lambda: f"batch {batch}/{batches}" in self.stderr)
        done = requests_done(port)
        self.wait_for("requests", lambda: requests_done(port) > done)
        return server, port

    def locust(self) -> psutil.Process:
        """Wait until the current batch's Locust process exists; return it."""
        self.wait_for("locust", lambda: self.child("locust"))
        locust = self.child("locust")
        assert locust is not None
        return locust

    def wait(self, timeout_s: float = 60.0) -> int:
        return self.proc.wait(timeout=timeout_s)

    def survivors(self, timeout_s: float = 5.0) -> list[psutil.Process]:
        """Descendants seen during the run that are still running (zombies count as gone)."""
        self._recorder.join(timeout=timeout_s)
        with self._lock:
            seen = list(self.seen.values())
        _, alive = psutil.wait_procs(seen, timeout=timeout_s)
        running = []
        for p in alive:
            with contextlib.suppress(psutil.Error):
                if p.status() != psutil.STATUS_ZOMBIE:
                    running.append(p)
        return running

    def close(self) -> None:
        """Stop the harness if the test left it running (it cleans up its children), then
        anything it started that is still there."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=30)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for p in self.seen.values():
            with contextlib.suppress(psutil.Error):
                p.kill()
        self._out.close()
        self._err.close()


HarnessFactory = Callable[[list[str]], Harness]


def requests_done(port: int) -> int:
    try:
        return int(httpx.get(f"http://127.0.0.1:{port}/stats", timeout=1.0).json()["requests_done"])
    except (httpx.HTTPError, ValueError, KeyError):
        return 0


def last_line(text: str) -> str:
    return text.rstrip("\n").splitlines()[-1]


def result_files(results_dir: Path) -> list[Path]:
    return sorted(results_dir.rglob("*.json*"))


def processes_of_port(port: int) -> list[psutil.Process]:
    """Processes whose command line names this port (the server's --port, Locust's --host)."""
    found = []
    for p in psutil.process_iter(["cmdline", "status"]):
        if p.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        line = " ".join(p.info["cmdline"] or [])
        if f"--port {port}" in line or f"127.0.0.1:{port}" in line:
            found.append(p)
    return found

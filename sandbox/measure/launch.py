"""Start the server (the stair-stepper, an app or a command) in a fresh child process under an
allocator, and always stop it."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

from sandbox.config.run_spec import Target
from sandbox.errors import ServerError
from sandbox.system import lifeline
from sandbox.system.loopback import OPENER, answers
from sandbox.system.processes import free_port, port_in_use, silent_state, stop_process, tail_of

STAIR_STEPPER = Target()
"""The default target: our own server."""

# Variables the server may inherit from the harness; everything else is built here.
# Allocator variables must be set before the interpreter starts, so they are never inherited.
ENV_WHITELIST = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TMPDIR",
    "TZ",
    "VIRTUAL_ENV",
    "PYTHONPATH",
)


def build_environ(
    settings_env: Mapping[str, str],
    allocator_env: Mapping[str, str],
    *,
    pymalloc: bool = True,
    inherit: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The server's whole environment: a whitelist of ours, the settings, the allocator's."""
    source = os.environ if inherit is None else inherit
    env = {k: source[k] for k in ENV_WHITELIST if k in source}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(settings_env)
    if not pymalloc:
        env["PYTHONMALLOC"] = "malloc"
    env.update(allocator_env)
    return env


def _fill(template: str, host: str, port: int) -> str:
    return template.replace("{host}", host).replace("{port}", str(port))


@dataclass
class ServerProcess:
    """A running server: its process, address and log."""

    proc: subprocess.Popen[bytes]
    host: str
    port: int
    command: list[str]
    env: dict[str, str]
    log: IO[bytes]
    target: Target = STAIR_STEPPER

    @property
    def ready_url(self) -> str:
        if self.target.ready_url:
            return _fill(self.target.ready_url, self.host, self.port)
        return f"{self.url}/health" if self.target.ours else f"{self.url}/"

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def health(self, timeout_s: float = 2.0) -> dict[str, Any]:
        with OPENER.open(f"{self.url}/health", timeout=timeout_s) as r:
            data: dict[str, Any] = json.load(r)
            return data

    def log_tail(self, lines: int = 8) -> str:
        return tail_of(self.log, lines)


def server_command(
    host: str,
    port: int,
    wrap: Sequence[str] = (),
    target: Target = STAIR_STEPPER,
    expose: bool = False,
) -> list[str]:
    """`python [wrap...] -m sandbox.server --host H --port P [--workers N] [--app X]
    [--expose]` (wrap: e.g. `-m memray run`), or the target's own command with host and port
    filled in. `expose`: a host beyond loopback, with the server's exposed limits."""
    if target.cmd:
        return shlex.split(_fill(target.cmd, host, port))
    cmd = [sys.executable, *wrap, "-m", "sandbox.server", "--host", host, "--port", str(port)]
    if target.workers > 1:
        cmd += ["--workers", str(target.workers)]
    if target.app:
        cmd += ["--app", target.app]
    if expose:
        cmd.append("--expose")
    return cmd


@contextlib.contextmanager
def launch(
    env: dict[str, str],
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    ready_timeout_s: float = 30.0,
    wrap: Sequence[str] = (),
    stop_timeout_s: float = 5.0,
    target: Target = STAIR_STEPPER,
    expose: bool = False,
) -> Iterator[ServerProcess]:
    """Start the server, wait until it answers, yield it, and stop it on any exit. `expose`:
    `host` is beyond loopback (`server_command`)."""
    if port is None:
        port = free_port(host)
    elif port_in_use(host, port):
        raise ServerError(
            f"port {port} on {host} is in use; stop the other server or omit --port "
            "to let the sandbox pick a free one"
        )
    cmd = server_command(host, port, wrap, target, expose)
    with tempfile.TemporaryFile(prefix="sandbox-server-") as log:
        try:
            # A group of its own, killed by the lifeline's reaper if the harness dies.
            proc = lifeline.spawn(
                cmd, env=env, cwd=target.cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        except OSError as exc:
            raise ServerError(f"cannot start {target.describe()}: {exc.strerror}") from None
        server = ServerProcess(proc, host, port, cmd, env, log, target)
        try:
            _wait_ready(server, ready_timeout_s)
            yield server
        finally:
            stop_process(proc, stop_timeout_s)


def _wait_ready(server: ServerProcess, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        code = server.proc.poll()
        if code is not None:
            raise ServerError(
                f"the server exited with code {code} before it was ready: {server.log_tail()}"
            )
        if server.target.ours:
            try:
                server.health(timeout_s=1.0)
                return
            except (urllib.error.URLError, OSError, ValueError):
                pass
        elif answers(server.ready_url):
            return
        if time.monotonic() > deadline:
            raise ServerError(
                f"the server did not answer {server.ready_url} within {timeout_s:g} s"
                f"{silent_state(server.pid)}; its last output: {server.log_tail() or '(none)'}; "
                "if it is only slow to start, raise run.ready_timeout_s in benchmark.yml"
            )
        time.sleep(0.05)

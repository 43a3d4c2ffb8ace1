"""Child-process helpers both sides use: free ports, stopping a process group (and telling the
lifeline), log tails, states, exit codes in words.

Standard library and psutil only, so that the harness and the server can both import it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from typing import IO, Any

import psutil

from sandbox.system import lifeline


def free_port(host: str = "127.0.0.1") -> int:
    """A port the kernel says is free right now."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def tail_of(log: IO[bytes], lines: int = 8) -> str:
    """The last `lines` lines of a child's log file, joined with ` | ` for a one-line error."""
    log.flush()
    log.seek(0)
    text = log.read().decode(errors="replace").strip().splitlines()
    return " | ".join(text[-lines:])


def stop_process(proc: subprocess.Popen[Any], timeout_s: float = 5.0) -> None:
    """SIGTERM the process group, wait, then SIGKILL it; safe to call twice.

    The group is sent SIGCONT after SIGTERM, so a stopped (SIGSTOP) process can act on it; and
    the SIGKILL is sent even if a second Ctrl-C interrupts the wait, so nothing is left behind.
    """
    try:
        if proc.poll() is None:
            for sig in (signal.SIGTERM, signal.SIGCONT):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=timeout_s)
    finally:
        # Kill whatever is left of the group (uvicorn workers, memray, ...), then reap.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        lifeline.lifeline().forget(proc.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout_s)


def describe_exit(code: int | None) -> str:
    """A child's exit code in words: `exited with code 1`, `was killed by SIGKILL`, `vanished`
    (None: no code to read)."""
    if code is None:
        return "vanished"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


# Process states that explain a silent server (the letter is what `ps` shows).
_SILENT_STATES = {
    psutil.STATUS_STOPPED: "T: stopped",
    psutil.STATUS_TRACING_STOP: "t: stopped by a tracer",
    psutil.STATUS_DISK_SLEEP: "D: in uninterruptible sleep, usually waiting for I/O",
}


def silent_state(pid: int) -> str:
    """` (process state T: stopped)` when the process is stopped or in D state, else ``."""
    try:
        status = psutil.Process(pid).status()
    except psutil.Error:
        return ""
    return f" (process state {_SILENT_STATES[status]})" if status in _SILENT_STATES else ""

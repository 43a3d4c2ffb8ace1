"""One gdb session against a live process: attach, run `in_gdb.py`'s calls, detach, answer.

gdb runs in batch mode with no init files (-nx) and reads no debug information (-readnever).
It reads the executable and the few symbol files it needs before it attaches and no other
library's (see `symbols`), so the target is stopped for the attach itself, the calls and the
detach only. The settings below keep it quiet, make a faulting call harmless (unwindonsignal)
and let every signal reach the target without stopping it, except the faults a call of ours
could cause. gdb runs in its own session, so a Ctrl-C meant
for the sandbox does not interrupt it half-way; on a timeout or a Ctrl-C it is asked (SIGINT)
to abandon the call, which it unwinds before it detaches.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.agent import allocator
from sandbox.errors import InspectError
from sandbox.inspector import access
from sandbox.inspector.detection import FAMILY_PATTERNS
from sandbox.inspector.symbols import SymbolFile

SCRIPT = Path(__file__).with_name("in_gdb.py")
MARKER = "@@sandbox-inspect@@ "
"""Prefix of the answer line (in_gdb.MARKER: that file cannot import this one)."""
PARAMS_ENV = "SANDBOX_INSPECT_PARAMS"
TIMEOUT_S = 20.0
INTERRUPT_GRACE_S = 5.0

SETTINGS = (
    "set debuginfod enabled off",
    "set auto-load off",
    "set pagination off",
    "set confirm off",
    "set width 0",
    "set height 0",
    "set print thread-events off",
    "set print inferior-events off",
    "set unwindonsignal on",
    "set auto-solib-add off",
    "handle all nostop noprint pass",
    "handle SIGSEGV SIGBUS SIGFPE SIGILL stop print nopass",
)


@dataclass(frozen=True)
class Request:
    """What one session does in the target."""

    pid: int
    expected_family: str
    """The family the maps suggest; used when gdb cannot resolve `malloc` itself."""
    symbol_files: tuple[SymbolFile, ...] = ()
    """Read before the attach (the executable always is)."""
    trim: bool = False
    python: bool = True

    def params(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "expected": self.expected_family,
            "families": [list(pair) for pair in FAMILY_PATTERNS],
            "trim": self.trim,
            "python": self.python,
            # The counters to read, by the agent's names, so both read the same ones.
            "counters": {
                "mallinfo": list(allocator.MALLINFO2_FIELDS),
                "jemalloc": list(allocator.JEMALLOC_STATS),
                "jemalloc_arenas_all": allocator.JEMALLOC_ARENAS_ALL,
                "tcmalloc": list(allocator.TCMALLOC_PROPERTIES),
                "mimalloc": list(allocator.MIMALLOC_FIELDS),
            },
        }


def command(gdb: str, request: Request) -> list[str]:
    """The gdb command line (the parameters travel in the environment)."""
    cmd = [gdb, "-nx", "-batch", "-readnever", "-q"]
    for setting in SETTINGS:
        cmd += ["-iex", setting]
    cmd += ["-iex", f"file {_quoted(f'/proc/{request.pid}/exe')}"]
    for symbols in request.symbol_files:
        cmd += ["-iex", f"add-symbol-file {_quoted(symbols.path)} -o {symbols.bias:#x}"]
    return [*cmd, "-ix", str(SCRIPT), "-ex", "python sandbox_inspect()"]


def _quoted(path: str) -> str:
    """A file name as gdb's argument parser reads it back, spaces and all."""
    return '"' + path.replace("\\", "\\\\").replace('"', '\\"') + '"'


def environment(request: Request) -> dict[str, str]:
    """Ours minus what would change gdb's own Python or its malloc, plus the parameters."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PYTHON") and k not in ("LD_PRELOAD", "MALLOC_CONF")
    }
    env[PARAMS_ENV] = json.dumps(request.params())
    return env


def answer_of(stdout: str) -> dict[str, Any] | None:
    """The JSON answer in gdb's output, or None."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(MARKER):
            data: dict[str, Any] = json.loads(line[len(MARKER) :])
            return data
    return None


def run(request: Request, *, gdb: str, timeout_s: float = TIMEOUT_S) -> dict[str, Any]:
    """Run one session with the gdb at `gdb` (chosen and proven safe by the caller: see
    `debugger` and `preflight`); the script's answer (which may carry an "error" key, see
    `check`).

    Raises InspectError when gdb does not run, hangs, or gives no answer.
    """
    try:
        proc = subprocess.Popen(
            command(gdb, request),
            env=environment(request),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            start_new_session=True,
        )
    except OSError as exc:
        raise InspectError(f"gdb at {gdb} does not run: {exc}") from None
    try:
        stdout, stderr = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _interrupt(proc)
        raise InspectError(
            f"gdb did not finish within {timeout_s:g} s in process {request.pid}; "
            "it was interrupted (the call is unwound before the detach)"
        ) from None
    except KeyboardInterrupt:
        _interrupt(proc)  # never leave the target with a call of ours half-way
        raise
    answer = answer_of(stdout)
    if answer is None:
        raise InspectError(_no_answer(proc.returncode, stderr))
    said = _said(stderr)
    if said:
        answer.setdefault("gdb_said", said)
    return answer


def _said(stderr: str) -> str | None:
    """gdb's own complaint, if it printed one (e.g. "Couldn't write extended state status")."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines[-1] if lines else None


def _interrupt(proc: subprocess.Popen[str]) -> None:
    """SIGINT (gdb abandons and unwinds the call, then detaches); SIGKILL if it does not end."""
    for sig in (signal.SIGINT, signal.SIGKILL):
        if proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.communicate(timeout=INTERRUPT_GRACE_S)
        except subprocess.TimeoutExpired:
            continue


def _no_answer(returncode: int, stderr: str) -> str:
    if "Python scripting is not supported" in stderr:
        return "this gdb was built without Python; install Debian's gdb ('apt-get install gdb')"
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    last = lines[-1] if lines else "no output"
    return f"gdb ended (exit {returncode}) without an answer: {last}"


def check(answer: dict[str, Any], pid: int) -> None:
    """Raise the error an answer reports (an attach refused, the target gone, a call failed).

    A "busy" answer (every thread inside the allocator) is not raised: the caller retries.
    """
    error = answer.get("error")
    message = str(answer.get("message", ""))
    incomplete = error is not None or answer.get("detached") is False
    if error != "attach" and (answer.get("exited") or (incomplete and access.gone(pid))):
        code = answer.get("exit_code")
        how = f"exit code {code}" if isinstance(code, int) else access.ended_how(pid)
        said = _first_line(message) if message else answer.get("gdb_said")
        raise access.died(pid, how, said)
    if error is None or error == "busy":
        return
    if error == "attach":
        if "No such process" in message:
            raise access.no_such_process(pid)
        if access.gone(pid):  # it exited before gdb got to it: the kernel refuses a zombie
            raise access.exited(pid)
        if "Operation not permitted" in message or "Permission denied" in message:
            raise access.denied(pid, "attach to")
        raise InspectError(f"gdb could not attach to process {pid}: {_first_line(message)}")
    if "exited" in message or "No such process" in message:
        raise access.died(pid, access.ended_how(pid), _first_line(message))
    raise InspectError(f"a call inside process {pid} failed and was undone: {_first_line(message)}")


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "no message"

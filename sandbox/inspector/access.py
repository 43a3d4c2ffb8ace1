"""Whether this process may read and attach to another one, and what to do when it may not."""

from __future__ import annotations

import os
from pathlib import Path

from sandbox.errors import InspectError, TargetExitedError

YAMA_SCOPE = Path("/proc/sys/kernel/yama/ptrace_scope")


def no_such_process(pid: int) -> TargetExitedError:
    return TargetExitedError(f"no process with PID {pid}")


def exited(pid: int) -> TargetExitedError:
    return TargetExitedError(f"process {pid} exited while it was being inspected")


def died(
    pid: int, how: str | None, said: str | None, *, after_s: float | None = None
) -> TargetExitedError:
    """The process ended while gdb held it (or `after_s` seconds after gdb let it go): say so,
    with how it ended and what gdb printed, and that the look may have caused it."""
    when = "while gdb held it" if after_s is None else f"within {after_s:g} s after gdb detached"
    words = [f"process {pid} died {when}" + (f" ({how})" if how else "")]
    if said:
        words.append(f"gdb said: {said}")
    words.append("the inspection may have caused it")
    return TargetExitedError("; ".join(words))


def ended_how(pid: int) -> str | None:
    """How an exited process ended, from its zombie's /proc/PID/stat (its parent has not
    reaped it yet); None when that can no longer be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    if not fields or fields[0] not in ("Z", "X") or len(fields) < 50:
        return None
    return wait_status(int(fields[49]))


def wait_status(status: int) -> str:
    """A wait(2) status in words: 'exit code 1', 'killed by SIGKILL'."""
    import signal

    if status & 0x7F:
        number = status & 0x7F
        try:
            return f"killed by {signal.Signals(number).name}"
        except ValueError:
            return f"killed by signal {number}"
    return f"exit code {(status >> 8) & 0xFF}"


def ptrace_scope() -> int | None:
    """kernel.yama.ptrace_scope (0: classic, 1: parents only, 2: admin only, 3: none), if any."""
    try:
        return int(YAMA_SCOPE.read_text().strip())
    except (OSError, ValueError):
        return None


def denied(pid: int, what: str, scope: int | None = None, euid: int | None = None) -> InspectError:
    """The one-line message for a read or an attach the kernel refused."""
    scope = ptrace_scope() if scope is None else scope
    euid = os.geteuid() if euid is None else euid
    fixes = []
    if euid != 0:
        fixes.append("run sandbox inspect as the user that owns the process, or as root")
    if scope is not None and scope > 0:
        fixes.append(
            f"kernel.yama.ptrace_scope is {scope}: as root, "
            "'echo 0 > /proc/sys/kernel/yama/ptrace_scope' lets a user attach to its own processes"
        )
    fixes.append("in a container, ptrace needs CAP_SYS_PTRACE (docker run --cap-add=SYS_PTRACE)")
    return InspectError(f"cannot {what} process {pid}: permission denied; " + "; ".join(fixes))


def gone(pid: int) -> bool:
    """True when the process no longer exists or has exited (a zombie not yet reaped)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    except OSError:
        return False
    return any(
        line.startswith("State:") and line.split()[1] in ("Z", "X") for line in status.splitlines()
    )


def check_exists(pid: int) -> None:
    """Raise TargetExitedError unless /proc/PID exists and is not a zombie."""
    if pid == os.getpid():
        raise InspectError(f"PID {pid} is this sandbox process itself; give another process")
    if not Path(f"/proc/{pid}").exists():
        raise no_such_process(pid)
    if gone(pid):
        raise TargetExitedError(f"process {pid} has exited (a zombie waiting for its parent)")


def tracer(pid: int) -> int:
    """The PID of the debugger (or strace) already attached to `pid`; 0 when none."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("TracerPid:"):
            return int(line.split()[1])
    return 0


def check_not_traced(pid: int) -> None:
    other = tracer(pid)
    if other:
        raise InspectError(
            f"process {pid} is already being traced by PID {other} (a debugger or strace); "
            "detach that first: a process can have only one tracer"
        )


def command_line(pid: int) -> str:
    """The process's command line, for display; "" when unreadable."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return " ".join(os.fsdecode(part) for part in raw.split(b"\0") if part)


def executable(pid: int) -> str:
    """The path of the process's executable; "" when unreadable."""
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""

"""Children die with the harness: a small reaper process holds a pipe from the harness, and when
the harness is gone (SIGKILL, the OOM killer, a lost terminal) it reads end-of-file and kills
everything the harness started.

The harness's side (`Lifeline`) starts the reaper on its first child, in a session of its own (so a
Ctrl-C or a hang-up of the terminal's process group does not reach it), and tells it, over the
pipe, each process group it starts (`+PGID`) and stops (`-PGID`). The server and Locust each lead
a group of their own (for the harness's own group kills). At end-of-file the reaper:

1. SIGKILLs every group still registered: the server with its uvicorn workers or memray wrapper,
   a `--cmd` shell with its children, Locust's master and workers;
2. SIGKILLs every process whose environment carries this harness's `SANDBOX_HARNESS` token, twice,
   0.2 s apart: a grandchild that left its group (a `--cmd` server that daemonises), or a child
   the harness had forked but not yet registered when it died.

Why not PR_SET_PDEATHSIG: set in a `preexec_fn` it runs Python between fork and exec while the
sampling threads run (the subprocess documentation calls that unsafe); it fires when the *thread*
that forked the child ends, not the process; and it reaches only the direct child, never uvicorn's
workers or a user's `--cmd` children, whose code we cannot change. The reaper covers all three.

Standard library only: the reaper imports nothing else, so it costs one small Python process.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

HARNESS_ENV = "SANDBOX_HARNESS"
"""The variable every child of a harness carries: `PID:START_TICKS` of that harness."""


class Lifeline:
    """The harness's end of the pipe to its reaper (started on first use)."""

    def __init__(self, token: str, command: Sequence[str] | None = None) -> None:
        self.token = token
        self.command = list(command or [sys.executable, "-m", "sandbox.system.lifeline", token])
        self._reaper: subprocess.Popen[bytes] | None = None
        self._pipe: IO[bytes] | None = None
        self._lock = threading.Lock()

    @property
    def reaper(self) -> subprocess.Popen[bytes] | None:
        return self._reaper

    def _start(self) -> None:
        try:
            self._reaper = subprocess.Popen(
                self.command,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError:
            return  # no reaper: the children are still stopped on every normal path
        self._pipe = self._reaper.stdin
        # A normal exit ends the reaper as a death would, and waits for it: no reaper is left
        # running unreaped (nor a ResourceWarning for it) when the harness's interpreter ends.
        atexit.register(self.close)

    def _send(self, line: str, *, start: bool = True) -> None:
        with self._lock:
            if self._reaper is None and start:
                self._start()
            if self._pipe is None:
                return
            try:
                self._pipe.write(line.encode())
                self._pipe.flush()
            except (BrokenPipeError, ValueError):  # the reaper is gone: nothing to tell
                with contextlib.suppress(OSError):
                    self._pipe.close()
                self._pipe = None

    def watch(self, pgid: int) -> None:
        """Kill process group `pgid` if the harness dies before `forget(pgid)`."""
        self._send(f"+{pgid}\n")

    def forget(self, pgid: int) -> None:
        """The harness stopped group `pgid` itself."""
        self._send(f"-{pgid}\n", start=False)

    def environ(self, env: Mapping[str, str]) -> dict[str, str]:
        """`env` plus this harness's token, for a child."""
        return {**env, HARNESS_ENV: self.token}

    def close(self) -> None:
        """End the reaper as the harness's exit would (it kills what is still registered)."""
        with self._lock:
            if self._pipe is not None:
                with contextlib.suppress(OSError):
                    self._pipe.close()
                self._pipe = None
            if self._reaper is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._reaper.wait(timeout=5)


_LIFELINE: Lifeline | None = None
_LIFELINE_PID = 0


def lifeline() -> Lifeline:
    """This process's lifeline (a fresh one in a forked child: the pipe is the parent's)."""
    global _LIFELINE, _LIFELINE_PID
    if _LIFELINE is None or os.getpid() != _LIFELINE_PID:
        from sandbox.system import liveness

        _LIFELINE = Lifeline(liveness.token(liveness.this_process()))
        _LIFELINE_PID = os.getpid()
    return _LIFELINE


def spawn(cmd: Sequence[str], *, env: Mapping[str, str], **popen: Any) -> subprocess.Popen[bytes]:
    """`Popen(cmd)` leading a new process group, tied to this process's lifeline: the group is
    killed if this process dies before `processes.stop_process` stops it."""
    line = lifeline()
    proc: subprocess.Popen[bytes] = subprocess.Popen(
        cmd, env=line.environ(env), start_new_session=True, **popen
    )
    line.watch(proc.pid)
    return proc


# --- the reaper ---------------------------------------------------------------------------------


def _carries(pid: int, marker: bytes) -> bool:
    """Whether `pid` runs (is no zombie) with `marker` in its environment."""
    try:
        if Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[:1] == ["Z"]:
            return False
        return marker in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except (OSError, IndexError):
        return False


def tagged(token: str) -> Iterator[int]:
    """Pids of the processes whose environment carries `SANDBOX_HARNESS=token`."""
    marker = f"{HARNESS_ENV}={token}".encode()
    me = os.getpid()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and int(entry.name) != me and _carries(int(entry.name), marker):
            yield int(entry.name)


def reap(groups: set[int], token: str) -> tuple[list[int], list[int]]:
    """Kill the registered groups, then every process still carrying the token; the groups and
    the processes killed."""
    killed_groups: list[int] = []
    for pgid in sorted(groups):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
            killed_groups.append(pgid)
    killed: list[int] = []
    for attempt in range(2):
        if attempt:
            time.sleep(0.2)  # a child forked just before the harness died has exec'd by now
        for pid in tagged(token):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if os.getpgid(pid) in killed_groups:
                    continue  # killed with its group, not yet gone
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
    return killed_groups, sorted(set(killed))


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m sandbox.system.lifeline TOKEN`: read `+PGID` / `-PGID` lines on stdin until end of
    file, then kill what is left."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m sandbox.system.lifeline PID:START_TICKS", file=sys.stderr)
        return 2
    token = args[0]
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)  # only the harness's end ends the reaper
    groups: set[int] = set()
    for raw in sys.stdin.buffer:
        line = raw.strip()
        if line[:1] in (b"+", b"-") and line[1:].isdigit():
            (groups.add if line[:1] == b"+" else groups.discard)(int(line[1:]))
    killed_groups, killed = reap(groups, token)
    if killed_groups or killed:
        said = [
            f"{what} {', '.join(map(str, pids))}"
            for what, pids in (("process group(s)", killed_groups), ("process(es)", killed))
            if pids
        ]
        print(
            f"sandbox: the harness (pid {token.partition(':')[0]}) ended without stopping its "
            f"children; killed {' and '.join(said)}",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

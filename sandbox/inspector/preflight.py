"""Before gdb calls into a process the sandbox did not start: prove on this host that it is safe.

The exact look a user asked for (the same gdb, settings, script and calls, a trim included)
first runs against two throwaway canaries (`canary.py`), started with the target's own
interpreter and allocator where they can be had: one asleep in system calls, one busy in
floating-point and vector work that checks every result. A canary that dies, meets a system
call error it did not ask for, or computes a wrong value fails the preflight, and the target is
never touched. The verdict is kept per (kernel, CPU flags, gdb build, interpreter, allocator
environment, procedure) in a cache file, so a `--watch` or the next look does not repeat it.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sandbox.errors import InspectError
from sandbox.inspector import canary, gdb_session, xsave
from sandbox.inspector.debugger import Debugger
from sandbox.system.atomic import write_atomic

KINDS = ("sleep", "busy")
LOOKS = (False, True, False)
"""Per canary: a plain look, one with --trim, a plain one again (the trim's calls included)."""
PAUSE_S = 0.15
"""Between looks, and before the reports: each canary goes back to its work."""
READY_TIMEOUT_S = 15.0
REPORT_TIMEOUT_S = 15.0
MAX_AGE_S = 7 * 24 * 3600.0
CACHE_ENV = "SANDBOX_INSPECT_CACHE"
FORMAT = "sandbox-inspect-preflight"
VERSION = 1
ALLOCATOR_ENV = re.compile(
    r"^(LD_PRELOAD|LD_LIBRARY_PATH|MALLOC_CONF|_RJEM_MALLOC_CONF|GLIBC_TUNABLES|MALLOC_\w+|"
    r"MIMALLOC_\w+|TCMALLOC_\w+|PYTHONMALLOC)$"
)
"""What of the target's environment the canaries get: what decides its allocator."""
PYTHON_NAME = re.compile(r"^python(\d+(\.\d+)?)?[a-z]?$")

Look = Callable[[int, bool], object]
"""One look at a PID (trim or not): the procedure a real look uses; InspectError if it fails."""


@dataclass(frozen=True)
class Context:
    """What the canaries run as: the target's interpreter and allocator where they can be had."""

    interpreter: str
    environ: Mapping[str, str]
    """The allocator's part of the target's environment (LD_PRELOAD, MALLOC_CONF, ...)."""
    note: str | None = None
    """What differs from the target, and why."""


@dataclass(frozen=True)
class CanaryResult:
    kind: str
    looks: int
    """Looks taken before it ended or the preflight stopped."""
    died: str | None = None
    """How it ended when it did not survive: 'killed by SIGKILL', 'exit code 1'."""
    look_error: str | None = None
    """What a look reported (a call that failed, a process that exited)."""
    iterations: int = 0
    wrong: int = 0
    errors: tuple[str, ...] = ()
    """System call errors and wrong results it saw, in its own words."""
    numpy: bool = False

    @property
    def failure(self) -> str | None:
        """What went wrong, every sign of it (None: alive and right)."""
        signs = []
        if self.died:
            signs.append(f"the {self.kind} canary died ({self.died}) after look {self.looks}")
        if self.look_error:
            signs.append(f"a look at the {self.kind} canary failed: {self.look_error}")
        if self.wrong:
            first = f": {self.errors[0]}" if self.errors else ""
            signs.append(f"the {self.kind} canary computed {self.wrong} wrong result(s){first}")
        elif self.errors:
            signs.append(
                f"the {self.kind} canary got an error it did not ask for: {self.errors[0]}"
            )
        return "; ".join(signs) or None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "looks": self.looks,
            "died": self.died,
            "look_error": self.look_error,
            "iterations": self.iterations,
            "wrong": self.wrong,
            "errors": list(self.errors),
            "numpy": self.numpy,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CanaryResult:
        return cls(
            kind=str(data["kind"]),
            looks=int(data["looks"]),
            died=data.get("died"),
            look_error=data.get("look_error"),
            iterations=int(data.get("iterations", 0)),
            wrong=int(data.get("wrong", 0)),
            errors=tuple(str(e) for e in data.get("errors", ())),
            numpy=bool(data.get("numpy", False)),
        )


@dataclass(frozen=True)
class Verdict:
    """Whether the look's procedure left both canaries alive and right on this host."""

    key: str
    checked_at: str
    took_s: float
    debugger: Mapping[str, Any]
    register_state: str | None
    interpreter: str
    canaries: tuple[CanaryResult, ...]
    note: str | None = None
    cached: bool = False
    checked_epoch: float = field(default=0.0, compare=False)

    @property
    def failure(self) -> str | None:
        return next((c.failure for c in self.canaries if c.failure), None)

    @property
    def passed(self) -> bool:
        return self.failure is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "failure": self.failure,
            "summary": self.summary(),
            "key": self.key,
            "checked_at": self.checked_at,
            "checked_epoch": self.checked_epoch,
            "took_s": self.took_s,
            "cached": self.cached,
            "debugger": dict(self.debugger),
            "register_state": self.register_state,
            "interpreter": self.interpreter,
            "note": self.note,
            "canaries": [c.to_dict() for c in self.canaries],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, cached: bool = False) -> Verdict:
        return cls(
            key=str(data["key"]),
            checked_at=str(data["checked_at"]),
            took_s=float(data["took_s"]),
            debugger=dict(data["debugger"]),
            register_state=data.get("register_state"),
            interpreter=str(data["interpreter"]),
            canaries=tuple(CanaryResult.from_dict(c) for c in data["canaries"]),
            note=data.get("note"),
            cached=cached,
            checked_epoch=float(data.get("checked_epoch", 0.0)),
        )

    def summary(self) -> str:
        """One line: passed or failed, on what, and when."""
        looks = sum(c.looks for c in self.canaries)
        when = "cached from " + self.checked_at if self.cached else f"took {self.took_s:.1f} s"
        if self.passed:
            return (
                f"preflight passed: {looks} looks at {len(self.canaries)} canaries "
                f"({', '.join(c.kind for c in self.canaries)}), all alive and right ({when})"
            )
        return f"preflight failed: {self.failure} ({when})"


# --- what the canaries run as -----------------------------------------------------------------


def _same_file(a: str, b: str) -> bool:
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def trusted(path: str) -> bool:
    """Whether this process may run `path` (or load it): owned by root or by us, and neither
    it nor its folder writable by anyone else. A root `inspect` of another user's process must
    not run code that user could have put there."""
    try:
        for part in (path, os.path.dirname(path) or "/"):
            info = os.stat(part)
            if info.st_uid not in (0, os.geteuid()) or info.st_mode & 0o022:
                return False
    except OSError:
        return False
    return True


def context_for(pid: int, environ: Mapping[str, str] | None) -> Context:
    """The target's interpreter when it is a Python one this process can run and trust, and
    the allocator part of its environment (`environ`: the target's, None when unreadable)."""
    notes = []
    interpreter = sys.executable
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        exe = ""
    usable = PYTHON_NAME.match(os.path.basename(exe)) and _same_file(exe, f"/proc/{pid}/exe")
    if exe and usable and trusted(exe):
        interpreter = exe
    elif exe and usable:
        notes.append(
            f"the canaries ran under {sys.executable}: the target's interpreter {exe} is "
            "writable by another user, so it was not run"
        )
    else:
        notes.append(
            f"the canaries ran under {sys.executable}: the target's executable "
            f"({exe or 'unreadable'}) is not a Python interpreter this process can run"
        )
    kept = {k: v for k, v in (environ or {}).items() if ALLOCATOR_ENV.match(k)}
    if environ is None:
        notes.append("the target's environment is unreadable: the canaries ran without it")
    for name in ("LD_PRELOAD", "LD_LIBRARY_PATH"):
        value = kept.get(name)
        paths = [p for p in re.split(r"[\s:]+", value or "") if p]
        if name == "LD_PRELOAD" and not all(os.path.exists(p) for p in paths):
            notes.append(f"LD_PRELOAD={value} is not all on this filesystem: left out")
            kept.pop(name)
        elif not all(trusted(p) for p in paths):
            notes.append(f"{name}={value} names files another user can write: left out")
            kept.pop(name)
    return Context(interpreter, kept, "; ".join(notes) or None)


def key_of(debugger: Debugger, context: Context, cpuinfo_flags: tuple[str, ...]) -> str:
    """What the verdict depends on: kernel, CPU flags, gdb build, interpreter, allocator
    environment, and the procedure (script, canary, settings, looks)."""
    procedure = hashlib.sha256()
    for path in (gdb_session.SCRIPT, Path(canary.__file__)):
        procedure.update(path.read_bytes())
    procedure.update(repr((gdb_session.SETTINGS, LOOKS, KINDS)).encode())
    parts = {
        "kernel": f"{platform.release()} {platform.version()}",
        "flags": " ".join(sorted(cpuinfo_flags)),
        "gdb": [debugger.path, debugger.banner, debugger.build],
        "interpreter": [context.interpreter, _build_of(context.interpreter)],
        "environ": sorted(context.environ.items()),
        "procedure": procedure.hexdigest(),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def _build_of(path: str) -> str:
    try:
        info = os.stat(path)
    except OSError:
        return ""
    return f"{info.st_size}:{info.st_mtime_ns}"


# --- running the canaries ---------------------------------------------------------------------


def _environment(context: Context) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "LD_", "MALLOC"))}
    base = {
        k: v
        for k, v in base.items()
        if k != "SANDBOX_AGENT_DIR" and not ALLOCATOR_ENV.match(k)  # the target's, not ours
    }
    return {**base, **context.environ}


def _ended(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


def start_canary(kind: str, context: Context) -> subprocess.Popen[str]:
    """A canary of `kind`, running its work (it printed "ready"). InspectError if it cannot."""
    proc = subprocess.Popen(
        [context.interpreter, canary.__file__, kind],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_environment(context),
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + READY_TIMEOUT_S
    line = ""
    while time.monotonic() < deadline and proc.poll() is None:
        line = _readline(proc, deadline - time.monotonic())
        if line:
            break
    if line.strip() != "ready":
        proc.kill()
        _, err = proc.communicate(timeout=READY_TIMEOUT_S)
        last = (err.strip().splitlines() or ["no output"])[-1]
        raise InspectError(
            f"the preflight's {kind} canary did not start under {context.interpreter}: {last}"
        )
    return proc


def _readline(proc: subprocess.Popen[str], timeout_s: float) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], max(timeout_s, 0.0))
    return proc.stdout.readline() if ready else ""


def check_canary(kind: str, context: Context, look: Look) -> CanaryResult:
    """Start a canary, look at it as the target will be looked at, and judge it."""
    proc = start_canary(kind, context)
    looks = 0
    look_error = None
    try:
        for trim in LOOKS:
            time.sleep(PAUSE_S)
            looks += 1
            try:
                look(proc.pid, trim)
            except InspectError as exc:
                look_error = str(exc)
            time.sleep(PAUSE_S)
            if proc.poll() is not None or look_error:
                break
        time.sleep(PAUSE_S)
        if proc.poll() is not None:
            _, err = proc.communicate(timeout=REPORT_TIMEOUT_S)
            last = (err.strip().splitlines() or [""])[-1]
            died = _ended(proc.returncode) + (f": {last}" if last else "")
            return CanaryResult(kind, looks, died=died, look_error=look_error)
        out, err = proc.communicate("", timeout=REPORT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return CanaryResult(kind, looks, look_error=look_error, died="hung: it did not report")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        last = (err.strip().splitlines() or [""])[-1]
        died = f"{_ended(proc.returncode)}: {last}"
        return CanaryResult(kind, looks, died=died, look_error=look_error)
    try:
        report = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return CanaryResult(kind, looks, died=f"no report: {out[-200:]!r}", look_error=look_error)
    return CanaryResult(
        kind,
        looks,
        look_error=look_error,
        iterations=int(report["iterations"]),
        wrong=int(report["wrong"]),
        errors=tuple(str(e) for e in report["errors"]),
        numpy=bool(report["numpy"]),
    )


def run(debugger: Debugger, context: Context, look: Look, key: str) -> Verdict:
    """Both canaries, looked at; stops at the first that fails."""
    started = time.monotonic()
    results = []
    for kind in KINDS:
        result = check_canary(kind, context, look)
        results.append(result)
        if result.failure:
            break
    state = xsave.host()
    now = datetime.now(timezone.utc)
    return Verdict(
        key=key,
        checked_at=now.isoformat(timespec="seconds").replace("+00:00", "Z"),
        took_s=time.monotonic() - started,
        debugger=debugger.to_dict(),
        register_state=state.describe() if state else None,
        interpreter=context.interpreter,
        canaries=tuple(results),
        note=context.note,
        checked_epoch=now.timestamp(),
    )


# --- the cache ------------------------------------------------------------------------------


def cache_path() -> Path:
    chosen = os.environ.get(CACHE_ENV)
    if chosen:
        return Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "allocator-sandbox" / "inspect-preflight.json"


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("version") != VERSION:
        return {}
    verdicts = data.get("verdicts")
    return verdicts if isinstance(verdicts, dict) else {}


def cached(key: str, path: Path | None = None, now: float | None = None) -> Verdict | None:
    """The verdict kept for `key`, if it is younger than MAX_AGE_S and well formed."""
    entry = _read_cache(path or cache_path()).get(key)
    if not isinstance(entry, dict):
        return None
    try:
        verdict = Verdict.from_dict(entry, cached=True)
    except (KeyError, TypeError, ValueError):
        return None
    age = (time.time() if now is None else now) - verdict.checked_epoch
    return verdict if 0 <= age <= MAX_AGE_S else None


def remember(verdict: Verdict, path: Path | None = None) -> None:
    """Keep `verdict` (best effort: a cache that cannot be written only costs a new check)."""
    path = path or cache_path()
    verdicts = _read_cache(path)
    verdicts[verdict.key] = verdict.to_dict()
    data = {"format": FORMAT, "version": VERSION, "verdicts": verdicts}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, (json.dumps(data, indent=1) + "\n").encode())
    except OSError:
        pass


def forget(path: Path | None = None) -> None:
    """Drop every kept verdict (`inspect --recheck`)."""
    (path or cache_path()).unlink(missing_ok=True)


def ensure(
    debugger: Debugger,
    context: Context,
    look: Look,
    *,
    recheck: bool = False,
    flags: tuple[str, ...] | None = None,
) -> Verdict:
    """The verdict for this host and procedure: cached, or run now and kept."""
    key = key_of(debugger, context, xsave.cpu_flags() if flags is None else flags)
    if not recheck:
        found = cached(key)
        if found is not None:
            return found
    verdict = run(debugger, context, look, key)
    remember(verdict)
    return verdict


def refusal(verdict: Verdict, pid: int) -> str:
    """The one line `inspect` says when the preflight failed."""
    return (
        f"not attaching to process {pid}: the preflight with {verdict.debugger['path']} "
        f"(gdb {verdict.debugger['version']}) failed on this host: {verdict.failure}; "
        "the process was not touched. Use a gdb 14 or newer (scripts/setup.sh installs one into "
        ".venv; or set SANDBOX_GDB), or pass --no-attach for the RSS split alone"
    )

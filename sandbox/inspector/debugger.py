"""Which gdb `sandbox inspect` uses, its version, and whether it may call into a process here.

The candidates, in order: $SANDBOX_GDB (the user's choice, used as given), the gdb installed
beside this interpreter (scripts/setup.sh puts a pinned prebuilt GNU gdb from PyPI,
`gdb-for-pwndbg`, in .venv/bin), then the first `gdb` on PATH (Debian 12's is 13.1). Without
$SANDBOX_GDB the first candidate that is new enough wins, else the first found.

A gdb before 14 saves and restores at most `OLD_GDB_XSAVE_BYTES` of register state; on a host
whose XSAVE area is larger (AMX) a call through it kills or corrupts the target, so such a gdb
is never used for calls there (`refusal`). Whether a gdb really puts everything back is what
the preflight (`sandbox.inspector.preflight`) then proves on the host, on canaries.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.errors import InspectError
from sandbox.inspector import xsave

GDB_ENV = "SANDBOX_GDB"
SAFE_VERSION = (14, 0)
"""gdb 14 sizes the XSAVE area from the host ("Handle variable XSAVE layouts")."""
OLD_GDB_XSAVE_BYTES = 2696
"""The fixed XSAVE buffer of gdb 13 and older (x87/SSE, AVX, MPX, AVX-512, PKRU)."""
VERSION_TIMEOUT_S = 20.0
FIX = (
    "run scripts/setup.sh (it installs gdb 18 into .venv: pip install gdb-for-pwndbg==18.1.0.post1)"
    f" or point {GDB_ENV} at a gdb 14 or newer, or pass --no-attach for the RSS split alone"
)
GDB_MISSING = f"gdb not found; {FIX}"

_VERSION = re.compile(r"^GNU gdb .*?(\d+)\.(\d+)", re.MULTILINE)


@dataclass(frozen=True)
class Debugger:
    """One gdb: where it is, what it says it is."""

    path: str
    version: tuple[int, int] | None
    """(major, minor) from `gdb --version`; None when it said no version we can read."""
    banner: str
    """The first line of `gdb --version`."""
    build: str
    """What identifies this build: a digest of the file's path, size and modification time."""

    @property
    def version_text(self) -> str:
        return "unknown version" if self.version is None else ".".join(map(str, self.version))

    @property
    def new_enough(self) -> bool:
        return self.version is not None and self.version >= SAFE_VERSION

    def describe(self) -> str:
        return f"gdb {self.version_text} ({self.path})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "version": self.version_text,
            "banner": self.banner,
            "build": self.build,
        }


def parse_version(text: str) -> tuple[int, int] | None:
    """(major, minor) from `gdb --version`'s output: "GNU gdb (Debian 13.1-3) 13.1" -> (13, 1)."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    found = re.search(r"(\d+)\.(\d+)(?:\.\d+)?\S*\s*$", first) or _VERSION.search(text)
    return (int(found.group(1)), int(found.group(2))) if found else None


def build_of(path: str) -> str:
    real = os.path.realpath(path)
    info = os.stat(real)
    return hashlib.sha256(f"{real}\0{info.st_size}\0{info.st_mtime_ns}".encode()).hexdigest()[:16]


def probe(path: str) -> Debugger:
    """Ask `path` for its version. InspectError when it does not run."""
    try:
        done = subprocess.run(
            [path, "--version"],
            capture_output=True,
            text=True,
            errors="replace",
            timeout=VERSION_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InspectError(f"gdb at {path} does not run ({exc}); {FIX}") from None
    text = done.stdout or done.stderr
    banner = text.strip().splitlines()[0] if text.strip() else ""
    return Debugger(path, parse_version(text), banner, build_of(path))


def candidates() -> list[str]:
    """Paths to try, without $SANDBOX_GDB: beside this interpreter, then PATH's."""
    found = []
    beside = Path(sys.executable).with_name("gdb")
    if beside.is_file() and os.access(beside, os.X_OK):
        found.append(str(beside))
    on_path = shutil.which("gdb")
    if on_path and os.path.realpath(on_path) not in {os.path.realpath(p) for p in found}:
        found.append(on_path)
    return found


def choose() -> Debugger:
    """The gdb to use (see the module's docstring). InspectError when there is none."""
    chosen = os.environ.get(GDB_ENV)
    if chosen:
        path = shutil.which(chosen) or chosen
        if not os.path.isfile(path):
            raise InspectError(f"{GDB_ENV}={chosen} is not a file; {FIX}")
        return probe(path)
    probed = [probe(path) for path in candidates()]
    if not probed:
        raise InspectError(GDB_MISSING)
    return next((d for d in probed if d.new_enough), probed[0])


def unsafe(debugger: Debugger, state: xsave.RegisterState | None) -> str | None:
    """Why `debugger` cannot put back this host's registers after a call, or None."""
    if state is None or debugger.new_enough or state.size_bytes <= OLD_GDB_XSAVE_BYTES:
        return None
    return (
        f"{debugger.describe()} cannot restore this CPU's {state.describe()} (gdb before 14 "
        f"handles {OLD_GDB_XSAVE_BYTES:,} bytes)"
    )


def refusal(debugger: Debugger, state: xsave.RegisterState | None, pid: int) -> str | None:
    """Why `debugger` must not call into process `pid` on this host, or None."""
    reason = unsafe(debugger, state)
    if reason is None:
        return None
    return f"{reason}: a call would kill or corrupt process {pid}, so it was not touched; {FIX}"
